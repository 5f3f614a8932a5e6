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
use super::{Authed, Chat, ConnId, SessionKey};
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

    /// Registers the event stream `conn` of `who`: from now on it receives
    /// the events of general, of their rooms and of their direct
    /// conversations. Nobody is told. Like a socket, it keeps its session
    /// from expiring while it is open, and logging out ends it. (A request
    /// authenticated without a stored session still gets its stream; it
    /// then ends only when its client or the server does.)
    pub fn stream_open(&mut self, conn: ConnId, who: &Authed) {
        let user = who.user;
        if let Some(session) = self.sessions.get_mut(&who.key) {
            debug_assert_eq!(session.user, user, "a session of another user");
            session.streams.push(conn);
        }
        self.streams.all.insert(conn, (user, who.key.clone()));
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
            if let Some(session) = self.sessions.get(key) {
                let listed = session.user == *user && session.streams.contains(conn);
                assert!(listed, "session of stream {conn:?}");
            }
        }
        for session in self.sessions.values() {
            for conn in &session.streams {
                let open = s.all.get(conn).is_some_and(|(u, _)| *u == session.user);
                assert!(open, "stream {conn:?} of a session is not open");
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatConfig, Outbox};

    /// Records who got what: (recipient, json) and closes.
    #[derive(Default)]
    struct Rec {
        sent: Vec<(u64, String)>,
        closed: Vec<u64>,
    }

    impl Outbox for Rec {
        fn deliver(&mut self, to: impl Iterator<Item = ConnId>, json: &[u8]) {
            let json = String::from_utf8(json.to_vec()).unwrap();
            self.sent.extend(to.map(|c| (c.0, json.clone())));
        }
        fn close(&mut self, conn: ConnId, _: u16, _: &'static str) {
            self.closed.push(conn.0);
        }
    }

    impl Rec {
        /// The recipients of everything sent since the last call.
        fn to(&mut self) -> Vec<u64> {
            let mut to: Vec<u64> = self.sent.drain(..).map(|(c, _)| c).collect();
            to.sort();
            to
        }
    }

    fn key(n: u64) -> SessionKey {
        SessionKey::of(&format!("{n:032}"))
    }

    /// Users 1..=3 logged in; user 1 has socket 1; each user `u` has
    /// stream `10 + u`.
    fn three_streams() -> (Chat, Rec) {
        let cfg = ChatConfig::from_config(&crate::config::Config::default());
        let mut chat = Chat::new(cfg, Millis(0), 1_000_000);
        let mut out = Rec::default();
        for u in 1..=3 {
            chat.login(key(u), UserId(u as i64), &format!("u{u}"), Millis(0));
            chat.add_user(UserId(u as i64), &format!("u{u}"));
        }
        chat.ws_open(ConnId(1), &key(1), Millis(0));
        chat.flush_presence(&mut out);
        for u in 1..=3 {
            let who = Authed {
                key: key(u),
                user: UserId(u as i64),
                name: format!("u{u}").into(),
            };
            chat.stream_open(ConnId(10 + u), &who);
            chat.check();
        }
        chat.flush_presence(&mut out);
        assert_eq!(out.to(), Vec::<u64>::new(), "no presence for streams");
        (chat, out)
    }

    #[test]
    fn streams_get_the_events_of_their_conversations_only() {
        let (mut chat, mut out) = three_streams();
        chat.ws_text(ConnId(1), r#"{"message":"hi"}"#, Millis(1), &mut out);
        let to = out.to();
        // The ack to the sender's socket, the message to every stream.
        assert_eq!(to, [1, 11, 12, 13]);

        chat.create_room(UserId(1), "den", true, Millis(2), &mut out)
            .unwrap();
        chat.invite(UserId(1), "den", "u2", Millis(2), &mut out)
            .unwrap();
        chat.check();
        assert_eq!(out.to(), [1, 1, 11, 11, 12]);
        chat.ws_text(
            ConnId(1),
            r#"{"message":"x","room":"den"}"#,
            Millis(3),
            &mut out,
        );
        assert_eq!(out.to(), [1, 11, 12]);
        chat.ws_text(
            ConnId(1),
            r#"{"message":"x","to":"u3"}"#,
            Millis(4),
            &mut out,
        );
        assert_eq!(out.to(), [1, 11, 13]);
        // Typing is live only: sockets, never streams.
        chat.ws_text(ConnId(1), r#"{"typing":true}"#, Millis(5), &mut out);
        assert_eq!(out.to(), [1]);

        chat.leave_room(UserId(2), "den", Millis(6), &mut out)
            .unwrap();
        chat.check();
        assert_eq!(out.to(), [1, 11, 12], "the leave reaches the leaver");
        chat.ws_text(
            ConnId(1),
            r#"{"message":"y","room":"den"}"#,
            Millis(7),
            &mut out,
        );
        assert_eq!(out.to(), [1, 11]);
    }

    #[test]
    fn a_stream_keeps_its_session_and_logout_ends_it() {
        let (mut chat, mut out) = three_streams();
        let ttl = Millis::of(crate::config::Config::default().session_ttl);
        let later = Millis(ttl.0 * 3);
        chat.handle_timeouts(later);
        assert!(
            chat.authenticate(Some(&format!("{:032}", 3)), later)
                .is_ok()
        );
        chat.logout(&format!("{:032}", 3), &mut out);
        assert_eq!(out.closed, [13]);
        assert_eq!(chat.streams_of(UserId(3)), []);
        chat.check();
        chat.stream_closed(ConnId(13), later);
        chat.stream_closed(ConnId(12), later);
        chat.check();
        chat.ws_text(ConnId(1), r#"{"message":"hi"}"#, later, &mut out);
        assert_eq!(out.to(), [1, 11]);
    }
}
