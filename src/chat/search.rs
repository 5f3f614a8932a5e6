//! What a search across every conversation may show a user (SPEC §13):
//! the same conversations a resuming socket replays, decided from the
//! chat's memory (rooms and members), not by a query.

use super::Chat;
use super::rooms::RoomId;
use crate::ids::UserId;
use std::rc::Rc;

impl Chat {
    /// Whether `user` may find a message of `author` in room `room`
    /// (`None`: general, or the direct message to `to`): general's, the
    /// rooms they are a member of now, and the direct messages they sent
    /// or received. A public room they have not joined is searched only
    /// when they name it (as its history page is readable).
    pub fn may_find(
        &self,
        user: UserId,
        room: Option<i64>,
        author: UserId,
        to: Option<UserId>,
    ) -> bool {
        match (room, to) {
            (Some(room), _) => self.rooms.role(RoomId(room), user).is_some(),
            (None, Some(to)) => author == user || to == user,
            (None, None) => true,
        }
    }

    /// The name of room `room` (general's too), if it exists.
    pub fn room_name(&self, room: i64) -> Option<Rc<str>> {
        self.rooms.get(RoomId(room)).map(|r| r.name.clone())
    }
}
