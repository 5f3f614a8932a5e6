//! Event streams (`GET /api/events`): listeners that receive every stored
//! event their user may see, through the same deliveries as the sockets,
//! but that are not sockets. A stream does not make its user online
//! (no `join`/`leave`, not in the online list, not counted by the
//! one-socket rule) and gets nothing live-only (presence, typing, read
//! markers): only events, each with its id, so that a resume is exact.
//!
//! Streams are indexed like sockets: all of them (general's events), by
//! user (direct messages, logout) and by room (the room's events), so a
//! delivery chains the streams onto the sockets it already has, with no
//! scan and no query.

use super::rooms::RoomId;
use super::{Chat, ConnId, SessionKey};
use crate::ids::{Millis, UserId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The open streams.
#[derive(Debug, Default)]
pub(super) struct Streams {
    /// Every open stream, its user and session.
    all: BTreeMap<ConnId, (UserId, SessionKey)>,
    /// Each user's open streams.
    by_user: HashMap<UserId, Vec<ConnId>>,
    /// The open streams of each room's members (general aside: every
    /// stream is in it).
    by_room: HashMap<RoomId, BTreeSet<ConnId>>,
}

impl Streams {
    /// Every open stream (general's events).
    pub(super) fn all(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.all.keys().copied()
    }

    /// The open streams of `user`.
    pub(super) fn of_user(&self, user: UserId) -> &[ConnId] {
        self.by_user.get(&user).map_or(&[], Vec::as_slice)
    }

    /// The open streams of the members of `room`.
    pub(super) fn of_room(&self, room: RoomId) -> impl Iterator<Item = ConnId> + '_ {
        self.by_room.get(&room).into_iter().flatten().copied()
    }
}

impl Chat {
    /// The open event streams of `user` (for the per-user limit).
    pub fn streams_of(&self, user: UserId) -> &[ConnId] {
        self.streams.of_user(user)
    }

    /// Registers the event stream `conn` of session `key`: from now on it
    /// receives the events of general, of its user's rooms and of their
    /// direct conversations. Nobody is told. Like a socket, it keeps its
    /// session from expiring while it is open.
    pub fn stream_open(&mut self, conn: ConnId, key: &SessionKey) {
        let Some(session) = self.sessions.get_mut(key) else {
            debug_assert!(false, "stream_open for an unknown session");
            return;
        };
        session.streams.push(conn);
        let user = session.user;
        self.streams.all.insert(conn, (user, key.clone()));
        self.streams.by_user.entry(user).or_default().push(conn);
        for room in self.rooms.of_user.get(&user).into_iter().flatten() {
            self.streams.by_room.entry(*room).or_default().insert(conn);
        }
    }

    /// Event stream `conn` is gone (for any reason); its session's idle
    /// time counts from `now`. Calling it again does nothing.
    pub fn stream_closed(&mut self, conn: ConnId, now: Millis) {
        self.clock = self.clock.max(now);
        let Some((user, key)) = self.forget_stream(conn) else {
            return;
        };
        debug_assert!(self.sessions.get(&key).is_none_or(|s| s.user == user));
        if let Some(session) = self.sessions.get_mut(&key) {
            session.last_active = now;
            session.used = self.uses.next().unwrap_or(u64::MAX);
            self.journal.touched.insert(key);
        }
    }

    /// Takes `conn` off every table; returns its user and session.
    pub(super) fn forget_stream(&mut self, conn: ConnId) -> Option<(UserId, SessionKey)> {
        let (user, key) = self.streams.all.remove(&conn)?;
        if let Some(list) = self.streams.by_user.get_mut(&user) {
            list.retain(|&c| c != conn);
            if list.is_empty() {
                self.streams.by_user.remove(&user);
            }
        }
        for room in self.rooms.of_user.get(&user).into_iter().flatten() {
            if let Some(set) = self.streams.by_room.get_mut(room) {
                set.remove(&conn);
            }
        }
        if let Some(session) = self.sessions.get_mut(&key) {
            session.streams.retain(|&c| c != conn);
        }
        Some((user, key))
    }

    /// `user` became a member of `room`: their streams receive it.
    pub(super) fn streams_join_room(&mut self, user: UserId, room: RoomId) {
        let conns = self.streams.by_user.get(&user).into_iter().flatten();
        let set = self.streams.by_room.entry(room).or_default();
        set.extend(conns);
    }

    /// `user` left `room`: their streams no longer receive it.
    pub(super) fn streams_leave_room(&mut self, user: UserId, room: RoomId) {
        let Some(set) = self.streams.by_room.get_mut(&room) else {
            return;
        };
        for conn in self.streams.by_user.get(&user).into_iter().flatten() {
            set.remove(conn);
        }
    }

    /// Rebuilds the room index of the streams from the member tables
    /// (after a failed commit reloaded the rooms).
    pub(super) fn reindex_streams(&mut self) {
        self.streams.by_room.clear();
        for (&conn, (user, _)) in &self.streams.all {
            for room in self.rooms.of_user.get(user).into_iter().flatten() {
                self.streams.by_room.entry(*room).or_default().insert(conn);
            }
        }
    }

    /// Asserts that the stream tables agree with each other, with the
    /// sessions and with the rooms' members.
    pub(super) fn check_streams(&self) {
        let s = &self.streams;
        let listed: usize = s.by_user.values().map(Vec::len).sum();
        assert_eq!(listed, s.all.len(), "per-user stream lists");
        for (conn, (user, key)) in &s.all {
            assert!(s.of_user(*user).contains(conn), "user list of {conn:?}");
            let session = self.sessions.get(key);
            assert!(
                session.is_some_and(|s| s.user == *user && s.streams.contains(conn)),
                "session of stream {conn:?}"
            );
        }
        let in_sessions: usize = self.sessions.values().map(|s| s.streams.len()).sum();
        assert_eq!(in_sessions, s.all.len(), "sessions with a stream");
        for (room, set) in &s.by_room {
            let want: BTreeSet<ConnId> = s
                .all
                .iter()
                .filter(|(_, (u, _))| self.rooms.role(*room, *u).is_some())
                .map(|(c, _)| *c)
                .collect();
            assert_eq!(*set, want, "streams of room {room:?}");
        }
        for (conn, (user, _)) in &s.all {
            assert!(!self.sockets.contains_key(conn), "{conn:?} is a socket too");
            for room in self.rooms.of_user.get(user).into_iter().flatten() {
                let indexed = s.by_room.get(room).is_some_and(|r| r.contains(conn));
                assert!(indexed, "{conn:?} in the index of {room:?}");
            }
        }
    }
}
