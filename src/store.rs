//! Storage: the only module that imports rusqlite. Schema, forward
//! migrations (`PRAGMA user_version`), the one-time import of an original
//! Piratchat database, and every query, each prepared once.

use std::path::Path;

/// A user's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub i64);

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: UserId,
    /// The name as registered (case preserved).
    pub name: String,
}

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

/// The open database.
pub struct Store {
    _p: (),
}

impl Store {
    /// Opens (creating if needed) the database file: WAL journal,
    /// `synchronous=NORMAL`, foreign keys on, migrations applied, and the
    /// users of an original Piratchat `keys` table imported once.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        todo!("helper: store")
    }

    /// A private in-memory database with the same schema (fuzzing, tests).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        todo!("helper: store")
    }

    /// How many users the last `open` imported from an original table (0
    /// when there was none or it was imported before).
    pub fn imported_users(&self) -> usize {
        todo!("helper: store")
    }

    /// Registers `name` with the SHA-256 hex of its key. `Ok(None)` when a
    /// user of that name exists without regard to ASCII case.
    pub fn create_user(&mut self, name: &str, key_hash: &str) -> Result<Option<User>, StoreError> {
        todo!("helper: store")
    }

    /// The user whose key hashes to `key_hash`.
    pub fn user_by_key_hash(&mut self, key_hash: &str) -> Result<Option<User>, StoreError> {
        todo!("helper: store")
    }

    /// The user named `name` without regard to ASCII case (an exact-case
    /// match first when imported rows collide).
    pub fn user_by_name(&mut self, name: &str) -> Result<Option<User>, StoreError> {
        todo!("helper: store")
    }

    /// `PRAGMA integrity_check` says ok.
    pub fn integrity_ok(&mut self) -> Result<bool, StoreError> {
        todo!("helper: store")
    }

    /// Checkpoints the WAL and closes the database (clean shutdown).
    pub fn close(self) -> Result<(), StoreError> {
        todo!("helper: store")
    }
}
