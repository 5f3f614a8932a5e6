//! What the conversation features of SPEC §10 and §11 keep: a message's
//! current state (edited text and time, deleted), reactions, read markers
//! and when each user was last seen.
//!
//! A deletion erases the text, it does not hide it: the message row and
//! the rows of its edits lose their text in the turn's batch, and the
//! connection runs with `secure_delete`, so the freed bytes in the B-tree
//! pages are overwritten with zeros instead of lingering until the page is
//! reused. The write-ahead log holds the old page images until a
//! checkpoint has copied the log back and the log is overwritten or
//! truncated (the checkpoint thread's `PASSIVE` runs reuse the log from
//! its start; a clean shutdown truncates it).

use super::Store;
use super::error::{StoreError, fail};
use crate::event::{Conversation, MessageInfo, StoredReaction};
use crate::ids::UserId;
use rusqlite::{OptionalExtension, params};

/// Version 5: conversation features. `edited` and `deleted` on a message
/// row give its current state to history pages without a replay; the
/// partial index on `target` finds a message's edits when it is deleted
/// (only edit, delete and reaction events have a target, so a message
/// insert does not touch it); reactions are one row per message, emoji
/// and user (gone with their message); read markers one row per user and
/// conversation; `last_seen` on the user.
pub(super) const MIGRATION_5_CONVERSATION: &str = "
    ALTER TABLE events ADD COLUMN edited INTEGER;
    ALTER TABLE events ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX events_target ON events (target) WHERE target IS NOT NULL;
    CREATE TABLE reactions (
        message_id INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
        emoji TEXT NOT NULL,
        user_id INTEGER NOT NULL REFERENCES users (id),
        ts INTEGER NOT NULL,
        PRIMARY KEY (message_id, emoji, user_id)
    ) WITHOUT ROWID;
    CREATE TABLE read_markers (
        user_id INTEGER NOT NULL REFERENCES users (id),
        conv INTEGER NOT NULL,
        last_read INTEGER NOT NULL,
        PRIMARY KEY (user_id, conv)
    ) WITHOUT ROWID;
    ALTER TABLE users ADD COLUMN last_seen INTEGER;
";

const SQL_MESSAGE_INFO: &str =
    "SELECT user_id, room_id, to_id, deleted FROM events WHERE id = ?1 AND kind = 0";
const SQL_HAS_REACTION: &str =
    "SELECT 1 FROM reactions WHERE message_id = ?1 AND emoji = ?2 AND user_id = ?3";
const SQL_PUT_REACTION: &str =
    "INSERT OR IGNORE INTO reactions (message_id, emoji, user_id, ts) VALUES (?1, ?2, ?3, ?4)";
const SQL_DELETE_REACTION: &str =
    "DELETE FROM reactions WHERE message_id = ?1 AND emoji = ?2 AND user_id = ?3";
const SQL_EDIT: &str = "UPDATE events SET text = ?2, edited = ?3 WHERE id = ?1";
const SQL_ERASE: &str = "UPDATE events SET text = '', deleted = 1, edited = NULL WHERE id = ?1";
const SQL_ERASE_EDITS: &str = "UPDATE events SET text = '' WHERE target = ?1 AND kind = 3";
const SQL_DELETE_REACTIONS: &str = "DELETE FROM reactions WHERE message_id = ?1";
/// The reactions of the messages of a page: a range of the primary key,
/// sorted (a page's worth) by message, emoji and time.
const SQL_REACTIONS_BETWEEN: &str = "SELECT r.message_id, r.emoji, u.name FROM reactions r \
     JOIN users u ON u.id = r.user_id WHERE r.message_id BETWEEN ?1 AND ?2 \
     ORDER BY r.message_id, r.emoji, r.ts";
const SQL_COUNT_ROOM_AFTER: &str =
    "SELECT count(*) FROM events WHERE room_id = ?2 AND id > ?1 AND kind = 0";
/// Messages per room, general as room 1 (start-up only: one scan).
const SQL_MESSAGE_COUNTS: &str = "SELECT coalesce(room_id, 1), count(*) FROM events \
     WHERE kind = 0 AND to_id IS NULL GROUP BY 1";
const SQL_PUT_READ: &str =
    "INSERT OR REPLACE INTO read_markers (user_id, conv, last_read) VALUES (?1, ?2, ?3)";
const SQL_LOAD_READS: &str = "SELECT user_id, conv, last_read FROM read_markers";
const SQL_SET_LAST_SEEN: &str = "UPDATE users SET last_seen = ?2 WHERE id = ?1";
const SQL_LOAD_LAST_SEEN: &str = "SELECT id, last_seen FROM users WHERE last_seen IS NOT NULL";

/// A stored read marker: user, conversation key (a room id, or minus the
/// other user's id), the newest event read.
pub type StoredRead = (UserId, i64, i64);

impl Store {
    /// The message `id` (not another kind of event), if stored.
    pub fn message_info(&mut self, id: i64) -> Result<Option<MessageInfo>, StoreError> {
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_MESSAGE_INFO)?;
            stmt.query_row([id], |r| {
                Ok(MessageInfo {
                    author: UserId(r.get(0)?),
                    room: r.get(1)?,
                    to: r.get::<_, Option<i64>>(2)?.map(UserId),
                    deleted: r.get(3)?,
                })
            })
            .optional()
        };
        run().map_err(|e| fail(&self.label, "reading a message", e))
    }

    /// Whether `user` has reacted to `message` with `emoji`.
    pub fn has_reaction(
        &mut self,
        message: i64,
        user: UserId,
        emoji: &str,
    ) -> Result<bool, StoreError> {
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_HAS_REACTION)?;
            stmt.exists(params![message, emoji, user.0])
        };
        run().map_err(|e| fail(&self.label, "reading a reaction", e))
    }

    /// Messages of `conv` (general or a room) after `id`.
    pub fn count_after(&mut self, conv: Conversation, id: i64) -> Result<u64, StoreError> {
        if conv == Conversation::General {
            return Ok(u64::try_from(self.count_general_after(id)?).unwrap_or(0));
        }
        let run = || {
            let n: i64 = match conv {
                Conversation::General => unreachable!("counted above"),
                Conversation::Room(room) => self
                    .conn
                    .prepare_cached(SQL_COUNT_ROOM_AFTER)?
                    .query_row([id, room], |r| r.get(0))?,
                Conversation::Direct(..) => 0,
            };
            Ok(u64::try_from(n).unwrap_or(0))
        };
        run().map_err(|e| fail(&self.label, "counting messages", e))
    }

    /// How many messages each room holds (general is room 1), for the
    /// unread counters. Start-up only: it reads every message once.
    pub fn message_counts(&mut self) -> Result<Vec<(i64, u64)>, StoreError> {
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_MESSAGE_COUNTS)?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0)))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        };
        run().map_err(|e| fail(&self.label, "counting messages", e))
    }

    /// A message's new text (in the turn's batch).
    pub fn edit_message(&mut self, id: i64, text: &str, ts: i64) -> Result<(), StoreError> {
        self.batch_write(SQL_EDIT, params![id, text, ts], "editing a message")
    }

    /// Erases a message: its text, its edits' texts and its reactions (in
    /// the turn's batch).
    pub fn erase_message(&mut self, id: i64) -> Result<(), StoreError> {
        self.batch_write(SQL_ERASE, [id], "deleting a message")?;
        self.batch_write(SQL_ERASE_EDITS, [id], "deleting a message's edits")?;
        self.batch_write(SQL_DELETE_REACTIONS, [id], "deleting reactions")
    }

    /// Sets or clears a reaction (in the turn's batch).
    pub fn set_reaction(
        &mut self,
        message: i64,
        user: UserId,
        emoji: &str,
        on: bool,
        ts: i64,
    ) -> Result<(), StoreError> {
        if on {
            let p = params![message, emoji, user.0, ts];
            self.batch_write(SQL_PUT_REACTION, p, "storing a reaction")
        } else {
            let p = params![message, emoji, user.0];
            self.batch_write(SQL_DELETE_REACTION, p, "removing a reaction")
        }
    }

    /// `(message id, emoji, user name)` of every reaction to the messages
    /// with ids from `lo` to `hi`.
    pub fn reactions_between(
        &mut self,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<StoredReaction>, StoreError> {
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_REACTIONS_BETWEEN)?;
            let rows = stmt.query_map([lo, hi], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        };
        run().map_err(|e| fail(&self.label, "reading reactions", e))
    }

    /// Moves a read marker (in the turn's batch).
    pub fn put_read(&mut self, user: UserId, conv: i64, id: i64) -> Result<(), StoreError> {
        self.batch_write(
            SQL_PUT_READ,
            params![user.0, conv, id],
            "storing a read marker",
        )
    }

    /// Every read marker, for the restart.
    pub fn load_reads(&mut self) -> Result<Vec<StoredRead>, StoreError> {
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_LOAD_READS)?;
            let rows = stmt.query_map([], |r| Ok((UserId(r.get(0)?), r.get(1)?, r.get(2)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        };
        run().map_err(|e| fail(&self.label, "loading read markers", e))
    }

    /// When `user` was last online (in the turn's batch).
    pub fn set_last_seen(&mut self, user: UserId, ts: i64) -> Result<(), StoreError> {
        self.batch_write(SQL_SET_LAST_SEEN, params![user.0, ts], "storing last seen")
    }

    /// Every user's last time online, for the restart.
    pub fn load_last_seen(&mut self) -> Result<Vec<(UserId, i64)>, StoreError> {
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_LOAD_LAST_SEEN)?;
            let rows = stmt.query_map([], |r| Ok((UserId(r.get(0)?), r.get(1)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        };
        run().map_err(|e| fail(&self.label, "loading last seen", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, NewEvent};

    fn message(store: &mut Store, id: i64, user: UserId, text: &str) {
        let e = NewEvent {
            id,
            kind: EventKind::Message,
            user,
            room: None,
            to: None,
            ts: id,
            text,
            client_id: None,
            target: None,
        };
        store.insert_event(&e).unwrap();
    }

    #[test]
    fn edit_react_erase_round_trip() {
        let mut store = Store::open_in_memory().unwrap();
        let hash = crate::secret::sha256_hex("k");
        let ann = store.create_user("ann", &hash).unwrap().unwrap().id;
        message(&mut store, 1, ann, "first");
        message(&mut store, 2, ann, "second");
        let info = store.message_info(1).unwrap().unwrap();
        assert_eq!((info.author, info.room, info.deleted), (ann, None, false));
        store.edit_message(1, "better", 9).unwrap();
        store.set_reaction(1, ann, "👍", true, 10).unwrap();
        store.set_reaction(2, ann, "👍", true, 10).unwrap();
        assert!(store.has_reaction(1, ann, "👍").unwrap());
        assert_eq!(store.reactions_between(1, 1).unwrap().len(), 1);
        store.erase_message(1).unwrap();
        store.commit().unwrap();
        let page = store
            .messages_before(Conversation::General, i64::MAX, 10)
            .unwrap();
        assert_eq!((page[0].text.as_str(), page[0].deleted), ("", true));
        assert_eq!((page[1].text.as_str(), page[1].edited), ("second", None));
        assert!(!store.has_reaction(1, ann, "👍").unwrap());
        assert_eq!(store.count_after(Conversation::General, 1).unwrap(), 1);
        assert_eq!(store.message_counts().unwrap(), [(1, 2)]);
        store.put_read(ann, 1, 2).unwrap();
        store.put_read(ann, 1, 3).unwrap();
        store.set_last_seen(ann, 77).unwrap();
        store.commit().unwrap();
        assert_eq!(store.load_reads().unwrap(), [(ann, 1, 3)]);
        assert_eq!(store.load_last_seen().unwrap(), [(ann, 77)]);
    }

    #[test]
    fn conversation_queries_search_an_index() {
        let store = Store::open_in_memory().unwrap();
        let table = [
            (SQL_MESSAGE_INFO, "PRIMARY KEY"),
            (SQL_HAS_REACTION, "PRIMARY KEY"),
            (SQL_ERASE_EDITS, "events_target"),
            (SQL_DELETE_REACTIONS, "PRIMARY KEY"),
            (SQL_REACTIONS_BETWEEN, "PRIMARY KEY"),
            (SQL_COUNT_ROOM_AFTER, "events_room"),
            (SQL_SET_LAST_SEEN, "PRIMARY KEY"),
        ];
        for (sql, want) in table {
            let sql = sql.replace("?1", "1").replace("?2", "2").replace("?3", "3");
            let plan = store.plan(&sql);
            assert!(plan.contains(want), "{sql}: {plan}");
        }
    }
}
