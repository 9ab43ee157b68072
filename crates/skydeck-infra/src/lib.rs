//! Skydeck infrastructure (placeholder; being written).
