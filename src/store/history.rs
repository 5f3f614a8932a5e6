//! Stored chat messages and sessions, and the per-turn write batch.
//!
//! Writes of one loop turn (messages, new and ended sessions,
//! registrations) go into one transaction, committed once before the turn's
//! output is written: a message is acknowledged only once it is on disk as
//! far as `synchronous=NORMAL` promises (it survives a crash of the
//! process; a power loss may take the last commits).

use super::{Store, StoreError, UserId, fail};
use rusqlite::{OptionalExtension, Row, params};

/// Version 2: messages (with the client's deduplication id) and sessions
/// (by the SHA-256 of their token, never the token itself).
pub(super) const MIGRATION_2_HISTORY: &str = "
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (id),
        ts INTEGER NOT NULL,
        text TEXT NOT NULL,
        client_id TEXT
    );
    CREATE INDEX messages_ts ON messages (ts);
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (id),
        last_active INTEGER NOT NULL
    ) WITHOUT ROWID;
";

/// Version 3: no index on `ts`. Message ids and times rise together (the
/// loop assigns both), so the queries by time walk the primary key from one
/// end and stop at the boundary instead; an index would cost every message
/// insert a second B-tree page in the WAL, which is half of what a commit
/// writes and measurably the delivery latency's tail under load.
pub(super) const MIGRATION_3_NO_TS_INDEX: &str = "DROP INDEX messages_ts;";

const SQL_INSERT_MESSAGE: &str =
    "INSERT INTO messages (id, user_id, ts, text, client_id) VALUES (?1, ?2, ?3, ?4, ?5)";
const SQL_NEWEST_MESSAGE: &str = "SELECT id, ts FROM messages ORDER BY id DESC LIMIT 1";
const SQL_MESSAGES_BEFORE: &str = "SELECT m.id, u.name, m.text, m.ts FROM messages m \
     JOIN users u ON u.id = m.user_id WHERE m.id < ?1 ORDER BY m.id DESC LIMIT ?2";
const SQL_MESSAGES_AFTER: &str = "SELECT m.id, u.name, m.text, m.ts FROM messages m \
     JOIN users u ON u.id = m.user_id WHERE m.id > ?1 ORDER BY m.id LIMIT ?2";
/// Newest first; the caller stops at the first row older than its window.
const SQL_NEWEST_FIRST: &str = "SELECT user_id, client_id, id, ts FROM messages ORDER BY id DESC";
/// Both prunes keep the newest message whatever the limits say: ids
/// continue after the newest stored one on restart, so deleting it would
/// hand out acknowledged ids again.
const SQL_PRUNE_BEFORE_ID: &str = "DELETE FROM messages WHERE id IN \
     (SELECT id FROM messages WHERE id <= ?1 AND id < (SELECT max(id) FROM messages) \
     ORDER BY id LIMIT ?2)";
/// Looks only at the `?2` oldest rows, so a prune step reads a bounded
/// number of rows even when nothing is old enough. Should the wall clock
/// have gone back between runs, an old row behind a newer-stamped one
/// waits until that one is old too.
const SQL_PRUNE_BEFORE_TS: &str = "DELETE FROM messages WHERE id IN \
     (SELECT id FROM (SELECT id, ts FROM messages ORDER BY id LIMIT ?2) WHERE ts < ?1 \
     AND id < (SELECT max(id) FROM messages))";
const SQL_INSERT_SESSION: &str =
    "INSERT OR REPLACE INTO sessions (token_hash, user_id, last_active) VALUES (?1, ?2, ?3)";
const SQL_TOUCH_SESSION: &str = "UPDATE sessions SET last_active = ?2 WHERE token_hash = ?1";
const SQL_DELETE_SESSION: &str = "DELETE FROM sessions WHERE token_hash = ?1";
const SQL_LOAD_SESSIONS: &str = "SELECT s.token_hash, s.user_id, u.name, s.last_active \
     FROM sessions s JOIN users u ON u.id = s.user_id";

/// A message to store: its id is assigned by the chat, in order.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    /// Message id (increasing).
    pub id: i64,
    /// Its author.
    pub user: UserId,
    /// Server time, Unix milliseconds.
    pub ts: i64,
    /// The text.
    pub text: &'a str,
    /// The client's deduplication id, if it sent one.
    pub client_id: Option<&'a str>,
}

/// A stored message as history and resume return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Message id.
    pub id: i64,
    /// The author's name as registered.
    pub author: String,
    /// The text.
    pub text: String,
    /// Server time, Unix milliseconds.
    pub ts: i64,
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// SHA-256 hex of the token.
    pub token_hash: String,
    /// Its user.
    pub user: UserId,
    /// The user's name.
    pub name: String,
    /// Last activity, Unix milliseconds (as of the last flush).
    pub last_active: i64,
}

/// A deduplication id seen recently: `(user, client_id, message id, ts)`.
pub type RecentClientId = (UserId, String, i64, i64);

impl Store {
    /// Opens the turn's write transaction if none is open.
    pub(super) fn begin_batch(&mut self) -> Result<(), StoreError> {
        if self.in_batch && self.conn.is_autocommit() {
            // SQLite rolled the batch back on its own (it does so after
            // some I/O and full-disk errors): a write now would be
            // committed by itself, outside the turn's all-or-nothing.
            return Err(StoreError::new(
                &self.label,
                "the write batch was rolled back after an error",
            ));
        }
        if !self.in_batch {
            self.conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| fail(&self.label, "starting a write batch", e))?;
            self.in_batch = true;
        }
        Ok(())
    }

    /// Commits the turn's writes, if any. On failure the batch is rolled
    /// back, so the next turn starts clean.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        if !std::mem::replace(&mut self.in_batch, false) {
            return Ok(());
        }
        if std::mem::take(&mut self.refuse_commit) {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(StoreError::new(
                &self.label,
                "committing: refused (test hook)",
            ));
        }
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(fail(&self.label, "committing", e));
        }
        Ok(())
    }

    /// Drops the turn's writes, if any (a write of the turn failed, so
    /// none of them may be stored: the turn is all or nothing).
    pub fn rollback(&mut self) {
        if std::mem::replace(&mut self.in_batch, false) && !self.conn.is_autocommit() {
            // Nothing to do when it fails: the connection is then in
            // autocommit mode already, i.e. rolled back.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Makes the next commit that has writes fail as a full disk would:
    /// the batch is rolled back and `commit` returns an error. For tests
    /// and the fuzzer, which cannot fill a disk on every run.
    pub fn refuse_next_commit(&mut self) {
        self.refuse_commit = true;
    }

    /// Whether the turn has uncommitted writes.
    pub fn has_batch(&self) -> bool {
        self.in_batch
    }

    /// Stores an accepted message in the turn's batch.
    pub fn insert_message(&mut self, m: &NewMessage<'_>) -> Result<(), StoreError> {
        self.begin_batch()?;
        self.conn
            .prepare_cached(SQL_INSERT_MESSAGE)
            .and_then(|mut s| s.execute(params![m.id, m.user.0, m.ts, m.text, m.client_id]))
            .map(drop)
            .map_err(|e| fail(&self.label, "storing a message", e))
    }

    /// The newest stored message's id and time; `(0, i64::MIN)` when there
    /// is none.
    pub fn newest_message(&mut self) -> Result<(i64, i64), StoreError> {
        self.conn
            .prepare_cached(SQL_NEWEST_MESSAGE)
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map(|v| v.unwrap_or((0, i64::MIN)))
            .map_err(|e| fail(&self.label, "reading the newest message", e))
    }

    /// Up to `limit` messages with ids below `before` (the newest ones),
    /// oldest first.
    pub fn messages_before(
        &mut self,
        before: i64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut page = self.query_messages(SQL_MESSAGES_BEFORE, before, limit)?;
        page.reverse();
        Ok(page)
    }

    /// Up to `limit` messages with ids above `after`, oldest first.
    pub fn messages_after(
        &mut self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.query_messages(SQL_MESSAGES_AFTER, after, limit)
    }

    fn query_messages(
        &mut self,
        sql: &str,
        bound: i64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let run = || {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let rows = stmt.query_map(params![bound, limit], message_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        };
        run().map_err(|e| fail(&self.label, "reading messages", e))
    }

    /// Deduplication ids of messages stored at or after `since_ts`, oldest
    /// first. Reads the newest rows back to the first one older than
    /// `since_ts`: the window's rows and one more.
    pub fn recent_client_ids(&mut self, since_ts: i64) -> Result<Vec<RecentClientId>, StoreError> {
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_NEWEST_FIRST)?;
            let mut rows = stmt.query([])?;
            let mut recent = Vec::new();
            while let Some(r) = rows.next()? {
                let ts: i64 = r.get(3)?;
                if ts < since_ts {
                    break;
                }
                if let Some(client_id) = r.get::<_, Option<String>>(1)? {
                    recent.push((UserId(r.get(0)?), client_id, r.get(2)?, ts));
                }
            }
            recent.reverse();
            Ok::<_, rusqlite::Error>(recent)
        };
        run().map_err(|e| fail(&self.label, "reading recent client ids", e))
    }

    /// Deletes at most `batch` messages with ids up to `max_id` or older
    /// than `before_ts` (each bound optional), in the turn's batch; returns
    /// how many went. Small batches keep every transaction short.
    pub fn prune_messages(
        &mut self,
        max_id: Option<i64>,
        before_ts: Option<i64>,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        let mut deleted = 0;
        for (sql, bound) in [
            (SQL_PRUNE_BEFORE_ID, max_id),
            (SQL_PRUNE_BEFORE_TS, before_ts),
        ] {
            let Some(bound) = bound else { continue };
            self.begin_batch()?;
            deleted += self
                .conn
                .prepare_cached(sql)
                .and_then(|mut s| s.execute(params![bound, batch]))
                .map_err(|e| fail(&self.label, "pruning messages", e))?;
        }
        Ok(deleted)
    }

    /// Stores a new session (in the turn's batch).
    pub fn insert_session(
        &mut self,
        token_hash: &str,
        user: UserId,
        last_active: i64,
    ) -> Result<(), StoreError> {
        self.session_write(SQL_INSERT_SESSION, params![token_hash, user.0, last_active])
    }

    /// Records a session's last activity (in the turn's batch).
    pub fn touch_session(&mut self, token_hash: &str, last_active: i64) -> Result<(), StoreError> {
        self.session_write(SQL_TOUCH_SESSION, params![token_hash, last_active])
    }

    /// Forgets an ended session (in the turn's batch).
    pub fn delete_session(&mut self, token_hash: &str) -> Result<(), StoreError> {
        self.session_write(SQL_DELETE_SESSION, params![token_hash])
    }

    fn session_write(&mut self, sql: &str, p: impl rusqlite::Params) -> Result<(), StoreError> {
        self.begin_batch()?;
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(p))
            .map(drop)
            .map_err(|e| fail(&self.label, "writing a session", e))
    }

    /// Every stored session, for the restart.
    pub fn load_sessions(&mut self) -> Result<Vec<StoredSession>, StoreError> {
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_LOAD_SESSIONS)?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredSession {
                    token_hash: r.get(0)?,
                    user: UserId(r.get(1)?),
                    name: r.get(2)?,
                    last_active: r.get(3)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        };
        run().map_err(|e| fail(&self.label, "loading sessions", e))
    }

    /// Runs `EXPLAIN QUERY PLAN` on `sql`, for tests of index use.
    #[cfg(test)]
    pub(super) fn plan(&self, sql: &str) -> String {
        let mut stmt = self
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }
}

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: r.get(0)?,
        author: r.get(1)?,
        text: r.get(2)?,
        ts: r.get(3)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_user() -> (Store, UserId) {
        let mut store = Store::open_in_memory().unwrap();
        let hash = crate::secret::sha256_hex("k");
        let user = store.create_user("ann", &hash).unwrap().unwrap();
        store.commit().unwrap();
        (store, user.id)
    }

    fn put(store: &mut Store, user: UserId, id: i64, client_id: Option<&str>) {
        let text = format!("m{id}");
        let m = NewMessage {
            id,
            user,
            ts: 1000 + id,
            text: &text,
            client_id,
        };
        store.insert_message(&m).unwrap();
    }

    #[test]
    fn pages_before_and_after() {
        let (mut store, user) = store_with_user();
        for id in 1..=10 {
            put(&mut store, user, id, None);
        }
        store.commit().unwrap();
        let ids = |v: Vec<StoredMessage>| v.iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(store.messages_before(i64::MAX, 3).unwrap()), [8, 9, 10]);
        assert_eq!(ids(store.messages_before(8, 3).unwrap()), [5, 6, 7]);
        assert_eq!(ids(store.messages_before(2, 3).unwrap()), [1]);
        assert_eq!(ids(store.messages_after(7, 100).unwrap()), [8, 9, 10]);
        assert_eq!(store.newest_message().unwrap(), (10, 1010));
        let m = &store.messages_after(0, 1).unwrap()[0];
        assert_eq!(
            (m.author.as_str(), m.text.as_str(), m.ts),
            ("ann", "m1", 1001)
        );
    }

    #[test]
    fn uncommitted_batch_is_visible_to_the_loop_and_rolled_back_on_drop() {
        let (mut store, user) = store_with_user();
        put(&mut store, user, 1, None);
        assert!(store.has_batch());
        assert_eq!(
            store.newest_message().unwrap().0,
            1,
            "the same connection sees its batch"
        );
        store.conn.execute_batch("ROLLBACK").unwrap();
        store.in_batch = false;
        assert_eq!(store.newest_message().unwrap().0, 0);
    }

    #[test]
    fn prune_in_small_batches() {
        let (mut store, user) = store_with_user();
        for id in 1..=10 {
            put(&mut store, user, id, None);
        }
        assert_eq!(store.prune_messages(Some(7), None, 3).unwrap(), 3);
        assert_eq!(store.prune_messages(Some(7), None, 3).unwrap(), 3);
        assert_eq!(store.prune_messages(Some(7), None, 3).unwrap(), 1);
        assert_eq!(
            store.prune_messages(None, Some(1009), 100).unwrap(),
            1,
            "ts 1008 goes"
        );
        store.commit().unwrap();
        let left: Vec<i64> = store
            .messages_after(0, 100)
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(left, [9, 10]);
    }

    #[test]
    fn sessions_round_trip() {
        let (mut store, user) = store_with_user();
        store.insert_session("h1", user, 5).unwrap();
        store.insert_session("h2", user, 6).unwrap();
        store.touch_session("h1", 50).unwrap();
        store.delete_session("h2").unwrap();
        store.commit().unwrap();
        let s = store.load_sessions().unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(
            (
                s[0].token_hash.as_str(),
                s[0].name.as_str(),
                s[0].last_active
            ),
            ("h1", "ann", 50)
        );
    }

    #[test]
    fn recent_client_ids_by_time() {
        let (mut store, user) = store_with_user();
        put(&mut store, user, 1, Some("a"));
        put(&mut store, user, 2, None);
        put(&mut store, user, 3, Some("b"));
        put(&mut store, user, 4, Some("c"));
        store.commit().unwrap();
        let recent = store.recent_client_ids(1002).unwrap();
        let c = (user, "c".to_string(), 4, 1004);
        assert_eq!(recent, [(user, "b".to_string(), 3, 1003), c.clone()]);
        assert_eq!(store.recent_client_ids(1004).unwrap(), [c]);
        assert_eq!(store.recent_client_ids(1005).unwrap(), []);
        assert_eq!(store.recent_client_ids(0).unwrap().len(), 3);
    }

    #[test]
    fn prune_by_age_reads_only_the_oldest_batch() {
        let (mut store, user) = store_with_user();
        for id in 1..=10 {
            put(&mut store, user, id, None);
        }
        // Everything up to ts 1008 is old, but one step looks at 3 rows.
        assert_eq!(store.prune_messages(None, Some(1009), 3).unwrap(), 3);
        assert_eq!(store.prune_messages(None, Some(1009), 100).unwrap(), 5);
        assert_eq!(store.prune_messages(None, Some(1009), 100).unwrap(), 0);
        let left = store.messages_after(0, 100).unwrap();
        assert_eq!(left.iter().map(|m| m.id).collect::<Vec<_>>(), [9, 10]);
    }

    #[test]
    fn prune_keeps_the_newest_message_so_ids_never_restart() {
        let (mut store, user) = store_with_user();
        for id in 1..=5 {
            put(&mut store, user, id, None);
        }
        assert_eq!(store.prune_messages(None, Some(i64::MAX), 100).unwrap(), 4);
        assert_eq!(store.prune_messages(Some(i64::MAX), None, 100).unwrap(), 0);
        store.commit().unwrap();
        assert_eq!(store.newest_message().unwrap().0, 5);
    }

    #[test]
    fn history_queries_use_indexes() {
        let (store, _) = store_with_user();
        for sql in [SQL_MESSAGES_BEFORE, SQL_MESSAGES_AFTER, SQL_PRUNE_BEFORE_ID] {
            let plan = store.plan(&sql.replace("?1", "1").replace("?2", "1"));
            assert!(
                plan.contains("INTEGER PRIMARY KEY") || plan.contains("USING"),
                "{sql}: {plan}"
            );
        }
        // The scans by time walk the primary key in order: no sort, no
        // temporary B-tree over the whole table.
        for sql in [SQL_NEWEST_FIRST, SQL_PRUNE_BEFORE_TS] {
            let plan = store.plan(&sql.replace("?1", "1").replace("?2", "1"));
            assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
        }
        let indexes: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 0, "an insert touches one B-tree");
        let plan = store.plan(&SQL_TOUCH_SESSION.replace("?1", "'x'").replace("?2", "1"));
        assert!(plan.contains("PRIMARY KEY"), "{plan}");
    }
}
