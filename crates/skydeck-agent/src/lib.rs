//! The Skydeck node agent (placeholder; being written).
