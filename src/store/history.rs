//! Stored chat messages and sessions, and the per-turn write batch.
//!
//! Writes of one loop turn (messages, new and ended sessions,
//! registrations) go into one transaction, committed once before the turn's
//! output is written: a message is acknowledged only once it is on disk as
//! far as `synchronous=NORMAL` promises (it survives a crash of the
//! process; a power loss may take the last commits).

use super::Store;
use super::error::{StoreError, fail};
use crate::event::{Conversation, EventKind, NewEvent, StoredEvent, StoredMessage};
use crate::ids::UserId;
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

/// Version 4: one event sequence for every conversation. The messages
/// table becomes `events`: a `kind` (0 message, 1 `room_join`, 2
/// `room_leave`; edits, deletions and reactions are further kinds that
/// point at their message through `target`), the `room_id` of a room
/// event and the `to_id` of a direct message. Today's rows become
/// `general`'s: general's events have neither (`room_id` NULL, `to_id`
/// NULL), so a general message is still one insert into one B-tree, as
/// fast as before; the indexes are partial and hold only the other rooms'
/// events and direct messages, for paging one conversation. Rooms and
/// their stored members (never general's: everyone is in it) get tables
/// of their own.
pub(super) const MIGRATION_4_EVENTS: &str = "
    CREATE TABLE rooms (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        private INTEGER NOT NULL,
        created INTEGER NOT NULL
    );
    INSERT INTO rooms (id, name, private, created) VALUES (1, 'general', 0, 0);
    CREATE TABLE members (
        room_id INTEGER NOT NULL REFERENCES rooms (id),
        user_id INTEGER NOT NULL REFERENCES users (id),
        role TEXT NOT NULL,
        PRIMARY KEY (room_id, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX members_user ON members (user_id);
    ALTER TABLE messages RENAME TO events;
    ALTER TABLE events ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE events ADD COLUMN room_id INTEGER REFERENCES rooms (id);
    ALTER TABLE events ADD COLUMN to_id INTEGER REFERENCES users (id);
    ALTER TABLE events ADD COLUMN target INTEGER;
    CREATE INDEX events_room ON events (room_id, id) WHERE room_id IS NOT NULL;
    CREATE INDEX events_direct ON events (min(user_id, to_id), max(user_id, to_id), id)
        WHERE to_id IS NOT NULL;
";

/// Version 6: general's messages get a partial index of their own. Without
/// it a page of general walks back over every room and direct event newer
/// than the page (one request held the loop for about 160 ms behind a
/// million room events); with it a page reads its rows and no others.
/// Each general insert writes one more B-tree, at its right edge.
pub(super) const MIGRATION_6_GENERAL_INDEX: &str = "
    CREATE INDEX events_general ON events (id) WHERE room_id IS NULL AND to_id IS NULL;
";

const SQL_INSERT_EVENT: &str = "INSERT INTO events \
     (id, kind, user_id, room_id, to_id, ts, text, client_id, target) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
/// A general message leaves `kind`, `room_id` and `to_id` to their
/// defaults (0, NULL, NULL): measured with SQLite, an insert that names
/// them costs about a third more than one that does not, and general's
/// messages are the hot path (as fast as before rooms).
const SQL_INSERT_GENERAL: &str =
    "INSERT INTO events (id, user_id, ts, text, client_id) VALUES (?1, ?2, ?3, ?4, ?5)";
const SQL_OLDEST_EVENT: &str = "SELECT min(id) FROM events";
const SQL_NEWEST_EVENT: &str = "SELECT id, ts FROM events ORDER BY id DESC LIMIT 1";
/// The columns of a page; `kind = 0`: messages only. (General's pages
/// are read in `general.rs`.)
const SQL_ROOM_BEFORE: &str = "SELECT e.id, u.name, e.text, e.ts, e.edited, e.deleted FROM events e \
     JOIN users u ON u.id = e.user_id WHERE e.room_id = ?3 AND e.id < ?1 \
     AND e.kind = 0 ORDER BY e.id DESC LIMIT ?2";
/// The expressions and the `to_id IS NOT NULL` term match the partial
/// index `events_direct`, so SQLite can use it.
const SQL_DIRECT_BEFORE: &str = "SELECT e.id, u.name, e.text, e.ts, e.edited, e.deleted FROM events e \
     JOIN users u ON u.id = e.user_id WHERE e.to_id IS NOT NULL \
     AND min(e.user_id, e.to_id) = ?3 AND max(e.user_id, e.to_id) = ?4 \
     AND e.id < ?1 AND e.kind = 0 ORDER BY e.id DESC LIMIT ?2";
/// Every event after an id, for the replay (filtered by the caller).
const SQL_EVENTS_AFTER: &str = "SELECT e.id, e.kind, e.user_id, u.name, e.room_id, \
     e.to_id, t.name, e.ts, e.text, e.target, e.deleted FROM events e JOIN users u ON u.id = e.user_id \
     LEFT JOIN users t ON t.id = e.to_id WHERE e.id > ?1 ORDER BY e.id LIMIT ?2";
/// The newest event of every room but general (at start-up).
const SQL_ROOM_LAST_IDS: &str =
    "SELECT room_id, max(id) FROM events WHERE room_id IS NOT NULL GROUP BY room_id";
/// Newest first; the caller stops at the first row older than its window.
const SQL_NEWEST_FIRST: &str = "SELECT user_id, client_id, id, ts FROM events ORDER BY id DESC";
/// Both prunes keep the newest event whatever the limits say: ids
/// continue after the newest stored one on restart, so deleting it would
/// hand out acknowledged ids again.
const SQL_PRUNE_BEFORE_ID: &str = "DELETE FROM events WHERE id IN \
     (SELECT id FROM events WHERE id <= ?1 AND id < (SELECT max(id) FROM events) \
     ORDER BY id LIMIT ?2)";
/// Looks only at the `?2` oldest rows, so a prune step reads a bounded
/// number of rows even when nothing is old enough. Should the wall clock
/// have gone back between runs, an old row behind a newer-stamped one
/// waits until that one is old too.
const SQL_PRUNE_BEFORE_TS: &str = "DELETE FROM events WHERE id IN \
     (SELECT id FROM (SELECT id, ts FROM events ORDER BY id LIMIT ?2) WHERE ts < ?1 \
     AND id < (SELECT max(id) FROM events))";
const SQL_INSERT_SESSION: &str =
    "INSERT OR REPLACE INTO sessions (token_hash, user_id, last_active) VALUES (?1, ?2, ?3)";
const SQL_TOUCH_SESSION: &str = "UPDATE sessions SET last_active = ?2 WHERE token_hash = ?1";
const SQL_DELETE_SESSION: &str = "DELETE FROM sessions WHERE token_hash = ?1";
const SQL_LOAD_SESSIONS: &str = "SELECT s.token_hash, s.user_id, u.name, s.last_active \
     FROM sessions s JOIN users u ON u.id = s.user_id";

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
            self.general.save();
        }
        Ok(())
    }

    /// Runs one prepared write of the turn's batch (opening it if need
    /// be); `doing` names it in the error.
    pub(super) fn batch_write(
        &mut self,
        sql: &str,
        p: impl rusqlite::Params,
        doing: &str,
    ) -> Result<(), StoreError> {
        self.begin_batch()?;
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(p))
            .map(drop)
            .map_err(|e| fail(&self.label, doing, e))
    }

    /// Commits the turn's writes, if any. On failure the batch is rolled
    /// back, so the next turn starts clean.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        if !std::mem::replace(&mut self.in_batch, false) {
            return Ok(());
        }
        if std::mem::take(&mut self.refuse_commit) {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.general.undo();
            return Err(StoreError::new(
                &self.label,
                "committing: refused (test hook)",
            ));
        }
        let indexed = if self.index_inline {
            // In memory, no thread can index for us: the batch's own
            // events, before they are committed.
            super::search::index_step(&self.conn, i64::MAX).map(drop)
        } else {
            Ok(())
        };
        if let Err(e) = indexed.and_then(|()| self.conn.execute_batch("COMMIT")) {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.general.undo();
            return Err(fail(&self.label, "committing", e));
        }
        if let Some(indexer) = &self.indexer {
            indexer.wake();
        }
        Ok(())
    }

    /// Drops the turn's writes, if any (a write of the turn failed, so
    /// none of them may be stored: the turn is all or nothing).
    pub fn rollback(&mut self) {
        if std::mem::replace(&mut self.in_batch, false) {
            self.general.undo();
            if !self.conn.is_autocommit() {
                // Nothing to do when it fails: the connection is then in
                // autocommit mode already, i.e. rolled back.
                let _ = self.conn.execute_batch("ROLLBACK");
            }
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

    /// Stores an event in the turn's batch.
    pub fn insert_event(&mut self, e: &NewEvent<'_>) -> Result<(), StoreError> {
        self.begin_batch()?;
        let general = e.kind == EventKind::Message && e.room.is_none() && e.to.is_none();
        let run = |conn: &rusqlite::Connection| {
            if general {
                let mut s = conn.prepare_cached(SQL_INSERT_GENERAL)?;
                return s.execute(params![e.id, e.user.0, e.ts, e.text, e.client_id]);
            }
            let mut s = conn.prepare_cached(SQL_INSERT_EVENT)?;
            let (kind, to) = (e.kind as i64, e.to.map(|u| u.0));
            s.execute(params![
                e.id,
                kind,
                e.user.0,
                e.room,
                to,
                e.ts,
                e.text,
                e.client_id,
                e.target
            ])
        };
        run(&self.conn).map_err(|e| fail(&self.label, "storing an event", e))?;
        if general {
            self.general.push(e.id);
        }
        Ok(())
    }

    /// The newest stored event's id and time; `(0, i64::MIN)` when there
    /// is none.
    pub fn newest_message(&mut self) -> Result<(i64, i64), StoreError> {
        self.conn
            .prepare_cached(SQL_NEWEST_EVENT)
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map(|v| v.unwrap_or((0, i64::MIN)))
            .map_err(|e| fail(&self.label, "reading the newest event", e))
    }

    /// Up to `limit` messages of one conversation with ids below `before`
    /// (the newest ones), oldest first.
    pub fn messages_before(
        &mut self,
        conv: Conversation,
        before: i64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        if conv == Conversation::General {
            let mut page = self.general_before(before, limit)?;
            page.reverse();
            return Ok(page);
        }
        let run = || {
            let (sql, a, b) = match conv {
                Conversation::General => unreachable!("paged above"),
                Conversation::Room(room) => (SQL_ROOM_BEFORE, Some(room), None),
                Conversation::Direct(x, y) => {
                    (SQL_DIRECT_BEFORE, Some(x.0.min(y.0)), Some(x.0.max(y.0)))
                }
            };
            let mut stmt = self.conn.prepare_cached(sql)?;
            let rows = match (a, b) {
                (None, _) => stmt.query_map(params![before, limit], message_from_row)?,
                (Some(a), None) => stmt.query_map(params![before, limit, a], message_from_row)?,
                (Some(a), Some(b)) => {
                    stmt.query_map(params![before, limit, a, b], message_from_row)?
                }
            };
            rows.collect::<rusqlite::Result<Vec<_>>>()
        };
        let mut page = run().map_err(|e| fail(&self.label, "reading messages", e))?;
        page.reverse();
        Ok(page)
    }

    /// Up to `limit` events of every conversation with ids above `after`,
    /// oldest first; the caller keeps the ones its user may see.
    pub fn events_after(
        &mut self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_EVENTS_AFTER)?;
            let rows = stmt.query_map(params![after, limit], event_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        };
        run().map_err(|e| fail(&self.label, "reading events", e))
    }

    /// The newest event id of general and of every other room that has one
    /// (`None` for general), for start-up.
    pub fn room_last_ids(&mut self) -> Result<Vec<(Option<i64>, i64)>, StoreError> {
        let run = || {
            let general = self.general.last();
            let mut stmt = self.conn.prepare_cached(SQL_ROOM_LAST_IDS)?;
            let rows = stmt.query_map([], |r| Ok((Some(r.get(0)?), r.get(1)?)))?;
            let mut all: Vec<(Option<i64>, i64)> =
                general.map(|id| (None, id)).into_iter().collect();
            for row in rows {
                all.push(row?);
            }
            Ok::<_, rusqlite::Error>(all)
        };
        run().map_err(|e| fail(&self.label, "reading the rooms' newest events", e))
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
        if deleted > 0 {
            // The stretches below the oldest row left are of no use now.
            let oldest: Option<i64> = self
                .conn
                .prepare_cached(SQL_OLDEST_EVENT)
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(|e| fail(&self.label, "reading the oldest event", e))?;
            self.general.forget_below(oldest.unwrap_or(0));
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

pub(super) fn message_from_row(r: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: r.get(0)?,
        author: r.get(1)?,
        text: r.get(2)?,
        ts: r.get(3)?,
        edited: r.get(4)?,
        deleted: r.get(5)?,
    })
}

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let to: Option<i64> = r.get(5)?;
    let to_name: Option<String> = r.get(6)?;
    Ok(StoredEvent {
        id: r.get(0)?,
        kind: EventKind::from_i64(r.get(1)?),
        user: UserId(r.get(2)?),
        name: r.get(3)?,
        room: r.get(4)?,
        to: to.map(|t| (UserId(t), to_name.unwrap_or_default())),
        ts: r.get(7)?,
        text: r.get(8)?,
        target: r.get(9)?,
        deleted: r.get(10)?,
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
        let m = NewEvent {
            id,
            kind: EventKind::Message,
            user,
            room: None,
            to: None,
            ts: 1000 + id,
            text: &text,
            client_id,
            target: None,
        };
        store.insert_event(&m).unwrap();
    }

    /// The ids of every event after `after`.
    fn after(store: &mut Store, after: i64) -> Vec<i64> {
        let events = store.events_after(after, 100).unwrap();
        events.iter().map(|e| e.id).collect()
    }

    #[test]
    fn pages_before_and_after() {
        let (mut store, user) = store_with_user();
        for id in 1..=10 {
            put(&mut store, user, id, None);
        }
        store.commit().unwrap();
        let ids = |v: Vec<StoredMessage>| v.iter().map(|m| m.id).collect::<Vec<_>>();
        let general = Conversation::General;
        let page = |s: &mut Store, before, n| ids(s.messages_before(general, before, n).unwrap());
        assert_eq!(page(&mut store, i64::MAX, 3), [8, 9, 10]);
        assert_eq!(page(&mut store, 8, 3), [5, 6, 7]);
        assert_eq!(page(&mut store, 2, 3), [1]);
        assert_eq!(after(&mut store, 7), [8, 9, 10]);
        assert_eq!(store.newest_message().unwrap(), (10, 1010));
        let m = &store.messages_before(general, 2, 1).unwrap()[0];
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
        assert_eq!(after(&mut store, 0), [9, 10]);
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
        assert_eq!(after(&mut store, 0), [9, 10]);
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
        let bind = |sql: &str| {
            let sql = sql.replace("?1", "1").replace("?2", "1");
            sql.replace("?3", "2").replace("?4", "3")
        };
        let table = [
            (SQL_EVENTS_AFTER, "INTEGER PRIMARY KEY"),
            (SQL_PRUNE_BEFORE_ID, "INTEGER PRIMARY KEY"),
            (SQL_ROOM_BEFORE, "INDEX events_room"),
            (SQL_DIRECT_BEFORE, "INDEX events_direct"),
            (SQL_ROOM_LAST_IDS, "INDEX events_room"),
        ];
        for (sql, want) in table {
            let plan = store.plan(&bind(sql));
            assert!(plan.contains(want), "{sql}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
        }
        // The scans by time walk the primary key in order: no sort, no
        // temporary B-tree over the whole table.
        for sql in [SQL_NEWEST_FIRST, SQL_PRUNE_BEFORE_TS] {
            let plan = store.plan(&bind(sql));
            assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
        }
    }

    #[test]
    fn migration_4_makes_existing_messages_generals() {
        let dir = crate::store::tests::TempDir::new();
        let path = dir.file("v3.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            for step in &super::super::MIGRATIONS[..3] {
                conn.execute_batch(step).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            conn.execute_batch(
                "INSERT INTO users (id, name, name_fold, key_hash) VALUES (1, 'ann', 'ann', 'h');
                 INSERT INTO messages (id, user_id, ts, text, client_id) VALUES (7, 1, 5, 'old', 'c');",
            )
            .unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        let page = store
            .messages_before(Conversation::General, i64::MAX, 10)
            .unwrap();
        assert_eq!((page[0].id, page[0].text.as_str()), (7, "old"));
        assert_eq!(store.newest_message().unwrap(), (7, 5));
        assert_eq!(store.room_last_ids().unwrap(), [(None, 7)]);
        assert_eq!(store.recent_client_ids(0).unwrap().len(), 1);
        let rooms = store.load_rooms().unwrap();
        assert_eq!(rooms[0].name, "general");
        let e = &store.events_after(0, 10).unwrap()[0];
        assert_eq!(
            (e.kind, e.room, e.to.clone()),
            (Some(EventKind::Message), None, None)
        );
        store.close().unwrap();
    }

    #[test]
    fn pages_per_conversation() {
        let (mut store, ann) = store_with_user();
        let ben = store
            .create_user("ben", &crate::secret::sha256_hex("b"))
            .unwrap()
            .unwrap()
            .id;
        store.insert_room(2, "rust", false, 0).unwrap();
        let event = |id, room, to| NewEvent {
            id,
            kind: EventKind::Message,
            user: if id % 2 == 0 { ann } else { ben },
            room,
            to,
            ts: id,
            text: "t",
            client_id: None,
            target: None,
        };
        let rows = [
            event(1, None, None),
            event(2, Some(2), None),
            event(3, None, Some(ann)),
            event(4, None, Some(ben)),
            event(5, Some(2), None),
            event(6, None, Some(ann)),
        ];
        for row in &rows {
            store.insert_event(row).unwrap();
        }
        let leave = NewEvent {
            kind: EventKind::RoomLeave,
            ..event(7, Some(2), None)
        };
        store.insert_event(&leave).unwrap();
        store.commit().unwrap();
        let ids = |s: &mut Store, conv| {
            let page = s.messages_before(conv, i64::MAX, 10).unwrap();
            page.iter().map(|m| m.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(&mut store, Conversation::General), [1]);
        assert_eq!(
            ids(&mut store, Conversation::Room(2)),
            [2, 5],
            "messages only"
        );
        assert_eq!(ids(&mut store, Conversation::Direct(ann, ben)), [3, 4]);
        assert_eq!(ids(&mut store, Conversation::Direct(ben, ann)), [3, 4]);
        assert_eq!(ids(&mut store, Conversation::Direct(ann, ann)), [6]);
        assert_eq!(store.room_last_ids().unwrap(), [(None, 1), (Some(2), 7)]);
        let e = store.events_after(6, 10).unwrap();
        assert_eq!(
            (e[0].kind, e[0].room),
            (Some(EventKind::RoomLeave), Some(2))
        );
        let dm = &store.events_after(2, 1).unwrap()[0];
        assert_eq!(dm.to, Some((ann, "ann".to_string())));
    }

    #[test]
    fn a_general_message_touches_one_b_tree() {
        let (mut store, user) = store_with_user();
        put(&mut store, user, 1, None);
        store.commit().unwrap();
        // Both indexes are partial: general's rows are in neither.
        for index in ["events_room", "events_direct"] {
            let n: i64 = store
                .conn
                .query_row(&format!("SELECT count(*) FROM events INDEXED BY {index} WHERE room_id IS NOT NULL OR to_id IS NOT NULL"), [], |r| r.get(0))
                .unwrap_or(0);
            assert_eq!(n, 0, "{index}");
        }
        let plan = store.plan(&SQL_TOUCH_SESSION.replace("?1", "'x'").replace("?2", "1"));
        assert!(plan.contains("PRIMARY KEY"), "{plan}");
    }
}
