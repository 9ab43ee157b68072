//! Bounds on what one request may ask for (pattern sizes, task sizes and
//! counts). The bounds themselves live beside the types they limit; this
//! is how a refusal reads, so the HTTP layer can tell "over a limit" (400,
//! with the limit named) from a malformed body (422).

/// Every refusal for a broken bound starts with this.
pub const LIMIT_ERROR_PREFIX: &str = "over a limit: ";

/// `message`, marked as a broken bound.
pub fn limit_error(message: impl std::fmt::Display) -> String {
    format!("{LIMIT_ERROR_PREFIX}{message}")
}

/// Whether `message` (an error's text, possibly wrapped by serde) reports
/// a broken bound.
pub fn is_limit_error(message: &str) -> bool {
    message.starts_with(LIMIT_ERROR_PREFIX)
}
