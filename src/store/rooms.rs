//! Rooms and their stored members. The chat holds both in memory (loaded
//! here at start-up) and writes every change into the turn's batch, so no
//! message ever waits on a query about who is in a room.

use super::Store;
use super::error::{StoreError, fail};
use crate::ids::UserId;
use rusqlite::params;

const SQL_INSERT_ROOM: &str =
    "INSERT INTO rooms (id, name, private, created) VALUES (?1, ?2, ?3, ?4)";
const SQL_PUT_MEMBER: &str =
    "INSERT OR REPLACE INTO members (room_id, user_id, role) VALUES (?1, ?2, ?3)";
const SQL_DELETE_MEMBER: &str = "DELETE FROM members WHERE room_id = ?1 AND user_id = ?2";
const SQL_LOAD_ROOMS: &str = "SELECT id, name, private FROM rooms ORDER BY id";
const SQL_LOAD_MEMBERS: &str = "SELECT room_id, user_id, role FROM members";

/// A stored room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoom {
    /// Row id (1 is general).
    pub id: i64,
    /// Its name, lower case.
    pub name: String,
    /// Join by invitation only.
    pub private: bool,
}

/// A stored membership: room, user, role (`owner`, `moderator`, `member`).
pub type StoredMember = (i64, UserId, String);

impl Store {
    /// Stores a new room (in the turn's batch). The chat assigned the id
    /// and checked that the name is free.
    pub fn insert_room(
        &mut self,
        id: i64,
        name: &str,
        private: bool,
        created: i64,
    ) -> Result<(), StoreError> {
        self.batch_write(
            SQL_INSERT_ROOM,
            params![id, name, private, created],
            "storing a room",
        )
    }

    /// Makes `user` a member of `room` with `role`, or changes the role
    /// (in the turn's batch).
    pub fn put_member(&mut self, room: i64, user: UserId, role: &str) -> Result<(), StoreError> {
        self.batch_write(
            SQL_PUT_MEMBER,
            params![room, user.0, role],
            "storing a member",
        )
    }

    /// Removes `user` from `room` (in the turn's batch).
    pub fn delete_member(&mut self, room: i64, user: UserId) -> Result<(), StoreError> {
        self.batch_write(
            SQL_DELETE_MEMBER,
            params![room, user.0],
            "removing a member",
        )
    }

    /// Every room, general first.
    pub fn load_rooms(&mut self) -> Result<Vec<StoredRoom>, StoreError> {
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_LOAD_ROOMS)?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredRoom {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    private: r.get(2)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        };
        run().map_err(|e| fail(&self.label, "loading rooms", e))
    }

    /// Every stored membership.
    pub fn load_members(&mut self) -> Result<Vec<StoredMember>, StoreError> {
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_LOAD_MEMBERS)?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, UserId(r.get(1)?), r.get(2)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        };
        run().map_err(|e| fail(&self.label, "loading members", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_and_members_round_trip() {
        let mut store = Store::open_in_memory().unwrap();
        let ann = store
            .create_user("ann", &crate::secret::sha256_hex("k"))
            .unwrap()
            .unwrap();
        store.insert_room(2, "rust", true, 5).unwrap();
        store.put_member(2, ann.id, "member").unwrap();
        store.put_member(2, ann.id, "owner").unwrap();
        store.commit().unwrap();
        let rooms = store.load_rooms().unwrap();
        let names: Vec<(&str, bool)> = rooms.iter().map(|r| (r.name.as_str(), r.private)).collect();
        assert_eq!(names, [("general", false), ("rust", true)]);
        assert_eq!(store.load_members().unwrap(), [(2, ann.id, "owner".into())]);
        assert!(
            store.insert_room(3, "rust", false, 5).is_err(),
            "names are unique"
        );
        store.delete_member(2, ann.id).unwrap();
        store.commit().unwrap();
        assert_eq!(store.load_members().unwrap(), []);
        assert_eq!(store.load_users().unwrap(), [ann]);
    }

    #[test]
    fn room_queries_search_an_index() {
        let store = Store::open_in_memory().unwrap();
        let plan = store.plan(&SQL_DELETE_MEMBER.replace("?1", "1").replace("?2", "1"));
        assert!(plan.contains("PRIMARY KEY"), "{plan}");
    }
}
