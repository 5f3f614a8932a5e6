//! Storage: the only module that imports rusqlite. Schema, forward
//! migrations (`PRAGMA user_version`), the one-time import of an original
//! Piratchat database, and every query, each prepared once.
//!
//! The database is touched only from the event loop thread, so a
//! check-then-insert inside one transaction is race-free. Every statement
//! that runs after start-up goes through `prepare_cached` and is a named
//! `SQL_*` constant, so the test module can `EXPLAIN QUERY PLAN` each of
//! them and pin that it searches an index.

use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Params, Row, TransactionBehavior, params,
};
use std::path::Path;

mod checkpoint;
mod conversation;
mod error;
mod general;
mod history;
mod indexer;
mod moderation;
mod rooms;
mod search;
use crate::ids::UserId;
use checkpoint::BUSY_TIMEOUT;
pub use conversation::StoredRead;
pub use error::StoreError;
use error::fail;
pub use history::StoredSession;
pub use moderation::{AuditRow, NewAudit, StoredModeration, UserRow};
pub use rooms::{StoredMember, StoredRoom};
pub use search::{SearchHit, SearchPage};

/// Forward migrations: `MIGRATIONS[v]` takes the schema from version `v` to
/// `v + 1`, and runs in its own transaction together with the bump of
/// `PRAGMA user_version`. Append new steps; never edit a released one.
const MIGRATIONS: &[&str] = &[
    MIGRATION_1_USERS,
    history::MIGRATION_2_HISTORY,
    history::MIGRATION_3_NO_TS_INDEX,
    history::MIGRATION_4_EVENTS,
    conversation::MIGRATION_5_CONVERSATION,
    history::MIGRATION_6_GENERAL_INDEX,
    general::MIGRATION_7_NO_GENERAL_INDEX,
    search::MIGRATION_8_SEARCH,
    moderation::MIGRATION_9_MODERATION,
    search::MIGRATION_10_SEARCH_OFF_LOOP,
];

/// Version 1: users and one-time facts. The `name_fold` and `key_hash`
/// indexes are deliberately not UNIQUE: rows imported from an original
/// database may collide, and existing accounts are never dropped. New
/// registrations are kept unique by `create_user`.
const MIGRATION_1_USERS: &str = "
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        name_fold TEXT NOT NULL,
        key_hash TEXT NOT NULL
    );
    CREATE INDEX users_name_fold ON users (name_fold);
    CREATE INDEX users_key_hash ON users (key_hash);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
";

/// `meta` key present once an original `keys` table has been imported; its
/// value is the number of rows copied.
const META_ORIGINAL_IMPORTED: &str = "original_keys_imported";

/// The columns that identify an original Piratchat `keys` table.
const ORIGINAL_COLUMNS: [&str; 3] = ["id", "username", "key"];

const SQL_NAME_TAKEN: &str = "SELECT 1 FROM users WHERE name_fold = ?1 LIMIT 1";
const SQL_INSERT_USER: &str = "INSERT INTO users (name, name_fold, key_hash) VALUES (?1, ?2, ?3)";
/// Lowest id first: an imported database may hold one key twice.
const SQL_USER_BY_KEY_HASH: &str =
    "SELECT id, name FROM users WHERE key_hash = ?1 ORDER BY id LIMIT 1";
/// `name <> ?2` is 0 for the exact-case row, so it sorts before imported
/// rows that only match without regard to case; then the lowest id. The
/// sort (a temp B-tree) covers only the rows the index found for one folded
/// name: one, or a few imported collisions.
const SQL_USER_BY_NAME: &str =
    "SELECT id, name FROM users WHERE name_fold = ?1 ORDER BY name <> ?2, id LIMIT 1";
const SQL_LOAD_USERS: &str = "SELECT id, name FROM users ORDER BY id";
const SQL_META_GET: &str = "SELECT value FROM meta WHERE key = ?1";
const SQL_META_PUT: &str = "INSERT INTO meta (key, value) VALUES (?1, ?2)";
const SQL_ORIGINAL_COLUMNS: &str = "SELECT name FROM pragma_table_info('keys')";
const SQL_ORIGINAL_ROWS: &str = "SELECT username, key FROM keys ORDER BY id";
const SQL_INTEGRITY: &str = "PRAGMA integrity_check";
const SQL_CHECKPOINT: &str = "PRAGMA wal_checkpoint(TRUNCATE)";

/// A registered user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: UserId,
    /// The name as registered (case preserved).
    pub name: String,
}

/// The open database.
pub struct Store {
    conn: Connection,
    /// The path (or `:memory:`) that error messages name.
    label: String,
    /// Rows the last open copied from an original `keys` table.
    imported: usize,
    /// A write transaction is open: the loop turn's batch, committed by
    /// [`Store::commit`] before the turn's output is written.
    in_batch: bool,
    /// Where general's messages are not, for paging it by the primary key.
    general: general::Gaps,
    /// The thread that checkpoints the WAL (files only).
    checkpointer: Option<checkpoint::Checkpointer>,
    /// The thread that keeps the search index up to date (files only).
    indexer: Option<indexer::Indexer>,
    /// No index thread can share the database (in memory): each commit
    /// indexes its own events first, in the same transaction.
    index_inline: bool,
    /// The next commit with writes fails (see [`Store::refuse_next_commit`]).
    refuse_commit: bool,
    /// An exclusive `flock` on the database file (files only), held while
    /// the store is open so a second server on the same file refuses to
    /// start. Declared last: it must outlive the SQLite connections, since
    /// closing a descriptor of the file earlier would drop SQLite's own
    /// (POSIX) locks on it.
    _lock: Option<std::fs::File>,
}

impl Store {
    /// Opens (creating if needed) the database file: WAL journal,
    /// `synchronous=NORMAL`, foreign keys on, migrations applied, and the
    /// users of an original Piratchat `keys` table imported once.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_tuned(path, checkpoint::REQUEST_PAGES)
    }

    /// [`Store::open`] with the WAL size (in pages) at which the checkpoint
    /// thread is asked to run.
    fn open_tuned(path: &Path, checkpoint_pages: std::ffi::c_int) -> Result<Store, StoreError> {
        let label = path.display().to_string();
        // No SQLITE_OPEN_URI: the setting is a file name, and one that
        // happens to start with `file:` must not be read as a URI.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| fail(&label, &format!("cannot open{}", missing_dir_hint(path)), e))?;
        // SQLite has created the file but reads it only at the first
        // statement: lock it before the pragmas and migrations touch it.
        let lock = lock_file(path, &label)?;
        let mut store = Store::init(conn, label, true)?;
        store._lock = Some(lock);
        let started = checkpoint::Checkpointer::start(&mut store.conn, path, checkpoint_pages);
        store.checkpointer = Some(started.map_err(|e| StoreError::new(&store.label, e))?);
        let indexer = indexer::Indexer::start(path);
        store.indexer = Some(indexer.map_err(|e| StoreError::new(&store.label, e))?);
        Ok(store)
    }

    /// A private in-memory database with the same schema (fuzzing, tests).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let label = ":memory:".to_owned();
        let conn = Connection::open_in_memory().map_err(|e| fail(&label, "cannot open", e))?;
        Store::init(conn, label, false)
    }

    /// Shared tail of both opens: pragmas, migrations, the one-time import.
    fn init(conn: Connection, label: String, on_disk: bool) -> Result<Store, StoreError> {
        configure(&conn, &label, on_disk)?;
        let mut store = Store {
            conn,
            label,
            imported: 0,
            in_batch: false,
            general: general::Gaps::default(),
            checkpointer: None,
            indexer: None,
            index_inline: !on_disk,
            refuse_commit: false,
            _lock: None,
        };
        store.migrate()?;
        store.imported = store.import_original()?;
        store.general = general::Gaps::load(&store.conn)
            .map_err(|e| fail(&store.label, "reading general's message ids", e))?;
        Ok(store)
    }

    /// How many users the last `open` imported from an original table (0
    /// when there was none or it was imported before).
    pub fn imported_users(&self) -> usize {
        self.imported
    }

    /// Every user, by id: the chat's directory of names (direct messages,
    /// member lists) is built from it once, at start-up.
    pub fn load_users(&mut self) -> Result<Vec<User>, StoreError> {
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_LOAD_USERS)?;
            let rows = stmt.query_map([], user_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        };
        run().map_err(|e| fail(&self.label, "loading users", e))
    }

    /// Registers `name` with the SHA-256 hex of its key. `Ok(None)` when a
    /// user of that name exists without regard to ASCII case.
    ///
    /// The name rules (§3 of the spec) are the caller's: the store keeps
    /// whatever it is given, as it does for imported names.
    pub fn create_user(&mut self, name: &str, key_hash: &str) -> Result<Option<User>, StoreError> {
        debug_assert!(
            is_key_hash(key_hash),
            "create_user wants a SHA-256 hex, got {key_hash:?}"
        );
        // Part of the turn's batch: the 201 goes out only after the commit.
        self.begin_batch()?;
        let label = &self.label;
        let map = |e| fail(label, "registering a user", e);
        let Some(id) = insert_if_name_free(&self.conn, name, key_hash).map_err(map)? else {
            return Ok(None);
        };
        Ok(Some(User {
            id: UserId(id),
            name: name.to_owned(),
        }))
    }

    /// The user whose key hashes to `key_hash`.
    pub fn user_by_key_hash(&mut self, key_hash: &str) -> Result<Option<User>, StoreError> {
        self.query_user(SQL_USER_BY_KEY_HASH, [key_hash], "looking up a user by key")
    }

    /// The user named `name` without regard to ASCII case (an exact-case
    /// match first when imported rows collide).
    pub fn user_by_name(&mut self, name: &str) -> Result<Option<User>, StoreError> {
        let fold = name.to_ascii_lowercase();
        self.query_user(
            SQL_USER_BY_NAME,
            [fold.as_str(), name],
            "looking up a user by name",
        )
    }

    /// `PRAGMA integrity_check` says ok.
    pub fn integrity_ok(&mut self) -> Result<bool, StoreError> {
        let check = || -> rusqlite::Result<bool> {
            // A damaged database answers with one row per problem; a sound
            // one with the single row "ok".
            let first: String = self
                .conn
                .prepare_cached(SQL_INTEGRITY)?
                .query_row([], |r| r.get(0))?;
            Ok(first == "ok")
        };
        check().map_err(|e| fail(&self.label, "checking integrity", e))
    }

    /// An error the checkpoint or search index thread met since the last
    /// call, for the log. The loop asks once per turn; the answer is almost
    /// always `None`.
    pub fn background_error(&self) -> Option<StoreError> {
        let error = (self.checkpointer.as_ref().and_then(|c| c.take_error()))
            .or_else(|| self.indexer.as_ref().and_then(|i| i.take_error()))?;
        Some(StoreError::new(&self.label, error))
    }

    /// WAL checkpoints the checkpoint thread has completed.
    pub fn checkpoints(&self) -> u64 {
        self.checkpointer.as_ref().map_or(0, |c| c.completed())
    }

    /// Stops the checkpoint thread, checkpoints the WAL and closes the
    /// database (clean shutdown).
    pub fn close(mut self) -> Result<(), StoreError> {
        self.commit()?;
        if let Some(indexer) = self.indexer.take() {
            indexer
                .stop()
                .map_err(|e| StoreError::new(&self.label, e))?;
        }
        if let Some(checkpointer) = self.checkpointer.take() {
            let stopped = checkpointer.stop(&mut self.conn);
            stopped.map_err(|e| StoreError::new(&self.label, e))?;
        }
        let Store { conn, label, .. } = self;
        // The row (busy, log pages, checkpointed pages) is not checked: busy
        // only means another connection still reads the WAL, which SQLite
        // then checkpoints later. A failure to run at all is an error.
        let checkpoint = conn
            .prepare_cached(SQL_CHECKPOINT)
            .and_then(|mut s| s.query_row([], |_| Ok(())));
        checkpoint.map_err(|e| fail(&label, "checkpointing the WAL", e))?;
        // `_lock` goes with `self` only after this: see its doc.
        conn.close().map_err(|(_, e)| fail(&label, "closing", e))
    }

    /// Runs a cached query that yields at most one `(id, name)` row.
    fn query_user<P: Params>(
        &self,
        sql: &str,
        params: P,
        doing: &str,
    ) -> Result<Option<User>, StoreError> {
        let run = || {
            self.conn
                .prepare_cached(sql)?
                .query_row(params, user_from_row)
                .optional()
        };
        run().map_err(|e| fail(&self.label, doing, e))
    }

    /// Applies the pending migrations, one transaction each. The version is
    /// read inside the (immediate, so write-locked) transaction, so a second
    /// process opening the same file at the same time cannot apply a step
    /// twice.
    fn migrate(&mut self) -> Result<(), StoreError> {
        let label = &self.label;
        let map = |e| fail(label, "migrating the schema", e);
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(map)?;
            let version: i64 = tx
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(map)?;
            let Some(step) = pending_migration(version, label)? else {
                return Ok(());
            };
            tx.execute_batch(step).map_err(map)?;
            tx.pragma_update(None, "user_version", version + 1)
                .map_err(map)?;
            tx.commit().map_err(map)?;
        }
    }

    /// Copies an original `keys` table into `users` once, in one
    /// transaction, and returns the number of rows copied (0 when there is
    /// no such table or the `meta` row says it was done before). The
    /// `keys` table is only read.
    fn import_original(&mut self) -> Result<usize, StoreError> {
        let label = &self.label;
        let map = |e| fail(label, "importing the original keys table", e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map)?;
        if !has_original_table(&tx).map_err(map)?
            || meta_get(&tx, META_ORIGINAL_IMPORTED)
                .map_err(map)?
                .is_some()
        {
            return Ok(0);
        }
        let copied = copy_original_rows(&tx).map_err(map)?;
        meta_put(&tx, META_ORIGINAL_IMPORTED, &copied.to_string()).map_err(map)?;
        tx.commit().map_err(map)?;
        Ok(copied)
    }
}

/// Sets the connection pragmas (WAL only on a file: an in-memory database
/// has no journal file to put in WAL mode).
fn configure(conn: &Connection, label: &str, on_disk: bool) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| fail(label, "setting busy_timeout", e))?;
    if on_disk {
        enable_wal(conn, label)?;
    }
    // NORMAL is durable across application crashes in WAL mode and only
    // risks the last commits on power loss, without an fsync per commit.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| fail(label, "setting synchronous=NORMAL", e))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(|e| fail(label, "setting foreign_keys=ON", e))?;
    // A deleted message's text must be gone from the file, not left in a
    // page's free space (SPEC §10): freed cells are zeroed. Messages are
    // small and deletions rare, so the cost is a few zeroed bytes.
    conn.pragma_update(None, "secure_delete", true)
        .map_err(|e| fail(label, "setting secure_delete=ON", e))
}

/// Puts the file in WAL mode and verifies it took: SQLite answers
/// `journal_mode=WAL` with the mode actually in force instead of failing
/// (e.g. `delete` for a file it could only open read-only).
fn enable_wal(conn: &Connection, label: &str) -> Result<(), StoreError> {
    // Without write permission SQLite silently falls back to read-only;
    // say so plainly rather than fail later on the first write.
    if conn
        .is_readonly("main")
        .map_err(|e| fail(label, "opening", e))?
    {
        return Err(StoreError::new(
            label,
            "opened read-only (no write permission?)",
        ));
    }
    // The first statement to read the file, so "file is not a database"
    // surfaces here.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| fail(label, "setting journal_mode=WAL", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::new(
            label,
            format_args!("journal_mode is {mode}, not wal"),
        ));
    }
    Ok(())
}

/// Takes an exclusive `flock` on the database file, so that two servers
/// never share one file: each would hand out the same message ids from its
/// own memory, and one's rows would collide with (and fail the commits of)
/// the other's. SQLite's own locks only serialize transactions, they do
/// not keep a second writer out. `flock` is independent of the POSIX
/// locks SQLite takes, and the `sqlite3` shell or a backup tool (which do
/// not `flock`) can still read the file.
fn lock_file(path: &Path, label: &str) -> Result<std::fs::File, StoreError> {
    let file = std::fs::File::open(path).map_err(|e| StoreError::new(label, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError(format!(
            "database {label} is in use by another process"
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StoreError::new(label, format_args!("cannot lock: {e}")))
        }
    }
}

/// SQLite says only "unable to open database file"; name the usual cause.
fn missing_dir_hint(path: &Path) -> String {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            format!(" (directory {} does not exist)", dir.display())
        }
        _ => String::new(),
    }
}

/// The migration that follows `version`, `None` when up to date, or an
/// error for a version this build does not know.
fn pending_migration(version: i64, label: &str) -> Result<Option<&'static str>, StoreError> {
    let known = MIGRATIONS.len();
    match usize::try_from(version) {
        Ok(v) if v <= known => Ok(MIGRATIONS.get(v).copied()),
        Ok(_) => Err(StoreError::new(
            label,
            format_args!(
                "database schema version {version} is newer than this server supports ({known})"
            ),
        )),
        // user_version is a signed 32-bit header field; we never write a
        // negative one.
        Err(_) => Err(StoreError::new(
            label,
            format_args!("invalid schema version {version}"),
        )),
    }
}

/// Inserts the user unless the folded name is taken; the new row id.
/// Checked here rather than by a UNIQUE index because imported rows may
/// already collide and must be kept.
fn insert_if_name_free(
    conn: &Connection,
    name: &str,
    key_hash: &str,
) -> rusqlite::Result<Option<i64>> {
    let fold = name.to_ascii_lowercase();
    if conn.prepare_cached(SQL_NAME_TAKEN)?.exists([&fold])? {
        return Ok(None);
    }
    conn.prepare_cached(SQL_INSERT_USER)?
        .execute(params![name, fold, key_hash])?;
    Ok(Some(conn.last_insert_rowid()))
}

/// Whether a table `keys` with the original's columns exists.
fn has_original_table(conn: &Connection) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare_cached(SQL_ORIGINAL_COLUMNS)?;
    let columns = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // SQL column names are case-insensitive.
    Ok(ORIGINAL_COLUMNS
        .iter()
        .all(|want| columns.iter().any(|c| c.eq_ignore_ascii_case(want))))
}

/// Copies every `keys` row, in id order, names as they are (also those
/// that collide or break today's rules); the number copied.
fn copy_original_rows(conn: &Connection) -> rusqlite::Result<usize> {
    let mut select = conn.prepare_cached(SQL_ORIGINAL_ROWS)?;
    let mut insert = conn.prepare_cached(SQL_INSERT_USER)?;
    let mut rows = select.query([])?;
    let mut copied = 0;
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        let key_hash: String = row.get(1)?;
        insert.execute(params![name, name.to_ascii_lowercase(), key_hash])?;
        copied += 1;
    }
    Ok(copied)
}

/// The `meta` value under `key`.
fn meta_get(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(SQL_META_GET)?
        .query_row([key], |r| r.get(0))
        .optional()
}

/// Records a one-time fact in `meta`.
fn meta_put(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(SQL_META_PUT)?
        .execute([key, value])
        .map(drop)
}

/// `(id, name)` as a `User`.
fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: UserId(row.get(0)?),
        name: row.get(1)?,
    })
}

/// 64 lowercase hex characters, the shape `secret::sha256_hex` produces.
fn is_key_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::secret::{fill_random, hex, sha256_hex};
    use std::path::PathBuf;

    /// A fresh directory under the system temp dir, removed on drop (also
    /// when the test panics).
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new() -> TempDir {
            let dir = std::env::temp_dir().join(format!("piratchat-store-{}", random_hex(8)));
            std::fs::create_dir(&dir).expect("create temp dir");
            TempDir(dir)
        }

        pub(crate) fn file(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn random_hex(len: usize) -> String {
        let mut bytes = vec![0u8; len];
        fill_random(&mut bytes);
        hex(&bytes)
    }

    /// A new user key and its hash, like registration makes them.
    fn new_key() -> (String, String) {
        let key = random_hex(32);
        let hash = sha256_hex(&key);
        (key, hash)
    }

    /// Fixture: a fresh database file in a fresh directory.
    fn fresh() -> (TempDir, PathBuf, Store) {
        let dir = TempDir::new();
        let path = dir.file("db.sqlite");
        let store = Store::open(&path).expect("open fresh database");
        (dir, path, store)
    }

    fn count(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    fn user_version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    fn open_err(path: &Path) -> String {
        match Store::open(path) {
            Ok(_) => panic!("{} opened, expected an error", path.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn create_then_lookup_by_key_and_name() {
        let (_dir, _path, mut store) = fresh();
        let (_, hash) = new_key();
        let alice = store
            .create_user("alice", &hash)
            .unwrap()
            .expect("name is free");
        assert_eq!(alice.name, "alice");
        assert_eq!(store.user_by_key_hash(&hash).unwrap(), Some(alice.clone()));
        assert_eq!(store.user_by_name("alice").unwrap(), Some(alice));
        assert_eq!(store.user_by_key_hash(&new_key().1).unwrap(), None);
        assert_eq!(store.user_by_name("bob").unwrap(), None);
        assert_eq!(store.imported_users(), 0);
        assert!(store.integrity_ok().unwrap());
        store.close().unwrap();
    }

    #[test]
    fn name_taken_in_any_case_is_refused() {
        let (_dir, _path, mut store) = fresh();
        store
            .create_user("alice", &new_key().1)
            .unwrap()
            .expect("name is free");
        for other in ["alice", "Alice", "ALICE", "aLiCe"] {
            assert_eq!(
                store.create_user(other, &new_key().1).unwrap(),
                None,
                "{other}"
            );
        }
        assert_eq!(count(&store.conn, "users"), 1, "refusals write nothing");
        assert!(store.create_user("alice2", &new_key().1).unwrap().is_some());
    }

    #[test]
    fn lookup_by_name_in_any_case_returns_registered_case() {
        let (_dir, _path, mut store) = fresh();
        store
            .create_user("MixedCase", &new_key().1)
            .unwrap()
            .unwrap();
        store.create_user("lower", &new_key().1).unwrap().unwrap();
        let table = [
            ("MixedCase", Some("MixedCase")),
            ("mixedcase", Some("MixedCase")),
            ("MIXEDCASE", Some("MixedCase")),
            ("LOWER", Some("lower")),
            ("Lower", Some("lower")),
            ("lowe", None),
            ("lower ", None),
        ];
        for (query, want) in table {
            let got = store.user_by_name(query).unwrap().map(|u| u.name);
            assert_eq!(got.as_deref(), want, "user_by_name({query:?})");
        }
    }

    #[test]
    fn file_is_in_wal_mode_with_pragmas_set() {
        let (_dir, path, store) = fresh();
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = store
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1, "NORMAL");
        let fk: i64 = store
            .conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        store.close().unwrap();
        // A clean close checkpoints (TRUNCATE) and removes the WAL.
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        assert!(
            std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
            "WAL left behind"
        );
    }

    /// Size of a file, 0 when it does not exist.
    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }

    /// Registers one user and commits: a transaction that appends pages to
    /// the WAL.
    fn commit_one_user(store: &mut Store, n: usize) {
        let (_, hash) = new_key();
        store.create_user(&format!("u{n}"), &hash).unwrap().unwrap();
        store.commit().unwrap();
    }

    #[test]
    fn the_checkpoint_thread_copies_the_wal_into_the_file() {
        let dir = TempDir::new();
        let path = dir.file("db.sqlite");
        let mut store = Store::open_tuned(&path, 4).unwrap();
        let before = file_len(&path);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut n = 0;
        while store.checkpoints() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "none after {n} commits"
            );
            commit_one_user(&mut store, n);
            n += 1;
        }
        // Pages reach the database file only through a checkpoint.
        assert!(file_len(&path) > before, "the file did not grow");
        assert!(store.background_error().is_none());
        store.close().unwrap();
        let mut again = Store::open(&path).unwrap();
        assert_eq!(count(&again.conn, "users"), n as i64);
        assert!(again.integrity_ok().unwrap());
    }

    #[test]
    fn the_loop_connection_never_checkpoints_on_its_own() {
        let dir = TempDir::new();
        let path = dir.file("db.sqlite");
        // No request ever reaches the thread, so only the loop's own
        // connection could move pages into the file.
        let mut store = Store::open_tuned(&path, std::ffi::c_int::MAX).unwrap();
        let before = file_len(&path);
        // Each user is at least three pages (table and two indexes):
        // 500 of them pass SQLite's automatic threshold of 1,000 pages.
        for n in 0..500 {
            commit_one_user(&mut store, n);
        }
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        assert!(file_len(&wal) > 1000 * 4096, "{}", file_len(&wal));
        assert_eq!(file_len(&path), before, "the loop checkpointed");
        assert_eq!(store.checkpoints(), 0);
        store.close().unwrap();
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused_until_the_first_closes() {
        let (_dir, path, store) = fresh();
        let err = open_err(&path);
        let want = format!("database {} is in use by another process", path.display());
        assert_eq!(err, want);
        store.close().unwrap();
        Store::open(&path).expect("free again").close().unwrap();
    }

    #[test]
    fn a_refused_commit_stores_nothing_of_the_batch() {
        let (_dir, _path, mut store) = fresh();
        store.refuse_next_commit();
        // A commit without writes is not the one refused.
        store.commit().unwrap();
        store.create_user("gone", &new_key().1).unwrap().unwrap();
        assert!(store.commit().is_err());
        assert!(!store.has_batch());
        assert_eq!(store.user_by_name("gone").unwrap(), None);
        store.create_user("kept", &new_key().1).unwrap().unwrap();
        store.commit().unwrap();
        store.create_user("dropped", &new_key().1).unwrap().unwrap();
        store.rollback();
        assert_eq!(count(&store.conn, "users"), 1);
    }

    #[test]
    fn reopening_migrates_once() {
        let (_dir, path, mut store) = fresh();
        let (_, hash) = new_key();
        store.create_user("alice", &hash).unwrap().unwrap();
        store.close().unwrap();
        for _ in 0..2 {
            let mut again = Store::open(&path).expect("reopen");
            assert_eq!(user_version(&again.conn), MIGRATIONS.len() as i64);
            assert_eq!(count(&again.conn, "users"), 1);
            assert_eq!(
                again.user_by_key_hash(&hash).unwrap().unwrap().name,
                "alice"
            );
            again.close().unwrap();
        }
    }

    #[test]
    fn newer_schema_version_is_refused() {
        let (_dir, path, store) = fresh();
        let newer = MIGRATIONS.len() as i64 + 1;
        store
            .conn
            .pragma_update(None, "user_version", newer)
            .unwrap();
        store.close().unwrap();
        let err = open_err(&path);
        assert!(
            err.contains(&format!(
                "database schema version {newer} is newer than this server supports"
            )),
            "{err}"
        );
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn negative_schema_version_is_refused() {
        assert!(pending_migration(-1, "x").is_err());
        assert_eq!(pending_migration(0, "x").unwrap(), Some(MIGRATIONS[0]));
        assert_eq!(
            pending_migration(MIGRATIONS.len() as i64, "x").unwrap(),
            None
        );
    }

    #[test]
    fn non_database_file_is_refused() {
        let dir = TempDir::new();
        let path = dir.file("notes.txt");
        std::fs::write(
            &path,
            "this is not a database, only some text\n".repeat(100),
        )
        .unwrap();
        let err = open_err(&path);
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("not a database"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn path_in_missing_directory_is_refused() {
        let dir = TempDir::new();
        let path = dir.file("no-such-dir").join("db.sqlite");
        let err = open_err(&path);
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("does not exist"), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn in_memory_has_the_same_schema() {
        let mut store = Store::open_in_memory().unwrap();
        assert_eq!(user_version(&store.conn), MIGRATIONS.len() as i64);
        let (_, hash) = new_key();
        let bob = store.create_user("Bob", &hash).unwrap().unwrap();
        assert_eq!(store.user_by_name("bob").unwrap(), Some(bob));
        assert_eq!(store.create_user("BOB", &new_key().1).unwrap(), None);
        assert!(store.integrity_ok().unwrap());
        store.close().unwrap();
    }

    /// Names for the original database: a case collision, a trailing space
    /// and a character today's rules refuse; existing accounts keep them.
    const ORIGINAL_NAMES: [&str; 5] = ["Bob", "bob", "carol ", "dave", "eve-x"];

    /// Fixture: a database exactly as the original server makes it, plus
    /// the users' keys in insertion order. A row is deleted so ids have a gap.
    fn original_db(path: &Path) -> Vec<(String, String)> {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS keys(id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL, key TEXT NOT NULL)",
        )
        .unwrap();
        let mut users = Vec::new();
        for name in ["gone"].iter().chain(ORIGINAL_NAMES.iter()) {
            let (key, hash) = new_key();
            conn.execute(
                "INSERT INTO keys (username, key) VALUES (?1, ?2)",
                [*name, hash.as_str()],
            )
            .unwrap();
            users.push((name.to_string(), key));
        }
        conn.execute("DELETE FROM keys WHERE username = 'gone'", [])
            .unwrap();
        users.remove(0);
        users
    }

    /// Everything about the `keys` table: its definition and every row.
    fn keys_snapshot(path: &Path) -> (String, Vec<(i64, String, String)>) {
        let conn = Connection::open(path).unwrap();
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'keys'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let mut stmt = conn
            .prepare("SELECT id, username, key FROM keys ORDER BY id")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        (sql, rows.collect::<rusqlite::Result<_>>().unwrap())
    }

    #[test]
    fn original_database_is_imported_once() {
        let dir = TempDir::new();
        let path = dir.file("db.sqlite");
        let users = original_db(&path);
        let before = keys_snapshot(&path);

        let mut store = Store::open(&path).expect("open original");
        assert_eq!(store.imported_users(), users.len());
        let mut last_id = UserId(0);
        for (name, key) in &users {
            let found = store
                .user_by_key_hash(&sha256_hex(key))
                .unwrap()
                .expect("imported");
            assert_eq!(&found.name, name, "names kept as they are");
            assert!(found.id > last_id, "imported in id order");
            last_id = found.id;
        }
        assert!(store.integrity_ok().unwrap());
        store.close().unwrap();
        assert_eq!(keys_snapshot(&path), before, "keys table untouched");

        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.imported_users(), 0);
        assert_eq!(
            count(&store.conn, "users"),
            users.len() as i64,
            "no duplicates"
        );
        store.close().unwrap();
        assert_eq!(keys_snapshot(&path), before);
    }

    #[test]
    fn imported_collisions_resolve_by_exact_case_then_lowest_id() {
        let dir = TempDir::new();
        let path = dir.file("db.sqlite");
        original_db(&path);
        let mut store = Store::open(&path).unwrap();
        let table = [
            ("Bob", Some("Bob")),
            ("bob", Some("bob")),
            ("BOB", Some("Bob")), // no exact match: the lowest id
            ("carol ", Some("carol ")),
            ("carol", None),
            ("EVE-X", Some("eve-x")),
        ];
        for (query, want) in table {
            let got = store.user_by_name(query).unwrap().map(|u| u.name);
            assert_eq!(got.as_deref(), want, "user_by_name({query:?})");
        }
        // The rules apply to new registrations: no third bob.
        assert_eq!(store.create_user("bOB", &new_key().1).unwrap(), None);
    }

    #[test]
    fn keys_table_of_another_shape_is_not_imported() {
        let dir = TempDir::new();
        let path = dir.file("db.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE keys(id INTEGER PRIMARY KEY, secret TEXT); INSERT INTO keys (secret) VALUES ('x')")
            .unwrap();
        drop(conn);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.imported_users(), 0);
        assert_eq!(count(&store.conn, "users"), 0);
        assert_eq!(count(&store.conn, "meta"), 0);
    }

    #[test]
    fn queries_search_an_index() {
        let (_dir, _path, store) = fresh();
        let table = [
            (SQL_NAME_TAKEN, "users_name_fold"),
            (SQL_USER_BY_NAME, "users_name_fold"),
            (SQL_USER_BY_KEY_HASH, "users_key_hash"),
            (SQL_META_GET, "sqlite_autoindex_meta_1"),
        ];
        for (sql, index) in table {
            let mut stmt = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            // Bound to NULLs: the plan depends on the SQL, not the values.
            let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
            let rows = stmt
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get(3))
                .unwrap();
            let plan: Vec<String> = rows.collect::<rusqlite::Result<_>>().unwrap();
            assert!(
                plan.iter()
                    .any(|step| step.contains(&format!("INDEX {index} "))),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.starts_with("SCAN")),
                "{sql}: {plan:?}"
            );
        }
    }
}
