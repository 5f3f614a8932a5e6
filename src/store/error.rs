//! The store's one error type: which database, what the store was doing,
//! and SQLite's message, on one line.

/// A database failure; `Display` is one line for the log or the start-up
/// error message.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// "database <label>: <what>", folded onto one line (SQLite messages
    /// can carry newlines, and a log line must stay one line).
    pub(super) fn new(label: &str, what: impl std::fmt::Display) -> StoreError {
        let text = format!("database {label}: {what}");
        StoreError(text.replace(['\n', '\r'], " "))
    }
}

/// Wraps a rusqlite error with the database and what we were doing.
pub(super) fn fail(label: &str, doing: &str, e: rusqlite::Error) -> StoreError {
    StoreError::new(label, format_args!("{doing}: {e}"))
}
