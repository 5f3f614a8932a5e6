//! Operation sequences on the sans-IO chat core with a recording `Outbox`,
//! against a model of sessions and sockets.
//!
//! Invariants, after every operation: at most one open socket per user;
//! the online list equals the model's open sockets in connection order;
//! every `join` (to the sockets open at the time) is matched by exactly one
//! `leave` (to the sockets open when it goes: at the end of the turn, or
//! before the next join or broadcast, never to a socket closed before
//! then); nothing is ever sent to a closed connection; a frame is answered with exactly one ack (and a
//! broadcast to the others when accepted); sessions end exactly when the
//! sliding TTL says; the address limits agree with a window model; and
//! `chat.check()` holds.
//!
//! Rooms and direct messages: rooms are created, joined, left and invited
//! to against a model of members and roles; every refusal has the model's
//! error; a room frame or membership event goes to exactly the online
//! sockets of the room's members, a direct message to exactly the
//! recipient's socket (never the sender's own), each at most once; and
//! every stored event (message or membership change) takes the next id of
//! one sequence.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use piratchat::chat::{
    AddressLimit, AuthError, Chat, ChatConfig, ConnId, Outbox, Role, RoomError, SessionKey,
};
use piratchat::store::UserId;
use piratchat::wheel::Millis;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::IpAddr;

const TTL: u64 = 5_000;
const WINDOW: u64 = 10_000;
const LIMIT: u32 = 3;
const USERS: [&str; 3] = ["ann", "ben", "cy"];
/// Room names; the last is never created.
const ROOMS: [&str; 4] = ["general", "r1", "r2", "nope"];

#[derive(Debug, Arbitrary)]
enum Op {
    Login(u8),
    Authenticate(u8),
    AuthenticateNone,
    Connect(u8),
    Text(u8, Text),
    Binary(u8),
    Close(u8),
    GoingAway(u8),
    Logout(u8),
    Advance(u16),
    Timeouts,
    Record(bool, u8),
    Check(bool, u8),
    CreateRoom(u8, u8, bool),
    JoinRoom(u8, u8),
    LeaveRoom(u8, u8),
    Invite(u8, u8, u8),
    RoomText(u8, u8),
    /// A direct message to `USERS[n]`, or to nobody past the end.
    Direct(u8, u8),
    /// The server's turn ends: the pending `leave`s go out.
    EndTurn,
}

#[derive(Debug, Arbitrary)]
enum Text {
    Fine(u8),
    Blank,
    TooLong,
    Raw(String),
}

impl Text {
    fn frame(&self) -> String {
        match self {
            Text::Fine(n) => json!({ "message": "x".repeat(usize::from(*n % 40) + 1) }).to_string(),
            Text::Blank => r#"{"message":" \t"}"#.to_string(),
            Text::TooLong => json!({ "message": "é".repeat(301) }).to_string(),
            Text::Raw(s) => s.clone(),
        }
    }
}

/// What the chat asked of the outbox during one call.
#[derive(Debug, PartialEq)]
enum Event {
    Deliver(Vec<ConnId>, Value),
    Close(ConnId, u16),
}

#[derive(Default)]
struct Recorder(Vec<Event>);

impl Outbox for Recorder {
    fn deliver(&mut self, to: impl Iterator<Item = ConnId>, json: &[u8]) {
        let value = serde_json::from_slice(json).expect("the chat sends JSON");
        self.0.push(Event::Deliver(to.collect(), value));
    }
    fn close(&mut self, conn: ConnId, code: u16, _reason: &'static str) {
        self.0.push(Event::Close(conn, code));
    }
}

struct MSession {
    token: String,
    user: usize,
    last_active: u64,
    /// Logged out or expired.
    over: bool,
    socket: Option<ConnId>,
}

#[derive(Default)]
struct Model {
    now: u64,
    sessions: Vec<MSession>,
    /// Every socket ever opened: (session, user).
    conns: Vec<(usize, usize)>,
    /// Open sockets in connection order.
    online: Vec<ConnId>,
    attempts: HashMap<(bool, u8), Vec<u64>>,
    /// Names of the sockets closed since the last flush of `leave`s.
    leaving: Vec<&'static str>,
    /// Rooms by index into `ROOMS` (general is not modelled: everyone).
    rooms: HashMap<usize, MRoom>,
    /// The last event id handed out.
    last_id: i64,
}

struct MRoom {
    private: bool,
    members: HashMap<usize, Role>,
}

impl Model {
    fn valid(&self, s: usize) -> bool {
        let s = &self.sessions[s];
        !s.over && (s.socket.is_some() || self.now < s.last_active + TTL)
    }

    fn others(&self, conn: ConnId) -> Vec<ConnId> {
        self.online.iter().copied().filter(|&c| c != conn).collect()
    }

    fn conn(&self, n: u8) -> Option<ConnId> {
        (!self.conns.is_empty()).then(|| ConnId(u64::from(n) % self.conns.len() as u64))
    }

    fn is_open(&self, conn: ConnId) -> bool {
        self.online.contains(&conn)
    }

    /// The pending `leave`s, to the sockets open now.
    fn flush_leaves(&mut self) -> Vec<Event> {
        let online = self.online.clone();
        self.leaving
            .drain(..)
            .map(|name| Event::Deliver(online.clone(), presence("leave", name)))
            .collect()
    }

    /// The open socket of `user`.
    fn socket_of(&self, user: usize) -> Option<ConnId> {
        self.online
            .iter()
            .copied()
            .find(|c| self.conns[c.0 as usize].1 == user)
    }

    /// The open sockets of the members of room `r`, in id order.
    fn room_sockets(&self, r: usize) -> Vec<ConnId> {
        let room = &self.rooms[&r];
        let mut v: Vec<ConnId> = room
            .members
            .keys()
            .filter_map(|&u| self.socket_of(u))
            .collect();
        v.sort();
        v
    }

    /// Room `r` as `user` sees it: `Err` when it does not exist for them.
    fn visible(&self, r: usize, user: usize) -> Result<Option<&MRoom>, RoomError> {
        if r == 0 {
            return Ok(None);
        }
        match self.rooms.get(&r) {
            Some(room) if !room.private || room.members.contains_key(&user) => Ok(Some(room)),
            _ => Err(RoomError::NotFound),
        }
    }

    /// The socket leaves the model; returns its user's name.
    fn drop_socket(&mut self, conn: ConnId) -> &'static str {
        let (s, user) = self.conns[conn.0 as usize];
        self.online.retain(|&c| c != conn);
        self.sessions[s].socket = None;
        self.sessions[s].last_active = self.now;
        USERS[user]
    }
}

fn presence(event: &str, name: &str) -> Value {
    json!({ "event": event, "username": name })
}

fuzz_target!(|ops: Vec<Op>| {
    let cfg = ChatConfig {
        session_ttl: Millis(TTL),
        // Above the 500 operations a run takes: the model has no cap.
        sessions_per_user: 1024,
        max_chars: 300,
        burst: 3,
        rate_per_sec: 1,
        register_limit: LIMIT,
        register_window: Millis(WINDOW),
        login_fail_limit: LIMIT,
        login_window: Millis(WINDOW),
        dedupe_window: Millis(WINDOW),
    };
    let mut chat = Chat::new(cfg, Millis(0), 0);
    for (i, name) in USERS.iter().enumerate() {
        chat.add_user(UserId(i as i64 + 1), name);
    }
    let mut m = Model::default();
    for op in ops.iter().take(500) {
        let mut out = Recorder::default();
        let want = apply(op, &mut chat, &mut m, &mut out);
        assert_eq!(out.0, want, "outbox after {op:?}");
        for event in &out.0 {
            if let Event::Deliver(to, v) = event {
                let mut seen = to.clone();
                seen.sort();
                seen.dedup();
                assert_eq!(seen.len(), to.len(), "twice to one socket: {v}");
                assert!(to.iter().all(|c| m.is_open(*c)), "to a closed socket: {v}");
            }
        }
        assert_eq!(chat.last_id(), m.last_id, "one event sequence");
        chat.check();
        let names: Vec<&str> = chat.online_names().collect();
        let model_names: Vec<&str> = m
            .online
            .iter()
            .map(|c| USERS[m.conns[c.0 as usize].1])
            .collect();
        assert_eq!(names, model_names, "online list");
        for (u, _) in USERS.iter().enumerate() {
            let open = m
                .online
                .iter()
                .filter(|c| m.conns[c.0 as usize].1 == u)
                .count();
            assert!(open <= 1, "two sockets for {}", USERS[u]);
            assert_eq!(chat.is_online(UserId(u as i64 + 1)), open == 1);
        }
    }
});

/// Runs `op` on the chat and the model; returns the outbox events the
/// model expects.
fn apply(op: &Op, chat: &mut Chat, m: &mut Model, out: &mut Recorder) -> Vec<Event> {
    let now = Millis(m.now);
    match *op {
        Op::Login(u) => {
            let user = usize::from(u) % USERS.len();
            let token = format!("Session{:025}", m.sessions.len());
            chat.login(
                SessionKey::of(&token),
                UserId(user as i64 + 1),
                USERS[user],
                now,
            );
            m.sessions.push(MSession {
                token,
                user,
                last_active: m.now,
                over: false,
                socket: None,
            });
            vec![]
        }
        Op::Authenticate(s) => {
            authenticate(chat, m, s);
            vec![]
        }
        Op::AuthenticateNone => {
            assert_eq!(chat.authenticate(None, now), Err(AuthError::Missing));
            assert_eq!(chat.authenticate(Some(""), now), Err(AuthError::Missing));
            vec![]
        }
        Op::Connect(s) => {
            let Some(s) = authenticate(chat, m, s) else {
                return vec![];
            };
            let user = m.sessions[s].user;
            if chat.is_online(UserId(user as i64 + 1)) {
                // The API answers 409 here.
                return vec![];
            }
            let conn = ConnId(m.conns.len() as u64);
            let mut want = m.flush_leaves();
            let others = m.online.clone();
            chat.ws_open(conn, &SessionKey::of(&m.sessions[s].token), now, out);
            m.conns.push((s, user));
            m.online.push(conn);
            m.sessions[s].socket = Some(conn);
            want.push(Event::Deliver(others, presence("join", USERS[user])));
            want
        }
        Op::Text(c, ref text) => {
            let Some(conn) = m.conn(c) else { return vec![] };
            chat.ws_text(conn, &text.frame(), now, out);
            if !m.is_open(conn) {
                return vec![];
            }
            // Accepted or refused is the decoder's and the bucket's call
            // (fuzzed on their own); the shape of the output is checked.
            // Pending `leave`s go out before an accepted message.
            let answer = out.0.iter().find(|e| match e {
                Event::Deliver(_, v) => v.get("event").is_none(),
                Event::Close(..) => true,
            });
            match answer {
                Some(Event::Deliver(_, v)) if v.get("message").is_some() => {
                    let author = USERS[m.conns[conn.0 as usize].1];
                    assert_eq!(v["author"], author);
                    m.last_id += 1;
                    assert_eq!(v["id"], m.last_id);
                    let mut want = m.flush_leaves();
                    want.push(Event::Deliver(recipients(m, conn, v), v.clone()));
                    want.push(Event::Deliver(
                        vec![conn],
                        json!({ "status": true, "id": v["id"] }),
                    ));
                    want
                }
                Some(Event::Deliver(_, v)) => {
                    assert_eq!(v["status"], false);
                    vec![Event::Deliver(vec![conn], v.clone())]
                }
                other => panic!("no answer to a frame: {other:?}"),
            }
        }
        Op::Binary(c) => {
            let Some(conn) = m.conn(c) else { return vec![] };
            chat.ws_binary(conn, now, out);
            if !m.is_open(conn) {
                return vec![];
            }
            let code = match out.0.first() {
                Some(Event::Deliver(_, v)) if v["code"] == "rate_limited" => "rate_limited",
                _ => "binary_not_supported",
            };
            vec![Event::Deliver(
                vec![conn],
                json!({ "status": false, "code": code }),
            )]
        }
        Op::Close(c) => {
            let Some(conn) = m.conn(c) else { return vec![] };
            chat.ws_closed(conn, now);
            if !m.is_open(conn) {
                return vec![];
            }
            let name = m.drop_socket(conn);
            m.leaving.push(name);
            vec![]
        }
        Op::GoingAway(c) => {
            let Some(conn) = m.conn(c) else { return vec![] };
            chat.ws_going_away(conn, now);
            if m.is_open(conn) {
                m.drop_socket(conn);
            }
            vec![]
        }
        Op::Logout(s) => {
            if m.sessions.is_empty() {
                chat.logout("NoSuchSession", out);
                return vec![];
            }
            let s = usize::from(s) % m.sessions.len();
            chat.logout(&m.sessions[s].token.clone(), out);
            m.sessions[s].over = true;
            match m.sessions[s].socket {
                Some(conn) => {
                    let name = m.drop_socket(conn);
                    m.leaving.push(name);
                    vec![Event::Close(conn, 1000)]
                }
                None => vec![],
            }
        }
        Op::EndTurn => {
            chat.flush_leaves(out);
            m.flush_leaves()
        }
        Op::Advance(ms) => {
            m.now += u64::from(ms);
            vec![]
        }
        Op::Timeouts => {
            chat.handle_timeouts(now);
            vec![]
        }
        Op::Record(register, ip) => {
            let limit = if register {
                AddressLimit::Register
            } else {
                AddressLimit::LoginFailure
            };
            chat.record_limit(limit, addr(ip), now);
            m.attempts
                .entry((register, ip % 4))
                .or_default()
                .push(m.now);
            vec![]
        }
        Op::CreateRoom(u, r, private) => {
            let (user, r) = (usize::from(u) % USERS.len(), usize::from(r) % ROOMS.len());
            let got = chat.create_room(UserId(user as i64 + 1), ROOMS[r], private, now, out);
            let exists = r == 0 || m.rooms.contains_key(&r);
            if exists {
                assert_eq!(got.map(|_| ()), Err(RoomError::Exists));
                return vec![];
            }
            let (room, owner) = got.expect("a free name");
            assert_eq!(&*room.name, ROOMS[r]);
            m.last_id += 1;
            assert_eq!(owner.id, m.last_id);
            let members = HashMap::from([(user, Role::Owner)]);
            m.rooms.insert(r, MRoom { private, members });
            {
                let e = member_event(m, "room_join", r, user);
                with_leaves(m, e)
            }
        }
        Op::JoinRoom(u, r) => {
            let (user, r) = (usize::from(u) % USERS.len(), usize::from(r) % ROOMS.len());
            let got = chat.join_room(UserId(user as i64 + 1), ROOMS[r], now, out);
            match m.visible(r, user) {
                Err(e) => assert_eq!(got, Err(e)),
                Ok(None) => assert_eq!(got, Ok(None), "general"),
                Ok(Some(room)) if room.members.contains_key(&user) => assert_eq!(got, Ok(None)),
                Ok(Some(_)) => {
                    m.last_id += 1;
                    assert_eq!(got.unwrap().unwrap().id, m.last_id);
                    let room = m.rooms.get_mut(&r).unwrap();
                    room.members.insert(user, Role::Member);
                    return {
                        let e = member_event(m, "room_join", r, user);
                        with_leaves(m, e)
                    };
                }
            }
            vec![]
        }
        Op::LeaveRoom(u, r) => {
            let (user, r) = (usize::from(u) % USERS.len(), usize::from(r) % ROOMS.len());
            let got = chat.leave_room(UserId(user as i64 + 1), ROOMS[r], now, out);
            match m.visible(r, user) {
                Err(e) => assert_eq!(got, Err(e)),
                Ok(None) => assert_eq!(got, Err(RoomError::CannotLeave)),
                Ok(Some(room)) if !room.members.contains_key(&user) => assert_eq!(got, Ok(None)),
                Ok(Some(_)) => {
                    m.last_id += 1;
                    assert_eq!(got.unwrap().unwrap().id, m.last_id);
                    // Told to the members, the leaver included, then gone.
                    let event = {
                        let e = member_event(m, "room_leave", r, user);
                        with_leaves(m, e)
                    };
                    m.rooms.get_mut(&r).unwrap().members.remove(&user);
                    return event;
                }
            }
            vec![]
        }
        Op::Invite(b, r, u) => {
            let by = usize::from(b) % USERS.len();
            let r = usize::from(r) % ROOMS.len();
            let who = usize::from(u) % (USERS.len() + 1);
            let name = USERS.get(who).copied().unwrap_or("nobody");
            let got = chat.invite(UserId(by as i64 + 1), ROOMS[r], name, now, out);
            let room = match m.visible(r, by) {
                Err(e) => {
                    assert_eq!(got, Err(e));
                    return vec![];
                }
                _ if who == USERS.len() => {
                    assert_eq!(got, Err(RoomError::UserNotFound));
                    return vec![];
                }
                Ok(None) => {
                    assert_eq!(got, Ok(None), "general");
                    return vec![];
                }
                Ok(Some(room)) => room,
            };
            if room.members.contains_key(&who) {
                assert_eq!(got, Ok(None));
                return vec![];
            }
            if !matches!(room.members.get(&by), Some(Role::Owner | Role::Moderator)) {
                assert_eq!(got, Err(RoomError::Forbidden));
                return vec![];
            }
            m.last_id += 1;
            assert_eq!(got.unwrap().unwrap().id, m.last_id);
            m.rooms
                .get_mut(&r)
                .unwrap()
                .members
                .insert(who, Role::Member);
            {
                let e = member_event(m, "room_join", r, who);
                with_leaves(m, e)
            }
        }
        Op::RoomText(c, r) => {
            let Some(conn) = m.conn(c) else { return vec![] };
            let r = usize::from(r) % ROOMS.len();
            let frame = json!({ "message": "hi", "room": ROOMS[r] }).to_string();
            chat.ws_text(conn, &frame, now, out);
            if !m.is_open(conn) {
                return vec![];
            }
            let user = m.conns[conn.0 as usize].1;
            let refused = match m.visible(r, user) {
                Err(_) => Some("room_not_found"),
                Ok(Some(room)) if !room.members.contains_key(&user) => Some("not_a_member"),
                Ok(_) => None,
            };
            answer(m, conn, refused, out)
        }
        Op::Direct(c, u) => {
            let Some(conn) = m.conn(c) else { return vec![] };
            let to = usize::from(u) % (USERS.len() + 1);
            let name = USERS.get(to).copied().unwrap_or("nobody");
            let frame = json!({ "message": "psst", "to": name }).to_string();
            chat.ws_text(conn, &frame, now, out);
            if !m.is_open(conn) {
                return vec![];
            }
            let refused = (to == USERS.len()).then_some("user_not_found");
            answer(m, conn, refused, out)
        }
        Op::Check(register, ip) => {
            let limit = if register {
                AddressLimit::Register
            } else {
                AddressLimit::LoginFailure
            };
            let live: Vec<u64> = m
                .attempts
                .get(&(register, ip % 4))
                .map(|t| t.iter().copied().filter(|t| t + WINDOW > m.now).collect())
                .unwrap_or_default();
            let want = if live.len() < LIMIT as usize {
                Ok(())
            } else {
                // The next attempt is allowed once all but LIMIT - 1 of
                // the live ones have left the window.
                let frees = live[live.len() - LIMIT as usize];
                Err((frees + WINDOW - m.now).div_ceil(1000).max(1))
            };
            assert_eq!(chat.check_limit(limit, addr(ip), now), want);
            vec![]
        }
    }
}

/// Authenticates session `s` (mod the sessions, or an unknown token) and
/// checks the answer against the model; the session's index when valid.
fn authenticate(chat: &mut Chat, m: &mut Model, s: u8) -> Option<usize> {
    let now = Millis(m.now);
    if m.sessions.is_empty() {
        assert_eq!(
            chat.authenticate(Some("NoSuchSession"), now),
            Err(AuthError::Invalid)
        );
        return None;
    }
    let s = usize::from(s) % m.sessions.len();
    let got = chat.authenticate(Some(&m.sessions[s].token), now);
    if !m.valid(s) {
        assert_eq!(got, Err(AuthError::Invalid), "session {s} should be over");
        m.sessions[s].over = true;
        return None;
    }
    let authed = got.unwrap_or_else(|e| panic!("session {s} refused: {e:?}"));
    assert_eq!(authed.user, UserId(m.sessions[s].user as i64 + 1));
    assert_eq!(&*authed.name, USERS[m.sessions[s].user]);
    m.sessions[s].last_active = m.now;
    Some(s)
}

fn addr(ip: u8) -> IpAddr {
    // A few addresses, so that limits are reached.
    IpAddr::from([192, 0, 2, ip % 4])
}

/// The sockets a message frame `v` from `conn` must reach: the others in
/// general, the room's online members, or the two sides of a direct
/// message; never `conn` itself.
fn recipients(m: &Model, conn: ConnId, v: &Value) -> Vec<ConnId> {
    if let Some(room) = v.get("room").and_then(Value::as_str) {
        let r = ROOMS.iter().position(|&n| n == room).expect("a known room");
        assert!(r != 0, "general frames carry no room");
        let author = m.conns[conn.0 as usize].1;
        assert!(
            m.rooms[&r].members.contains_key(&author),
            "a non-member's message"
        );
        return m
            .room_sockets(r)
            .into_iter()
            .filter(|&c| c != conn)
            .collect();
    }
    if let Some(to) = v.get("to").and_then(Value::as_str) {
        let to = USERS.iter().position(|&n| n == to).expect("a known user");
        return m.socket_of(to).into_iter().filter(|&c| c != conn).collect();
    }
    m.others(conn)
}

/// What a well-formed room or direct frame from `conn` gets: an error ack
/// (the model's, or the bucket's `rate_limited`), or the delivery and the
/// ack with the next id.
fn answer(m: &mut Model, conn: ConnId, refused: Option<&str>, out: &Recorder) -> Vec<Event> {
    let nack = |code: &str| Event::Deliver(vec![conn], json!({ "status": false, "code": code }));
    // Pending `leave`s go out before an accepted message.
    let first = out.0.iter().find(|e| match e {
        Event::Deliver(_, v) => v.get("event").is_none(),
        Event::Close(..) => true,
    });
    match first {
        Some(Event::Deliver(_, v)) if v["code"] == "rate_limited" => vec![nack("rate_limited")],
        _ if refused.is_some() => vec![nack(refused.unwrap())],
        Some(Event::Deliver(_, v)) if v.get("message").is_some() => {
            m.last_id += 1;
            assert_eq!(v["id"], m.last_id);
            assert_eq!(v["author"], USERS[m.conns[conn.0 as usize].1]);
            let mut want = m.flush_leaves();
            want.push(Event::Deliver(recipients(m, conn, v), v.clone()));
            want.push(Event::Deliver(
                vec![conn],
                json!({ "status": true, "id": m.last_id }),
            ));
            want
        }
        other => panic!("no delivery for an accepted frame: {other:?}"),
    }
}

/// The pending `leave`s (the chat flushes them before any delivery), then
/// `event`.
fn with_leaves(m: &mut Model, event: Event) -> Vec<Event> {
    let mut want = m.flush_leaves();
    want.push(event);
    want
}

/// A membership event of room `r` about `user`, as sent to the room's
/// online members (the model's members at this point).
fn member_event(m: &Model, event: &str, r: usize, user: usize) -> Event {
    let v = json!({
        "event": event,
        "room": ROOMS[r],
        "username": USERS[user],
        "id": m.last_id,
        "ts": m.now,
    });
    Event::Deliver(m.room_sockets(r), v)
}
