//! Moderation and administration rows: admin grants, bans, mutes, room
//! mutes and kicks (loaded into the chat's memory at start-up), invite
//! codes, key changes, account deletion and the audit log.
//!
//! The audit has its own table and no retention: the history prune only
//! ever deletes from `events`.

use super::{Store, StoreError, UserId, fail};
use crate::event::MessageInfo;
use rusqlite::params;

/// Version 9: moderation. `users` gains `created` (NULL for accounts
/// made before it). A deleted account keeps its row, because its events
/// (membership changes, `delete` events of its purged messages) still
/// name it: its key hash becomes empty (no key hashes to that) and its
/// folded name `#<id>`, which no name lookup produces, so the name is
/// free again.
pub(super) const MIGRATION_9_MODERATION: &str = "
    ALTER TABLE users ADD COLUMN created INTEGER;
    CREATE TABLE admins (
        user_id INTEGER PRIMARY KEY REFERENCES users (id),
        ts INTEGER NOT NULL
    );
    CREATE TABLE bans (
        user_id INTEGER PRIMARY KEY REFERENCES users (id),
        ts INTEGER NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE TABLE mutes (
        user_id INTEGER PRIMARY KEY REFERENCES users (id),
        until INTEGER NOT NULL
    );
    CREATE TABLE room_mutes (
        room_id INTEGER NOT NULL REFERENCES rooms (id),
        user_id INTEGER NOT NULL REFERENCES users (id),
        until INTEGER NOT NULL,
        PRIMARY KEY (room_id, user_id)
    ) WITHOUT ROWID;
    CREATE TABLE room_kicks (
        room_id INTEGER NOT NULL REFERENCES rooms (id),
        user_id INTEGER NOT NULL REFERENCES users (id),
        PRIMARY KEY (room_id, user_id)
    ) WITHOUT ROWID;
    CREATE TABLE invites (
        code_hash TEXT PRIMARY KEY,
        uses_left INTEGER NOT NULL,
        expires INTEGER,
        created INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        room TEXT,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL
    );
";

const SQL_SET_CREATED: &str = "UPDATE users SET created = ?2 WHERE id = ?1";
const SQL_SET_KEY: &str = "UPDATE users SET key_hash = ?2 WHERE id = ?1";
const SQL_TOMBSTONE: &str =
    "UPDATE users SET key_hash = '', name_fold = '#' || id, name = ?2 WHERE id = ?1";
const SQL_DELETED_USERS: &str = "SELECT id FROM users WHERE key_hash = ''";
const SQL_DELETE_USER_MEMBERS: &str = "DELETE FROM members WHERE user_id = ?1";
const SQL_DELETE_USER_SESSIONS: &str = "DELETE FROM sessions WHERE user_id = ?1";
const SQL_PUT_ADMIN: &str = "INSERT OR REPLACE INTO admins (user_id, ts) VALUES (?1, ?2)";
const SQL_DELETE_ADMIN: &str = "DELETE FROM admins WHERE user_id = ?1";
const SQL_LOAD_ADMINS: &str = "SELECT user_id FROM admins";
const SQL_PUT_BAN: &str = "INSERT OR REPLACE INTO bans (user_id, ts, reason) VALUES (?1, ?2, ?3)";
const SQL_DELETE_BAN: &str = "DELETE FROM bans WHERE user_id = ?1";
const SQL_LOAD_BANS: &str = "SELECT user_id FROM bans";
const SQL_PUT_MUTE: &str = "INSERT OR REPLACE INTO mutes (user_id, until) VALUES (?1, ?2)";
const SQL_DELETE_MUTE: &str = "DELETE FROM mutes WHERE user_id = ?1";
const SQL_LOAD_MUTES: &str = "SELECT user_id, until FROM mutes";
const SQL_PUT_ROOM_MUTE: &str =
    "INSERT OR REPLACE INTO room_mutes (room_id, user_id, until) VALUES (?1, ?2, ?3)";
const SQL_LOAD_ROOM_MUTES: &str = "SELECT room_id, user_id, until FROM room_mutes";
const SQL_PUT_KICK: &str = "INSERT OR REPLACE INTO room_kicks (room_id, user_id) VALUES (?1, ?2)";
const SQL_DELETE_KICK: &str = "DELETE FROM room_kicks WHERE room_id = ?1 AND user_id = ?2";
const SQL_LOAD_KICKS: &str = "SELECT room_id, user_id FROM room_kicks";
const SQL_PUT_INVITE: &str =
    "INSERT INTO invites (code_hash, uses_left, expires, created) VALUES (?1, ?2, ?3, ?4)";
/// Spends one use of a live code; changes no row when there is none.
const SQL_USE_INVITE: &str = "UPDATE invites SET uses_left = uses_left - 1 \
     WHERE code_hash = ?1 AND uses_left > 0 AND (expires IS NULL OR expires > ?2)";
const SQL_REFUND_INVITE: &str = "UPDATE invites SET uses_left = uses_left + 1 WHERE code_hash = ?1";
const SQL_INSERT_AUDIT: &str = "INSERT INTO audit (ts, actor, action, target, room, reason, detail) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const SQL_AUDIT_BEFORE: &str = "SELECT id, ts, actor, action, target, room, reason, detail \
     FROM audit WHERE id < ?1 ORDER BY id DESC LIMIT ?2";
/// A name range (`prefix` to `prefix` + U+10FFFF) after a cursor, on the
/// folded-name index; deleted accounts (no key) are left out.
const SQL_USERS_PAGE: &str = "SELECT id, name, created FROM users \
     WHERE name_fold >= ?1 AND name_fold < ?2 AND name_fold > ?3 AND key_hash <> '' \
     ORDER BY name_fold, id LIMIT ?4";
/// Every message of a user that is not deleted yet. A purge is rare and
/// an admin's: it reads the table rather than have every message insert
/// pay for an index by author.
const SQL_MESSAGES_OF: &str = "SELECT id, room_id, to_id FROM events \
     WHERE user_id = ?1 AND kind = 0 AND deleted = 0 ORDER BY id";

/// A row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Its id.
    pub id: i64,
    /// When, Unix milliseconds.
    pub ts: i64,
    /// Who did it.
    pub actor: String,
    /// What.
    pub action: String,
    /// To whom.
    pub target: Option<String>,
    /// In which room.
    pub room: Option<String>,
    /// Why.
    pub reason: String,
    /// More (a mute's end, a role).
    pub detail: String,
}

/// An audit entry to write.
#[derive(Debug, Clone, Copy)]
pub struct NewAudit<'a> {
    /// When, Unix milliseconds.
    pub ts: i64,
    /// Who did it.
    pub actor: &'a str,
    /// What.
    pub action: &'a str,
    /// To whom.
    pub target: Option<&'a str>,
    /// In which room.
    pub room: Option<&'a str>,
    /// Why.
    pub reason: &'a str,
    /// More.
    pub detail: &'a str,
}

/// The stored moderation state the chat loads at start-up.
#[derive(Debug, Default)]
pub struct StoredModeration {
    /// Granted admins.
    pub admins: Vec<UserId>,
    /// Banned users.
    pub bans: Vec<UserId>,
    /// Server-wide mutes and their end.
    pub mutes: Vec<(UserId, i64)>,
    /// Room mutes: room, user, end.
    pub room_mutes: Vec<(i64, UserId, i64)>,
    /// Kicks: room, user.
    pub kicks: Vec<(i64, UserId)>,
    /// Deleted accounts.
    pub deleted: Vec<UserId>,
}

/// A line of the admin's user list: id, name, when created.
pub type UserRow = (UserId, String, Option<i64>);

impl Store {
    /// Records when a new user registered (in the turn's batch).
    pub fn set_user_created(&mut self, user: UserId, ts: i64) -> Result<(), StoreError> {
        self.batch_write(SQL_SET_CREATED, params![user.0, ts], "storing a user")
    }

    /// Replaces a user's key hash (in the turn's batch).
    pub fn set_key_hash(&mut self, user: UserId, key_hash: &str) -> Result<(), StoreError> {
        self.batch_write(SQL_SET_KEY, params![user.0, key_hash], "changing a key")
    }

    /// Deletes an account (in the turn's batch): its memberships and
    /// sessions go, and its row becomes a nameless tombstone (see
    /// [`MIGRATION_9_MODERATION`]) shown as `shown`.
    pub fn delete_user(&mut self, user: UserId, shown: &str) -> Result<(), StoreError> {
        let doing = "deleting a user";
        self.batch_write(SQL_DELETE_USER_MEMBERS, params![user.0], doing)?;
        self.batch_write(SQL_DELETE_USER_SESSIONS, params![user.0], doing)?;
        self.batch_write(SQL_DELETE_BAN, params![user.0], doing)?;
        self.batch_write(SQL_DELETE_MUTE, params![user.0], doing)?;
        self.batch_write(SQL_DELETE_ADMIN, params![user.0], doing)?;
        self.batch_write(SQL_TOMBSTONE, params![user.0, shown], doing)
    }

    /// Grants (`true`) or takes back the admin role (in the turn's batch).
    pub fn set_admin(&mut self, user: UserId, admin: bool, ts: i64) -> Result<(), StoreError> {
        if admin {
            self.batch_write(SQL_PUT_ADMIN, params![user.0, ts], "granting a role")
        } else {
            self.batch_write(SQL_DELETE_ADMIN, params![user.0], "taking back a role")
        }
    }

    /// Stores a ban, or lifts it with `None` (in the turn's batch).
    pub fn set_ban(&mut self, user: UserId, ban: Option<(i64, &str)>) -> Result<(), StoreError> {
        match ban {
            Some((ts, reason)) => {
                self.batch_write(SQL_PUT_BAN, params![user.0, ts, reason], "storing a ban")
            }
            None => self.batch_write(SQL_DELETE_BAN, params![user.0], "lifting a ban"),
        }
    }

    /// Stores a server-wide mute's end, or lifts it with `None`.
    pub fn set_mute(&mut self, user: UserId, until: Option<i64>) -> Result<(), StoreError> {
        match until {
            Some(until) => self.batch_write(SQL_PUT_MUTE, params![user.0, until], "storing a mute"),
            None => self.batch_write(SQL_DELETE_MUTE, params![user.0], "lifting a mute"),
        }
    }

    /// Stores a room mute's end.
    pub fn put_room_mute(&mut self, room: i64, user: UserId, until: i64) -> Result<(), StoreError> {
        let p = params![room, user.0, until];
        self.batch_write(SQL_PUT_ROOM_MUTE, p, "storing a room mute")
    }

    /// Stores a kick (`true`) or lifts it (an invitation).
    pub fn set_kick(&mut self, room: i64, user: UserId, kicked: bool) -> Result<(), StoreError> {
        let sql = if kicked {
            SQL_PUT_KICK
        } else {
            SQL_DELETE_KICK
        };
        self.batch_write(sql, params![room, user.0], "storing a kick")
    }

    /// Stores a new invite code by its hash.
    pub fn put_invite(
        &mut self,
        code_hash: &str,
        uses: u32,
        expires: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        let p = params![code_hash, uses, expires, now];
        self.batch_write(SQL_PUT_INVITE, p, "storing an invite")
    }

    /// Spends one use of the invite code of `code_hash`, if it is live at
    /// `now` (in the turn's batch). Returns whether it was.
    pub fn use_invite(&mut self, code_hash: &str, now: i64) -> Result<bool, StoreError> {
        self.begin_batch()?;
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_USE_INVITE)?;
            stmt.execute(params![code_hash, now])
        };
        let changed = run().map_err(|e| fail(&self.label, "using an invite", e))?;
        Ok(changed == 1)
    }

    /// Gives back the use [`Store::use_invite`] spent (the name was taken).
    pub fn refund_invite(&mut self, code_hash: &str) -> Result<(), StoreError> {
        self.batch_write(
            SQL_REFUND_INVITE,
            params![code_hash],
            "giving back an invite",
        )
    }

    /// Appends to the audit log (in the turn's batch).
    pub fn insert_audit(&mut self, a: &NewAudit<'_>) -> Result<(), StoreError> {
        let p = params![
            a.ts, a.actor, a.action, a.target, a.room, a.reason, a.detail
        ];
        self.batch_write(SQL_INSERT_AUDIT, p, "writing the audit")
    }

    /// Up to `limit` audit rows with ids below `before`, newest first.
    pub fn audit_before(&mut self, before: i64, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_AUDIT_BEFORE)?;
            let rows = stmt.query_map(params![before, limit], |r| {
                Ok(AuditRow {
                    id: r.get(0)?,
                    ts: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    room: r.get(5)?,
                    reason: r.get(6)?,
                    detail: r.get(7)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        };
        run().map_err(|e| fail(&self.label, "reading the audit", e))
    }

    /// Up to `limit` users whose folded name starts with `prefix` and
    /// sorts after `after` (folded), by folded name.
    pub fn users_page(
        &mut self,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<UserRow>, StoreError> {
        let (lo, hi) = (prefix.to_ascii_lowercase(), format!("{prefix}\u{10FFFF}"));
        let hi = hi.to_ascii_lowercase();
        let after = after.to_ascii_lowercase();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_USERS_PAGE)?;
            let rows = stmt.query_map(params![lo, hi, after, limit], |r| {
                Ok((UserId(r.get(0)?), r.get(1)?, r.get(2)?))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        };
        run().map_err(|e| fail(&self.label, "listing users", e))
    }

    /// Every message of `user` not deleted yet, oldest first, with what a
    /// deletion needs to know of it.
    pub fn messages_of(&mut self, user: UserId) -> Result<Vec<(i64, MessageInfo)>, StoreError> {
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_MESSAGES_OF)?;
            let rows = stmt.query_map(params![user.0], |r| {
                let info = MessageInfo {
                    author: user,
                    room: r.get(1)?,
                    to: r.get::<_, Option<i64>>(2)?.map(UserId),
                    deleted: false,
                };
                Ok((r.get(0)?, info))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        };
        run().map_err(|e| fail(&self.label, "reading a user's messages", e))
    }

    /// Every stored admin grant, ban, mute, room mute, kick and deleted
    /// account, for start-up.
    pub fn load_moderation(&mut self) -> Result<StoredModeration, StoreError> {
        let conn = &self.conn;
        let users = |sql: &str| -> rusqlite::Result<Vec<UserId>> {
            let mut stmt = conn.prepare_cached(sql)?;
            let rows = stmt.query_map([], |r| Ok(UserId(r.get(0)?)))?;
            rows.collect()
        };
        let run = || -> rusqlite::Result<StoredModeration> {
            let mut m = StoredModeration {
                admins: users(SQL_LOAD_ADMINS)?,
                bans: users(SQL_LOAD_BANS)?,
                deleted: users(SQL_DELETED_USERS)?,
                ..StoredModeration::default()
            };
            let mut stmt = conn.prepare_cached(SQL_LOAD_MUTES)?;
            let rows = stmt.query_map([], |r| Ok((UserId(r.get(0)?), r.get(1)?)))?;
            m.mutes = rows.collect::<rusqlite::Result<_>>()?;
            let mut stmt = conn.prepare_cached(SQL_LOAD_ROOM_MUTES)?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, UserId(r.get(1)?), r.get(2)?)))?;
            m.room_mutes = rows.collect::<rusqlite::Result<_>>()?;
            let mut stmt = conn.prepare_cached(SQL_LOAD_KICKS)?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, UserId(r.get(1)?))))?;
            m.kicks = rows.collect::<rusqlite::Result<_>>()?;
            Ok(m)
        };
        run().map_err(|e| fail(&self.label, "loading moderation", e))
    }

    /// Whether an invite row exists for `code_hash` (tests).
    #[cfg(test)]
    fn invite_uses(&self, code_hash: &str) -> Option<i64> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                "SELECT uses_left FROM invites WHERE code_hash = ?1",
                [code_hash],
                |r| r.get(0),
            )
            .optional()
            .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::sha256_hex;

    #[test]
    fn moderation_round_trips() {
        let mut store = Store::open_in_memory().unwrap();
        let ann = store.create_user("ann", &sha256_hex("a")).unwrap().unwrap();
        let ben = store.create_user("ben", &sha256_hex("b")).unwrap().unwrap();
        store.set_admin(ann.id, true, 1).unwrap();
        store.set_ban(ben.id, Some((2, "spam"))).unwrap();
        store.set_mute(ann.id, Some(99)).unwrap();
        store.put_room_mute(1, ben.id, 77).unwrap();
        store.commit().unwrap();
        let m = store.load_moderation().unwrap();
        assert_eq!(m.admins, [ann.id]);
        assert_eq!(m.bans, [ben.id]);
        assert_eq!(m.mutes, [(ann.id, 99)]);
        assert_eq!(m.room_mutes, [(1, ben.id, 77)]);
        store.set_ban(ben.id, None).unwrap();
        store.set_admin(ann.id, false, 3).unwrap();
        store.commit().unwrap();
        let m = store.load_moderation().unwrap();
        assert!(m.admins.is_empty() && m.bans.is_empty());
    }

    #[test]
    fn invites_are_spent_and_expire() {
        let mut store = Store::open_in_memory().unwrap();
        store.put_invite("h1", 2, Some(100), 0).unwrap();
        assert!(store.use_invite("h1", 50).unwrap());
        assert!(store.use_invite("h1", 50).unwrap());
        assert!(!store.use_invite("h1", 50).unwrap(), "spent");
        assert_eq!(store.invite_uses("h1"), Some(0));
        store.put_invite("h2", 5, Some(100), 0).unwrap();
        assert!(!store.use_invite("h2", 100).unwrap(), "expired");
        assert!(!store.use_invite("nope", 0).unwrap());
    }

    #[test]
    fn a_deleted_name_is_free_and_hidden() {
        let mut store = Store::open_in_memory().unwrap();
        let ann = store.create_user("ann", &sha256_hex("a")).unwrap().unwrap();
        store.delete_user(ann.id, "[deleted]").unwrap();
        store.commit().unwrap();
        assert_eq!(store.user_by_name("ann").unwrap(), None);
        assert_eq!(store.user_by_key_hash(&sha256_hex("a")).unwrap(), None);
        assert!(store.users_page("", "", 10).unwrap().is_empty());
        assert_eq!(store.load_moderation().unwrap().deleted, [ann.id]);
        let again = store.create_user("Ann", &sha256_hex("c")).unwrap();
        assert!(again.is_some(), "the name is free");
        let page = store.users_page("a", "", 10).unwrap();
        assert_eq!(page.len(), 1);
    }

    #[test]
    fn audit_pages_newest_first() {
        let mut store = Store::open_in_memory().unwrap();
        for n in 0..5 {
            let a = NewAudit {
                ts: n,
                actor: "root",
                action: "ban",
                target: Some("x"),
                room: None,
                reason: "",
                detail: "",
            };
            store.insert_audit(&a).unwrap();
        }
        store.commit().unwrap();
        let page = store.audit_before(i64::MAX, 2).unwrap();
        assert_eq!(page.iter().map(|r| r.ts).collect::<Vec<_>>(), [4, 3]);
        let next = store.audit_before(page[1].id, 10).unwrap();
        assert_eq!(next.len(), 3);
    }

    #[test]
    fn user_pages_search_the_name_index() {
        let store = Store::open_in_memory().unwrap();
        let plan = store.plan(
            &SQL_USERS_PAGE
                .replace("?1", "'a'")
                .replace("?2", "'b'")
                .replace("?3", "''")
                .replace("?4", "5"),
        );
        assert!(plan.contains("users_name_fold"), "{plan}");
    }
}
