//! Rooms: names, public or private, stored members with a role, and for
//! each room the open sockets of its members (the membership index a room
//! message is delivered through, with no query per message). Room
//! `general` is special: everyone is in it, nobody leaves it, its online
//! sockets are the chat's global online list, and its frames carry no
//! `room` field.

use super::Chat;
use super::outbox::Outbox;
use crate::event::{EventKind, NewEvent};
use crate::ids::{ConnId, Millis, UserId};
use crate::protocol::{MemberEvent, ServerFrame};
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

/// A read marker in memory (a room's, general's or a direct
/// conversation's; see `conversation.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Marker {
    /// The newest event read.
    pub(super) id: i64,
    /// The conversation's message count at the marker.
    pub(super) ordinal: u64,
}

/// Where an admitted message (or typing notice, or read marker) goes.
pub(super) enum Dest {
    General,
    Room(RoomId),
    Direct(UserId),
}

/// A room's id: its row id in the store. General is [`GENERAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(pub i64);

/// Room `general`.
pub const GENERAL: RoomId = RoomId(1);

/// A member's role in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Created the room.
    Owner,
    /// May invite (and, later, moderate).
    Moderator,
    /// Everyone else.
    Member,
}

impl Role {
    /// The name on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Moderator => "moderator",
            Role::Member => "member",
        }
    }

    /// The role of a stored name; an unknown one is a plain member.
    pub fn parse(s: &str) -> Role {
        match s {
            "owner" => Role::Owner,
            "moderator" => Role::Moderator,
            _ => Role::Member,
        }
    }
}

/// Why a room operation was refused; each says what the peer sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomError {
    /// 400 `invalid_room_name`.
    InvalidName,
    /// 409 `room_exists`.
    Exists,
    /// 404 `room_not_found`: no such room, or a private one the user is
    /// not in (never 403: to outsiders it does not exist).
    NotFound,
    /// 400 `cannot_leave`: general, or the owner of a private room.
    CannotLeave,
    /// 403 `forbidden`: only the owner or a moderator may invite.
    Forbidden,
    /// 404 `user_not_found`.
    UserNotFound,
    /// 403 `kicked`: a moderator removed the user from this room; only an
    /// invitation brings them back.
    Kicked,
}

impl RoomError {
    /// HTTP status and error code.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            RoomError::InvalidName => (400, "invalid_room_name"),
            RoomError::Exists => (409, "room_exists"),
            RoomError::NotFound => (404, "room_not_found"),
            RoomError::CannotLeave => (400, "cannot_leave"),
            RoomError::Forbidden => (403, "forbidden"),
            RoomError::UserNotFound => (404, "user_not_found"),
            RoomError::Kicked => (403, "kicked"),
        }
    }
}

/// A valid room name: 1 to 32 of `a-z 0-9 - _`, any case (folded to lower
/// case by the caller).
pub fn valid_room_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Debug)]
pub(super) struct Room {
    pub(super) name: Rc<str>,
    private: bool,
    /// Stored members (none for general: everyone is in it).
    pub(super) members: HashMap<UserId, Role>,
    /// The open sockets of the members (not kept for general).
    pub(super) online: BTreeSet<ConnId>,
    /// The newest event's id.
    pub(super) last_id: i64,
    /// How many messages it holds (for unread counts).
    pub(super) count: u64,
}

/// Every room and who is in which.
#[derive(Debug, Default)]
pub(super) struct Rooms {
    pub(super) rooms: HashMap<RoomId, Room>,
    by_name: HashMap<Rc<str>, RoomId>,
    /// The rooms each user is a member of, general aside.
    pub(super) of_user: HashMap<UserId, BTreeSet<RoomId>>,
    next_id: i64,
}

impl Rooms {
    /// Only general.
    pub(super) fn new() -> Rooms {
        let mut rooms = Rooms::default();
        rooms.add(GENERAL, "general", false);
        rooms
    }

    /// A room by name, any case (also a private one: callers decide who
    /// may see it).
    pub(super) fn find(&self, name: &str) -> Option<RoomId> {
        self.by_name
            .get(name.to_ascii_lowercase().as_str())
            .copied()
    }

    pub(super) fn add(&mut self, id: RoomId, name: &str, private: bool) {
        let name: Rc<str> = name.to_ascii_lowercase().into();
        self.by_name.insert(name.clone(), id);
        self.next_id = self.next_id.max(id.0 + 1);
        let room = Room {
            name,
            private,
            members: HashMap::new(),
            online: BTreeSet::new(),
            last_id: 0,
            count: 0,
        };
        self.rooms.insert(id, room);
    }

    /// The room of `id`.
    pub(super) fn get(&self, id: RoomId) -> Option<&Room> {
        self.rooms.get(&id)
    }

    /// The role of `user` in `room` (general: everyone is a member).
    pub(super) fn role(&self, room: RoomId, user: UserId) -> Option<Role> {
        if room == GENERAL {
            return Some(Role::Member);
        }
        self.rooms.get(&room)?.members.get(&user).copied()
    }

    /// The room named `name` as `user` sees it: a private room they are
    /// not in does not exist.
    pub(super) fn visible(&self, name: &str, user: UserId) -> Result<RoomId, RoomError> {
        let id = self.find(name).ok_or(RoomError::NotFound)?;
        let room = &self.rooms[&id];
        if room.private && self.role(id, user).is_none() {
            return Err(RoomError::NotFound);
        }
        Ok(id)
    }
}

/// A new room, for the caller to store in the turn's batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoom {
    /// Its id.
    pub id: RoomId,
    /// Its name, lower case.
    pub name: Rc<str>,
    /// Join by invitation only.
    pub private: bool,
    /// Unix milliseconds.
    pub ts: i64,
}

/// A membership change, for the caller to store in the turn's batch: the
/// member row (`role: None` removes it) and its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The room.
    pub room: RoomId,
    /// The member.
    pub user: UserId,
    /// The new role; `None`: no longer a member.
    pub role: Option<Role>,
    /// The event's id.
    pub id: i64,
    /// The event's time, Unix milliseconds.
    pub ts: i64,
}

impl Membership {
    /// The event row to insert.
    pub fn row(&self) -> NewEvent<'static> {
        let kind = match self.role {
            Some(_) => EventKind::RoomJoin,
            None => EventKind::RoomLeave,
        };
        NewEvent {
            id: self.id,
            kind,
            user: self.user,
            room: Some(self.room.0),
            to: None,
            ts: self.ts,
            text: "",
            client_id: None,
            target: None,
        }
    }
}

/// A line of `GET /api/rooms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// The name.
    pub name: Rc<str>,
    /// Invitation only.
    pub private: bool,
    /// How many members.
    pub members: usize,
    /// The asking user's role, `None` when not a member.
    pub role: Option<Role>,
    /// The newest event's id (0: none yet).
    pub last_id: i64,
    /// Messages after the user's read marker.
    pub unread: u64,
}

/// A line of `GET /api/rooms/{name}/members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The name as registered.
    pub username: Rc<str>,
    /// The role.
    pub role: Role,
    /// Has an open chat socket.
    pub online: bool,
}

impl Chat {
    /// Start-up: a stored user (direct messages and member lists name
    /// users who are not online), or a newly registered one.
    pub fn add_user(&mut self, user: UserId, name: &str) {
        self.directory.add(user, name);
    }

    /// After a failed commit: forgets every user, room and membership, to
    /// load them again from the store (which rolled the turn's changes
    /// back), so memory never holds a room or a user the database does
    /// not. Then [`Chat::reindex_room_sockets`].
    pub fn forget_rooms_and_users(&mut self) {
        self.directory = super::directory::Directory::default();
        self.rooms = Rooms::new();
        self.general_last_id = 0;
    }

    /// Puts every open socket back into the online sets of its user's
    /// rooms (after [`Chat::forget_rooms_and_users`] and the reload).
    pub fn reindex_room_sockets(&mut self) {
        let open: Vec<(UserId, ConnId)> = self
            .user_sockets
            .iter()
            .flat_map(|(&u, conns)| conns.iter().map(move |&c| (u, c)))
            .collect();
        for (user, conn) in open {
            self.rooms_socket_open(user, conn);
        }
        self.reindex_streams();
    }

    /// Start-up: a stored room (general exists from the start).
    pub fn restore_room(&mut self, id: RoomId, name: &str, private: bool) {
        if !self.rooms.rooms.contains_key(&id) {
            self.rooms.add(id, name, private);
        }
    }

    /// Start-up: a stored membership (of a restored room).
    pub fn restore_member(&mut self, room: RoomId, user: UserId, role: Role) {
        if let Some(r) = self.rooms.rooms.get_mut(&room) {
            r.members.insert(user, role);
            self.rooms.of_user.entry(user).or_default().insert(room);
        }
    }

    /// Start-up: the newest event of `room`.
    pub fn restore_room_last_id(&mut self, room: RoomId, id: i64) {
        if room == GENERAL {
            self.general_last_id = self.general_last_id.max(id);
        } else if let Some(r) = self.rooms.rooms.get_mut(&room) {
            r.last_id = r.last_id.max(id);
        }
    }

    /// `POST /api/rooms`: a new room with `user` as its owner; the owner's
    /// sockets get the `room_join`.
    pub fn create_room(
        &mut self,
        user: UserId,
        name: &str,
        private: bool,
        now: Millis,
        out: &mut impl Outbox,
    ) -> Result<(NewRoom, Membership), RoomError> {
        if !valid_room_name(name) {
            return Err(RoomError::InvalidName);
        }
        if self.rooms.find(name).is_some() {
            return Err(RoomError::Exists);
        }
        let id = RoomId(self.rooms.next_id.max(GENERAL.0 + 1));
        self.rooms.add(id, name, private);
        let (eid, ts) = self.next_event(now);
        let room = NewRoom {
            id,
            name: self.rooms.rooms[&id].name.clone(),
            private,
            ts,
        };
        let joined = self.add_member(id, user, Role::Owner, (eid, ts), out);
        Ok((room, joined))
    }

    /// `POST /api/rooms/{name}/join`. `Ok(None)`: a member already.
    pub fn join_room(
        &mut self,
        user: UserId,
        name: &str,
        now: Millis,
        out: &mut impl Outbox,
    ) -> Result<Option<Membership>, RoomError> {
        let id = self.rooms.visible(name, user)?;
        if self.rooms.role(id, user).is_some() {
            return Ok(None);
        }
        if self.is_kicked(id, user) {
            return Err(RoomError::Kicked);
        }
        let event = self.next_event(now);
        Ok(Some(self.add_member(id, user, Role::Member, event, out)))
    }

    /// `POST /api/rooms/{name}/invite`: `by` (owner or moderator) makes
    /// `invitee` a member at once. `Ok(None)`: a member already.
    pub fn invite(
        &mut self,
        by: UserId,
        name: &str,
        invitee: &str,
        now: Millis,
        out: &mut impl Outbox,
    ) -> Result<Option<Membership>, RoomError> {
        let id = self.rooms.visible(name, by)?;
        let (user, _) = self
            .directory
            .find(invitee)
            .ok_or(RoomError::UserNotFound)?;
        if self.rooms.role(id, user).is_some() {
            return Ok(None);
        }
        if !matches!(self.rooms.role(id, by), Some(Role::Owner | Role::Moderator)) {
            return Err(RoomError::Forbidden);
        }
        // An invitation from the room's moderators lifts a kick.
        self.unkick(id, user);
        let event = self.next_event(now);
        Ok(Some(self.add_member(id, user, Role::Member, event, out)))
    }

    /// `POST /api/rooms/{name}/leave`. `Ok(None)`: not a member anyway.
    /// The `room_leave` reaches the leaver's sockets too, then they stop
    /// receiving the room.
    pub fn leave_room(
        &mut self,
        user: UserId,
        name: &str,
        now: Millis,
        out: &mut impl Outbox,
    ) -> Result<Option<Membership>, RoomError> {
        let id = self.rooms.visible(name, user)?;
        if id == GENERAL {
            return Err(RoomError::CannotLeave);
        }
        match self.rooms.role(id, user) {
            None => return Ok(None),
            // Only its owner or a moderator can bring anyone into a private
            // room: were its owner to leave, nobody could ever enter it
            // again, and its name would stay taken for good.
            Some(Role::Owner) if self.rooms.rooms[&id].private => {
                return Err(RoomError::CannotLeave);
            }
            Some(_) => {}
        }
        let (eid, ts) = self.next_event(now);
        self.announce_member("room_leave", id, user, (eid, ts), out);
        self.drop_member(id, user);
        if let Some(room) = self.rooms.rooms.get_mut(&id) {
            room.last_id = eid;
        }
        Ok(Some(Membership {
            room: id,
            user,
            role: None,
            id: eid,
            ts,
        }))
    }

    /// Takes `user` off room `id`: its members, its online set, and the
    /// user's index. Nothing is announced.
    pub(super) fn drop_member(&mut self, id: RoomId, user: UserId) {
        let Some(room) = self.rooms.rooms.get_mut(&id) else {
            return;
        };
        room.members.remove(&user);
        for conn in self.user_sockets.get(&user).into_iter().flatten() {
            room.online.remove(conn);
        }
        self.streams_leave_room(user, id);
        if let Some(set) = self.rooms.of_user.get_mut(&user) {
            set.remove(&id);
            if set.is_empty() {
                self.rooms.of_user.remove(&user);
            }
        }
    }

    fn add_member(
        &mut self,
        id: RoomId,
        user: UserId,
        role: Role,
        (eid, ts): (i64, i64),
        out: &mut impl Outbox,
    ) -> Membership {
        let room = self.rooms.rooms.get_mut(&id).expect("a known room");
        room.members.insert(user, role);
        room.last_id = eid;
        room.online
            .extend(self.user_sockets.get(&user).into_iter().flatten());
        self.rooms.of_user.entry(user).or_default().insert(id);
        // A newcomer has read nothing, but nothing from before they came is
        // news to them either: their read marker starts at their join.
        let marker = Marker {
            id: eid,
            ordinal: room.count,
        };
        self.reads.insert((user, id.0), marker);
        self.streams_join_room(user, id);
        self.announce_member("room_join", id, user, (eid, ts), out);
        Membership {
            room: id,
            user,
            role: Some(role),
            id: eid,
            ts,
        }
    }

    /// A membership event to the room's online members.
    fn announce_member(
        &mut self,
        event: &'static str,
        id: RoomId,
        user: UserId,
        (eid, ts): (i64, i64),
        out: &mut impl Outbox,
    ) {
        self.flush_presence(out);
        let room = &self.rooms.rooms[&id];
        let username = self.directory.name(user).map_or("", |n| n);
        let json = ServerFrame::Member(&MemberEvent {
            event,
            room: &room.name,
            username,
            id: eid,
            ts,
        })
        .to_json();
        // Stored in the turn's batch: taken back if its commit fails.
        let streams = self.streams.of_room(id);
        out.deliver_event(room.online.iter().copied().chain(streams), &json);
    }

    /// The rooms `user` sees: general, the public ones and their private
    /// ones, general first, then by name.
    pub fn room_list(&self, user: UserId) -> Vec<RoomInfo> {
        let mut list: Vec<RoomInfo> = self
            .rooms
            .rooms
            .iter()
            .filter_map(|(&id, room)| {
                let role = self.rooms.role(id, user);
                (!room.private || role.is_some()).then(|| RoomInfo {
                    name: room.name.clone(),
                    private: room.private,
                    members: if id == GENERAL {
                        self.directory.len()
                    } else {
                        room.members.len()
                    },
                    role,
                    last_id: if id == GENERAL {
                        self.general_last_id
                    } else {
                        room.last_id
                    },
                    unread: if role.is_some() {
                        self.unread(user, id)
                    } else {
                        0
                    },
                })
            })
            .collect();
        list.sort_by(|a, b| {
            (&*a.name != "general", &a.name).cmp(&(&*b.name != "general", &b.name))
        });
        list
    }

    /// The members of a room `user` sees: by role, then name.
    pub fn room_members(&self, user: UserId, name: &str) -> Result<Vec<MemberInfo>, RoomError> {
        let id = self.rooms.visible(name, user)?;
        let info = |u: UserId, role: Role| {
            let username = self.directory.name(u)?.clone();
            let online = self.is_online(u);
            Some(MemberInfo {
                username,
                role,
                online,
            })
        };
        let mut list: Vec<MemberInfo> = if id == GENERAL {
            let everyone = self.directory.iter();
            everyone
                .filter_map(|(u, _)| info(u, Role::Member))
                .collect()
        } else {
            let members = self.rooms.rooms[&id].members.iter();
            members.filter_map(|(&u, &r)| info(u, r)).collect()
        };
        list.sort_by(|a, b| (a.role, &a.username).cmp(&(b.role, &b.username)));
        Ok(list)
    }

    /// A socket of `user` opened: it joins the online set of each of the
    /// user's rooms.
    pub(super) fn rooms_socket_open(&mut self, user: UserId, conn: ConnId) {
        for id in self.rooms.of_user.get(&user).into_iter().flatten() {
            if let Some(room) = self.rooms.rooms.get_mut(id) {
                room.online.insert(conn);
            }
        }
    }

    /// A socket of `user` is gone: off every room's online set.
    pub(super) fn rooms_socket_closed(&mut self, user: UserId, conn: ConnId) {
        for id in self.rooms.of_user.get(&user).into_iter().flatten() {
            if let Some(room) = self.rooms.rooms.get_mut(id) {
                room.online.remove(&conn);
            }
        }
    }

    /// Asserts that every room's online set is exactly its members' open
    /// sockets, and the per-user index matches the member tables.
    pub(super) fn check_rooms(&self) {
        for (id, room) in &self.rooms.rooms {
            let want: BTreeSet<ConnId> = room
                .members
                .keys()
                .flat_map(|u| self.sockets_of(*u).iter().copied())
                .collect();
            assert_eq!(room.online, want, "online members of {}", room.name);
            for user in room.members.keys() {
                let listed = self.rooms.of_user.get(user).is_some_and(|s| s.contains(id));
                assert!(listed, "{user:?} in {}", room.name);
            }
        }
        for (user, set) in &self.rooms.of_user {
            for id in set {
                assert!(self.rooms.role(*id, *user).is_some(), "{user:?} index");
            }
        }
    }
}
