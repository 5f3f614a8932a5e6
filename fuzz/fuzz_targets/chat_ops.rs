//! Operation sequences on the sans-IO chat core with a recording `Outbox`,
//! against a model of sessions and sockets.
//!
//! Invariants, after every operation: at most `SOCKETS` open sockets per
//! user (the API's `--sockets-per-user`); the online list equals the
//! model's users in the order of their oldest open socket; `join` goes out
//! on a user's first socket and `leave` after their last; every `join` (to the sockets open at the time) is matched by exactly one
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
//!
//! Conversation features (SPEC §10, §11): edits, deletions and reactions
//! of the messages sent so far (and of ids that never were) get the
//! model's answer (`not_found` for a deleted message or one in a
//! conversation the sender does not see, `forbidden` for an edit by
//! another or a deletion by a non-moderator), and when accepted the next
//! id and an event of exactly the model's JSON to exactly the
//! conversation's other sockets; reactions toggle; typing notices go to
//! the conversation's other users' sockets at most once until the chat's
//! wheel expires them, with no id; read markers only move forward, never
//! past the newest event, and reach the reader's other sockets; every
//! frame is answered with exactly one ack.
//!
//! Moderation (SPEC §12): bans end every session of the user and close
//! their sockets with 1008, and a banned user logs in no more (the API
//! refuses); mutes, server-wide and per room, turn the user's messages
//! (and edits) into `muted` acks with the mute's end; kicks and room
//! mutes follow the rank rules (owner, moderator, member) with the
//! model's error, and their events take the next id and reach exactly
//! the room's online sockets (the kicked user's too). After every
//! operation: no frame reaches a banned user, no frame of a room reaches
//! a user kicked from it (but their own kick), and no message of a muted
//! user goes out in the scope of the mute.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use piratchat::chat::moderation::ModError;
use piratchat::chat::{
    AddressLimit, AuthError, Chat, ChatConfig, Lookup, Outbox, Role, RoomError, SessionKey, Write,
};
use piratchat::event::{Conversation, EventKind, MessageInfo};
use piratchat::ids::{ConnId, Millis, UserId};
use piratchat::protocol::{ClientOp, decode_client_op};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

const TTL: u64 = 5_000;
const WINDOW: u64 = 10_000;
const LIMIT: u32 = 3;
const USERS: [&str; 3] = ["ann", "ben", "cy"];
/// Room names; the last is never created.
const ROOMS: [&str; 4] = ["general", "r1", "r2", "nope"];
/// Open sockets one user may hold (the API refuses more with 409).
const SOCKETS: usize = 2;
/// The chat's typing interval.
const TYPING: u64 = 3000;
/// Emoji the reactions use.
const EMOJI: [&str; 2] = ["👍", "🎉"];

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
    /// Edits the n-th message sent so far (or an id past them).
    Edit(u8, u8),
    Delete(u8, u8),
    React(u8, u8, bool),
    /// Typing in a conversation: a room of `ROOMS`, or past them a direct
    /// one with `USERS[n - ROOMS.len()]` (or nobody).
    Typing(u8, u8, bool),
    /// A read marker at an id near the newest, in a conversation as for
    /// `Typing` (`with` instead of `to`).
    Read(u8, u8, u8),
    /// An admin bans `USERS[n]`.
    Ban(u8),
    Unban(u8),
    /// A server-wide mute for this many seconds (plus one).
    Mute(u8, u8),
    Unmute(u8),
    /// `USERS[by]` kicks `USERS[who]` (or nobody) from `ROOMS[r]`.
    Kick(u8, u8, u8),
    /// As `Kick`, a room mute for this many seconds (plus one).
    RoomMute(u8, u8, u8, u8),
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
    /// Its open sockets (browser tabs share a session).
    sockets: Vec<ConnId>,
}

/// A message sent so far.
struct MMsg {
    id: i64,
    author: usize,
    /// A room other than general, by index into `ROOMS`.
    room: Option<usize>,
    /// The recipient of a direct message.
    to: Option<usize>,
    deleted: bool,
}

/// The stored messages as the chat's `Lookup` sees them: built from what
/// the chat asked to store, like the server's database.
#[derive(Default)]
struct Db {
    messages: HashMap<i64, MessageInfo>,
    reactions: HashSet<(i64, UserId, String)>,
}

impl Lookup for Db {
    fn message(&mut self, id: i64) -> Option<MessageInfo> {
        self.messages.get(&id).copied()
    }
    fn reacted(&mut self, id: i64, user: UserId, emoji: &str) -> bool {
        self.reactions.contains(&(id, user, emoji.to_string()))
    }
    fn count_after(&mut self, conv: Conversation, id: i64) -> u64 {
        let room = match conv {
            Conversation::Room(r) => Some(r),
            _ => None,
        };
        let after = self
            .messages
            .iter()
            .filter(|(m, i)| **m > id && i.room == room && i.to.is_none());
        after.count() as u64
    }
}

impl Db {
    fn apply(&mut self, w: &Write) {
        match w {
            Write::Message(a) => {
                let info = MessageInfo {
                    author: a.user,
                    room: a.room.map(|r| r.0),
                    to: a.to,
                    deleted: false,
                };
                self.messages.insert(a.id, info);
            }
            Write::Change(c) => match c.kind {
                EventKind::Delete => {
                    if let Some(m) = self.messages.get_mut(&c.target) {
                        m.deleted = true;
                    }
                }
                EventKind::ReactOn => {
                    self.reactions.insert((c.target, c.user, c.text.clone()));
                }
                EventKind::ReactOff => {
                    self.reactions.remove(&(c.target, c.user, c.text.clone()));
                }
                _ => {}
            },
            Write::Read(_) => {}
        }
    }
}

/// A frame through `ws_frame`, its writes applied to `db`.
fn frame(chat: &mut Chat, db: &mut Db, conn: ConnId, text: &str, now: Millis, out: &mut Recorder) {
    if let Some(w) = chat.ws_frame(conn, text, now, db, out) {
        db.apply(&w);
    }
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
    /// Presence since the last flush, in order: (`join` or `leave`, name).
    pending: Vec<(&'static str, &'static str)>,
    /// Sockets opened since the last flush, with how much of `pending`
    /// came before them.
    opened: Vec<(ConnId, usize)>,
    /// Rooms by index into `ROOMS` (general is not modelled: everyone).
    rooms: HashMap<usize, MRoom>,
    /// The last event id handed out.
    last_id: i64,
    /// Every message sent, in id order.
    msgs: Vec<MMsg>,
    /// Reactions on: (message id, user, emoji).
    reactions: HashSet<(i64, usize, &'static str)>,
    /// Typing notices relayed, by (user, conversation key), and when.
    typing: HashMap<(usize, i64), u64>,
    /// Read markers by (user, conversation key).
    reads: HashMap<(usize, i64), i64>,
    banned: HashSet<usize>,
    /// Server-wide mutes: their end.
    muted: HashMap<usize, i64>,
    /// Room mutes by (room, user), general as room 0: their end.
    room_muted: HashMap<(usize, usize), i64>,
    /// Kicked from (room, user) and not invited back.
    kicked: HashSet<(usize, usize)>,
}

struct MRoom {
    private: bool,
    members: HashMap<usize, Role>,
}

impl Model {
    fn valid(&self, s: usize) -> bool {
        let s = &self.sessions[s];
        !s.over && (!s.sockets.is_empty() || self.now < s.last_active + TTL)
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

    /// The pending presence: every frame to the sockets open before the
    /// turn's opens, then to each socket opened since (in id order) the
    /// frames after its own open.
    fn flush_presence(&mut self) -> Vec<Event> {
        let pending = std::mem::take(&mut self.pending);
        let opened = std::mem::take(&mut self.opened);
        if pending.is_empty() {
            return vec![];
        }
        let old: Vec<ConnId> = self
            .online
            .iter()
            .copied()
            .filter(|c| !opened.iter().any(|o| o.0 == *c))
            .collect();
        let frame = |&(event, name): &(&str, &str)| presence(event, name);
        let mut want: Vec<Event> = pending
            .iter()
            .map(|p| Event::Deliver(old.clone(), frame(p)))
            .collect();
        for (conn, seen) in opened {
            if self.is_open(conn) {
                let later = pending[seen..].iter();
                want.extend(later.map(|p| Event::Deliver(vec![conn], frame(p))));
            }
        }
        want
    }

    /// The open sockets of `user`, oldest first.
    fn sockets_of(&self, user: usize) -> Vec<ConnId> {
        self.online
            .iter()
            .copied()
            .filter(|c| self.conns[c.0 as usize].1 == user)
            .collect()
    }

    fn user_of(&self, conn: ConnId) -> usize {
        self.conns[conn.0 as usize].1
    }

    /// The open sockets of the members of room `r`, in id order.
    fn room_sockets(&self, r: usize) -> Vec<ConnId> {
        let room = &self.rooms[&r];
        let mut v: Vec<ConnId> = room
            .members
            .keys()
            .flat_map(|&u| self.sockets_of(u))
            .collect();
        v.sort();
        v
    }

    /// The end of the mute in force for `user`'s message to room `r`
    /// (general is 0; `None`: a direct message, only a server-wide mute).
    fn muted(&self, user: usize, r: Option<usize>) -> Option<i64> {
        let global = self.muted.get(&user).copied();
        let local = r.and_then(|r| self.room_muted.get(&(r, user)).copied());
        global.max(local).filter(|&until| until > self.now as i64)
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

    /// The socket leaves the model; returns its user's name when it was
    /// their last.
    fn drop_socket(&mut self, conn: ConnId) -> Option<&'static str> {
        let (s, user) = self.conns[conn.0 as usize];
        self.online.retain(|&c| c != conn);
        self.sessions[s].sockets.retain(|&c| c != conn);
        self.sessions[s].last_active = self.now;
        self.sockets_of(user).is_empty().then_some(USERS[user])
    }

    /// Records the accepted message frame `v` from `conn`.
    fn record(&mut self, conn: ConnId, v: &Value) {
        let find = |list: &[&str], key: &str| {
            let name = v.get(key)?.as_str()?;
            list.iter().position(|&n| n == name)
        };
        let (room, to) = (find(&ROOMS, "room"), find(&USERS, "to"));
        let author = self.user_of(conn);
        let id = self.last_id;
        self.msgs.push(MMsg {
            id,
            author,
            room,
            to,
            deleted: false,
        });
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
    let mut db = Db::default();
    for op in ops.iter().take(500) {
        let mut out = Recorder::default();
        let want = apply(op, &mut chat, &mut m, &mut db, &mut out);
        assert_eq!(out.0, want, "outbox after {op:?}");
        for event in &out.0 {
            if let Event::Deliver(to, v) = event {
                let mut seen = to.clone();
                seen.sort();
                seen.dedup();
                assert_eq!(seen.len(), to.len(), "twice to one socket: {v}");
                assert!(to.iter().all(|c| m.is_open(*c)), "to a closed socket: {v}");
                moderation_invariants(&m, to, v);
            }
        }
        assert_eq!(chat.last_id(), m.last_id, "one event sequence");
        chat.check();
        let names: Vec<&str> = chat.online_names().collect();
        let mut model_names: Vec<&str> = Vec::new();
        for c in &m.online {
            let name = USERS[m.conns[c.0 as usize].1];
            if !model_names.contains(&name) {
                model_names.push(name);
            }
        }
        assert_eq!(names, model_names, "online list");
        for (u, _) in USERS.iter().enumerate() {
            let open = m
                .online
                .iter()
                .filter(|c| m.conns[c.0 as usize].1 == u)
                .count();
            assert!(open <= SOCKETS, "too many sockets for {}", USERS[u]);
            assert_eq!(chat.is_online(UserId(u as i64 + 1)), open > 0);
            assert_eq!(chat.sockets_of(UserId(u as i64 + 1)).len(), open);
        }
    }
});

/// Runs `op` on the chat and the model; returns the outbox events the
/// model expects.
fn apply(op: &Op, chat: &mut Chat, m: &mut Model, db: &mut Db, out: &mut Recorder) -> Vec<Event> {
    let now = Millis(m.now);
    match *op {
        Op::Login(u) => {
            let user = usize::from(u) % USERS.len();
            if m.banned.contains(&user) {
                // The API answers 403 `banned`.
                return vec![];
            }
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
                sockets: Vec::new(),
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
            if chat.sockets_of(UserId(user as i64 + 1)).len() >= SOCKETS {
                // The API answers 409 here.
                return vec![];
            }
            let conn = ConnId(m.conns.len() as u64);
            let first = m.sockets_of(user).is_empty();
            chat.ws_open(conn, &SessionKey::of(&m.sessions[s].token), now);
            m.conns.push((s, user));
            m.online.push(conn);
            m.sessions[s].sockets.push(conn);
            // The join goes out with the turn's other presence.
            if first {
                m.pending.push(("join", USERS[user]));
            }
            m.opened.push((conn, m.pending.len()));
            vec![]
        }
        Op::Text(c, ref text) => {
            let Some(conn) = m.conn(c) else { return vec![] };
            let text = text.frame();
            if decode_client_op(&text, 300).is_ok_and(|op| !matches!(op, ClientOp::Message(_))) {
                // The other kinds have ops of their own.
                return vec![];
            }
            frame(chat, db, conn, &text, now, out);
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
                    m.record(conn, v);
                    let mut want = m.flush_presence();
                    want.push(Event::Deliver(recipients(m, conn, v), v.clone()));
                    want.push(Event::Deliver(
                        vec![conn],
                        json!({ "status": true, "id": v["id"] }),
                    ));
                    want
                }
                Some(Event::Deliver(_, v)) => {
                    assert_eq!(v["status"], false);
                    if v["code"] == "muted" {
                        // Raw frames may name a room or a user: the mute
                        // in force is then at least the server-wide one
                        // or that room's.
                        let user = m.user_of(conn);
                        let any = [None, Some(0), Some(1), Some(2)]
                            .iter()
                            .any(|&r| m.muted(user, r) == v["until"].as_i64());
                        assert!(any, "a muted ack without a mute: {v}");
                    }
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
            let gone = m.drop_socket(conn);
            m.pending.extend(gone.map(|name| ("leave", name)));
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
            let mut want = Vec::new();
            for conn in m.sessions[s].sockets.clone() {
                let gone = m.drop_socket(conn);
                m.pending.extend(gone.map(|name| ("leave", name)));
                want.push(Event::Close(conn, 1000));
            }
            want
        }
        Op::EndTurn => {
            chat.flush_presence(out);
            m.flush_presence()
        }
        Op::Advance(ms) => {
            m.now += u64::from(ms);
            vec![]
        }
        Op::Timeouts => {
            chat.handle_timeouts(now);
            m.typing.retain(|_, at| *at + TYPING > m.now);
            vec![]
        }
        Op::Edit(c, t) => change(chat, m, db, out, c, ChangeKind::Edit, t),
        Op::Delete(c, t) => change(chat, m, db, out, c, ChangeKind::Delete, t),
        Op::React(c, t, e) => change(
            chat,
            m,
            db,
            out,
            c,
            ChangeKind::React(EMOJI[usize::from(e)]),
            t,
        ),
        Op::Typing(c, conv, on) => typing(chat, m, db, out, c, conv, on),
        Op::Read(c, conv, back) => read(chat, m, db, out, c, conv, back),
        Op::Ban(u) => ban(chat, m, out, usize::from(u) % USERS.len()),
        Op::Unban(u) => {
            let user = usize::from(u) % USERS.len();
            let was = m.banned.remove(&user);
            assert_eq!(chat.unban(UserId(user as i64 + 1)), was);
            vec![]
        }
        Op::Mute(u, secs) => {
            let user = usize::from(u) % USERS.len();
            let until = m.now as i64 + (i64::from(secs) + 1) * 1000;
            chat.mute(UserId(user as i64 + 1), until);
            m.muted.insert(user, until);
            vec![]
        }
        Op::Unmute(u) => {
            let user = usize::from(u) % USERS.len();
            let was = m.muted.remove(&user).is_some_and(|t| t > m.now as i64);
            assert_eq!(chat.unmute(UserId(user as i64 + 1), now), was);
            vec![]
        }
        Op::Kick(b, r, w) => room_action(chat, m, out, (b, r, w), None),
        Op::RoomMute(b, r, w, secs) => room_action(chat, m, out, (b, r, w), Some(secs)),
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
                // A joiner's read marker starts at the join.
                m.reads.insert((user, r as i64), m.last_id);
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
                Ok(Some(_)) if m.kicked.contains(&(r, user)) => {
                    assert_eq!(got, Err(RoomError::Kicked))
                }
                Ok(Some(_)) => {
                    m.last_id += 1;
                    assert_eq!(got.unwrap().unwrap().id, m.last_id);
                    let room = m.rooms.get_mut(&r).unwrap();
                    room.members.insert(user, Role::Member);
                    return {
                        // A joiner's read marker starts at the join.
                        m.reads.insert((user, r as i64), m.last_id);
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
                // A private room's owner stays: nobody else could let anyone in.
                Ok(Some(room)) if room.private && room.members[&user] == Role::Owner => {
                    assert_eq!(got, Err(RoomError::CannotLeave))
                }
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
            m.kicked.remove(&(r, who));
            m.rooms
                .get_mut(&r)
                .unwrap()
                .members
                .insert(who, Role::Member);
            {
                m.reads.insert((who, r as i64), m.last_id);
                let e = member_event(m, "room_join", r, who);
                with_leaves(m, e)
            }
        }
        Op::RoomText(c, r) => {
            let Some(conn) = m.conn(c) else { return vec![] };
            let r = usize::from(r) % ROOMS.len();
            let frame_text = json!({ "message": "hi", "room": ROOMS[r] }).to_string();
            frame(chat, db, conn, &frame_text, now, out);
            if !m.is_open(conn) {
                return vec![];
            }
            let user = m.conns[conn.0 as usize].1;
            let refused = match m.visible(r, user) {
                Err(_) => Some("room_not_found"),
                Ok(Some(room)) if !room.members.contains_key(&user) => Some("not_a_member"),
                Ok(_) => None,
            };
            let muted = m.muted(user, Some(r));
            answer(m, conn, refused, muted, out)
        }
        Op::Direct(c, u) => {
            let Some(conn) = m.conn(c) else { return vec![] };
            let to = usize::from(u) % (USERS.len() + 1);
            let name = USERS.get(to).copied().unwrap_or("nobody");
            let frame_text = json!({ "message": "psst", "to": name }).to_string();
            frame(chat, db, conn, &frame_text, now, out);
            if !m.is_open(conn) {
                return vec![];
            }
            let refused = (to == USERS.len()).then_some("user_not_found");
            let muted = m.muted(m.user_of(conn), None);
            answer(m, conn, refused, muted, out)
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
        // The recipient's sockets, then the sender's others.
        let author = m.user_of(conn);
        let mut all = m.sockets_of(to);
        if to != author {
            all.extend(m.sockets_of(author));
        }
        return all.into_iter().filter(|&c| c != conn).collect();
    }
    m.others(conn)
}

/// What a well-formed room or direct frame from `conn` gets: an error ack
/// (the model's, or the bucket's `rate_limited`), or the delivery and the
/// ack with the next id.
fn answer(
    m: &mut Model,
    conn: ConnId,
    refused: Option<&str>,
    muted: Option<i64>,
    out: &Recorder,
) -> Vec<Event> {
    let nack = |code: &str| Event::Deliver(vec![conn], json!({ "status": false, "code": code }));
    // Pending `leave`s go out before an accepted message.
    let first = out.0.iter().find(|e| match e {
        Event::Deliver(_, v) => v.get("event").is_none(),
        Event::Close(..) => true,
    });
    match first {
        Some(Event::Deliver(_, v)) if v["code"] == "rate_limited" => vec![nack("rate_limited")],
        _ if refused.is_some() => vec![nack(refused.unwrap())],
        _ if muted.is_some() => vec![Event::Deliver(
            vec![conn],
            json!({ "status": false, "code": "muted", "until": muted }),
        )],
        Some(Event::Deliver(_, v)) if v.get("message").is_some() => {
            m.last_id += 1;
            assert_eq!(v["id"], m.last_id);
            assert_eq!(v["author"], USERS[m.conns[conn.0 as usize].1]);
            m.record(conn, v);
            let mut want = m.flush_presence();
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
    let mut want = m.flush_presence();
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

/// What an edit, deletion or reaction frame does.
#[derive(Debug, Clone, Copy)]
enum ChangeKind {
    Edit,
    Delete,
    React(&'static str),
}

fn ack_ok(conn: ConnId, id: i64) -> Event {
    Event::Deliver(vec![conn], json!({ "status": true, "id": id }))
}

fn ack_done(conn: ConnId) -> Event {
    Event::Deliver(vec![conn], json!({ "status": true }))
}

fn nack(conn: ConnId, code: &str) -> Vec<Event> {
    vec![Event::Deliver(
        vec![conn],
        json!({ "status": false, "code": code }),
    )]
}

/// The bucket refused the frame (nothing else happens then).
fn limited(out: &Recorder) -> bool {
    matches!(out.0.first(), Some(Event::Deliver(_, v)) if v["code"] == "rate_limited")
}

/// An edit, deletion or reaction from socket `c` of the `t`-th message
/// sent so far (or of an id that never was).
fn change(
    chat: &mut Chat,
    m: &mut Model,
    db: &mut Db,
    out: &mut Recorder,
    c: u8,
    kind: ChangeKind,
    t: u8,
) -> Vec<Event> {
    let Some(conn) = m.conn(c) else { return vec![] };
    let n = usize::from(t) % (m.msgs.len() + 1);
    let target = m.msgs.get(n).map_or(m.last_id + 1000, |msg| msg.id);
    let text = match kind {
        ChangeKind::Edit => json!({ "edit": target, "message": "ed" }),
        ChangeKind::Delete => json!({ "delete": target }),
        ChangeKind::React(e) => json!({ "react": target, "emoji": e }),
    };
    frame(chat, db, conn, &text.to_string(), Millis(m.now), out);
    if !m.is_open(conn) {
        return vec![];
    }
    if limited(out) {
        return nack(conn, "rate_limited");
    }
    let user = m.user_of(conn);
    let Some(msg) = m.msgs.get(n) else {
        return nack(conn, "not_found");
    };
    let (author, room, to) = (msg.author, msg.room, msg.to);
    let sees = match (room, to) {
        (Some(r), _) => m.rooms[&r].members.contains_key(&user),
        (None, Some(to)) => user == author || user == to,
        (None, None) => true,
    };
    if msg.deleted || !sees {
        return nack(conn, "not_found");
    }
    let moderates = room.is_some_and(|r| {
        matches!(
            m.rooms[&r].members.get(&user),
            Some(Role::Owner | Role::Moderator)
        )
    });
    let allowed = match kind {
        ChangeKind::Edit => author == user,
        ChangeKind::Delete => author == user || moderates,
        ChangeKind::React(_) => true,
    };
    if !allowed {
        return nack(conn, "forbidden");
    }
    if let (ChangeKind::Edit, Some(until)) = (kind, m.muted(user, None)) {
        let ack = json!({ "status": false, "code": "muted", "until": until });
        return vec![Event::Deliver(vec![conn], ack)];
    }
    m.last_id += 1;
    let id = m.last_id;
    let mut event = match kind {
        ChangeKind::Edit => {
            json!({"event": "edit", "target": target, "message": "ed", "author": USERS[user]})
        }
        ChangeKind::Delete => {
            m.msgs[n].deleted = true;
            json!({"event": "delete", "target": target, "by": USERS[user]})
        }
        ChangeKind::React(e) => {
            let on = m.reactions.insert((target, user, e));
            if !on {
                m.reactions.remove(&(target, user, e));
            }
            json!({"event": "react", "target": target, "emoji": e, "username": USERS[user], "on": on})
        }
    };
    event["id"] = json!(id);
    event["ts"] = json!(m.now);
    // Room events name the room; direct ones the other side, from the
    // actor's point of view.
    let recipients: Vec<ConnId> = match (room, to) {
        (Some(r), _) => {
            event["room"] = json!(ROOMS[r]);
            m.room_sockets(r)
        }
        (None, Some(to)) => {
            let other = if user == author { to } else { author };
            event["to"] = json!(USERS[other]);
            let mut all = m.sockets_of(author);
            if to != author {
                all.extend(m.sockets_of(to));
            }
            all
        }
        (None, None) => m.online.clone(),
    };
    let recipients = recipients.into_iter().filter(|&c| c != conn).collect();
    let mut want = m.flush_presence();
    want.push(Event::Deliver(recipients, event));
    want.push(ack_ok(conn, id));
    want
}

/// The conversation `conv` names for `user`: the frame's field, the
/// model's key and the error ack, if any.
#[derive(Debug)]
enum MConv {
    Room(usize),
    Direct(usize),
    Nobody,
}

fn conversation(conv: u8) -> MConv {
    let n = usize::from(conv) % (ROOMS.len() + USERS.len() + 1);
    match n.checked_sub(ROOMS.len()) {
        None => MConv::Room(n),
        Some(k) if k < USERS.len() => MConv::Direct(k),
        Some(_) => MConv::Nobody,
    }
}

/// The frame `base` aimed at `conv` (`other`: `to` or `with`), and the
/// model's refusal of it for `user`, if any.
fn aim(
    m: &Model,
    user: usize,
    base: Value,
    conv: &MConv,
    other: &str,
) -> (Value, Option<&'static str>) {
    let mut frame = base;
    let refused = match *conv {
        MConv::Room(0) => None,
        MConv::Room(r) => {
            frame["room"] = json!(ROOMS[r]);
            match m.visible(r, user) {
                Err(_) => Some("room_not_found"),
                Ok(Some(room)) if !room.members.contains_key(&user) => Some("not_a_member"),
                Ok(_) => None,
            }
        }
        MConv::Direct(k) => {
            frame[other] = json!(USERS[k]);
            None
        }
        MConv::Nobody => {
            frame[other] = json!("nobody");
            Some("user_not_found")
        }
    };
    (frame, refused)
}

/// The model's key of a conversation (general, a room, or the other side
/// of a direct one).
fn key(conv: &MConv) -> i64 {
    match *conv {
        MConv::Room(r) => r as i64,
        MConv::Direct(k) => -(k as i64) - 1,
        MConv::Nobody => unreachable!("refused"),
    }
}

fn typing(
    chat: &mut Chat,
    m: &mut Model,
    db: &mut Db,
    out: &mut Recorder,
    c: u8,
    conv: u8,
    on: bool,
) -> Vec<Event> {
    let Some(conn) = m.conn(c) else { return vec![] };
    let user = m.user_of(conn);
    let conv = conversation(conv);
    let (text, refused) = aim(m, user, json!({ "typing": on }), &conv, "to");
    frame(chat, db, conn, &text.to_string(), Millis(m.now), out);
    if !m.is_open(conn) {
        return vec![];
    }
    if limited(out) {
        return nack(conn, "rate_limited");
    }
    if let Some(code) = refused {
        return nack(conn, code);
    }
    let k = (user, key(&conv));
    if !on || m.typing.contains_key(&k) {
        return vec![ack_done(conn)];
    }
    m.typing.insert(k, m.now);
    let mut want = m.flush_presence();
    let mine = m.sockets_of(user);
    let mut notice = json!({ "event": "typing", "username": USERS[user] });
    let to = match conv {
        MConv::Room(0) => Some(m.online.clone()),
        MConv::Room(r) => {
            notice["room"] = json!(ROOMS[r]);
            Some(m.room_sockets(r))
        }
        MConv::Direct(k) if k != user => {
            notice["to"] = json!(USERS[k]);
            Some(m.sockets_of(k))
        }
        _ => None,
    };
    if let Some(to) = to {
        let others = to.into_iter().filter(|c| !mine.contains(c)).collect();
        want.push(Event::Deliver(others, notice));
    }
    want.push(ack_done(conn));
    want
}

fn read(
    chat: &mut Chat,
    m: &mut Model,
    db: &mut Db,
    out: &mut Recorder,
    c: u8,
    conv: u8,
    back: u8,
) -> Vec<Event> {
    let Some(conn) = m.conn(c) else { return vec![] };
    let user = m.user_of(conn);
    let conv = conversation(conv);
    // Around the newest event, a little past it too.
    let id = (m.last_id + 2 - i64::from(back % 8)).max(0);
    let (text, refused) = aim(m, user, json!({ "read": id }), &conv, "with");
    frame(chat, db, conn, &text.to_string(), Millis(m.now), out);
    if !m.is_open(conn) {
        return vec![];
    }
    if limited(out) {
        return nack(conn, "rate_limited");
    }
    if let Some(code) = refused {
        return nack(conn, code);
    }
    let id = id.min(m.last_id);
    let k = (user, key(&conv));
    if id <= m.reads.get(&k).copied().unwrap_or(0) {
        return vec![ack_done(conn)];
    }
    m.reads.insert(k, id);
    let mut event = json!({ "event": "read", "id": id });
    match conv {
        MConv::Room(r) if r != 0 => event["room"] = json!(ROOMS[r]),
        MConv::Direct(k) => event["with"] = json!(USERS[k]),
        _ => {}
    }
    let mut want = m.flush_presence();
    let others = m
        .sockets_of(user)
        .into_iter()
        .filter(|&c| c != conn)
        .collect();
    want.push(Event::Deliver(others, event));
    want.push(ack_done(conn));
    want
}

/// The moderation invariants of one delivery of `v` to `to` (see the
/// module doc).
fn moderation_invariants(m: &Model, to: &[ConnId], v: &Value) {
    for &c in to {
        let user = m.user_of(c);
        assert!(!m.banned.contains(&user), "to banned {}: {v}", USERS[user]);
        let room = v.get("room").and_then(Value::as_str);
        if let Some(r) = room.and_then(|n| ROOMS.iter().position(|&x| x == n)) {
            let own_kick = v["event"] == "kick" && v["username"] == USERS[user];
            assert!(
                !m.kicked.contains(&(r, user)) || own_kick,
                "room {} to kicked {}: {v}",
                ROOMS[r],
                USERS[user]
            );
        }
    }
    let is_message =
        v.get("message").is_some() && v.get("author").is_some() && v.get("event").is_none();
    if is_message {
        let author = USERS
            .iter()
            .position(|&n| n == v["author"])
            .expect("a user");
        let scope = match v.get("room").and_then(Value::as_str) {
            Some(r) => ROOMS.iter().position(|&x| x == r),
            None if v.get("to").is_some() => None,
            None => Some(0),
        };
        assert_eq!(
            m.muted(author, scope),
            None,
            "a muted user's message went out: {v}"
        );
    }
}

/// An admin bans `user`: every session ends, every socket closes with
/// 1008 (in session order, then socket order), and the `leave` waits for
/// the end of the turn.
fn ban(chat: &mut Chat, m: &mut Model, out: &mut Recorder, user: usize) -> Vec<Event> {
    let fresh = m.banned.insert(user);
    assert_eq!(chat.ban(UserId(user as i64 + 1), out), fresh);
    let mut want = Vec::new();
    for s in 0..m.sessions.len() {
        if m.sessions[s].user != user || m.sessions[s].over {
            continue;
        }
        m.sessions[s].over = true;
        for conn in m.sessions[s].sockets.clone() {
            let gone = m.drop_socket(conn);
            m.pending.extend(gone.map(|name| ("leave", name)));
            want.push(Event::Close(conn, 1008));
        }
    }
    want
}

/// A kick (`secs: None`) or a room mute by `USERS[by]` of `USERS[who]`
/// (or nobody) in `ROOMS[r]`, against the model's rank rules.
fn room_action(
    chat: &mut Chat,
    m: &mut Model,
    out: &mut Recorder,
    (b, r, w): (u8, u8, u8),
    secs: Option<u8>,
) -> Vec<Event> {
    let by = usize::from(b) % USERS.len();
    let r = usize::from(r) % ROOMS.len();
    let who = usize::from(w) % (USERS.len() + 1);
    let name = USERS.get(who).copied().unwrap_or("nobody");
    let now = Millis(m.now);
    let by_id = UserId(by as i64 + 1);
    let got = match secs {
        None => chat.kick(by_id, ROOMS[r], name, "", now, out),
        Some(s) => {
            let ms = (i64::from(s) + 1) * 1000;
            chat.room_mute(by_id, ROOMS[r], name, ms, "", now, out)
        }
    };
    let want_err = |e: ModError| -> Option<ModError> { Some(e) };
    let rank = |u: usize| -> Option<Role> {
        if r == 0 {
            Some(Role::Member)
        } else {
            m.rooms[&r].members.get(&u).copied()
        }
    };
    let refused = match m.visible(r, by) {
        Err(e) => want_err(ModError::Room(e)),
        Ok(_) if !matches!(rank(by), Some(Role::Owner | Role::Moderator)) => {
            want_err(ModError::Room(RoomError::Forbidden))
        }
        Ok(_) if who == USERS.len() => want_err(ModError::Room(RoomError::UserNotFound)),
        Ok(_) => match rank(who) {
            None => want_err(ModError::NotAMember),
            Some(theirs) => {
                let outranked = match theirs {
                    Role::Owner => r != 0,
                    Role::Moderator => rank(by) != Some(Role::Owner),
                    Role::Member => false,
                };
                if who == by || outranked {
                    want_err(ModError::Room(RoomError::Forbidden))
                } else if r == 0 && secs.is_none() {
                    want_err(ModError::CannotKick)
                } else {
                    None
                }
            }
        },
    };
    if let Some(e) = refused {
        assert_eq!(got.map(|a| a.id), Err(e), "{by} {r} {who} {secs:?}");
        return vec![];
    }
    let action = got.expect("allowed");
    m.last_id += 1;
    assert_eq!(action.id, m.last_id);
    let mut v = json!({
        "event": if secs.is_none() { "kick" } else { "mute" },
        "room": ROOMS[r],
        "username": USERS[who],
        "by": USERS[by],
        "reason": "",
        "id": m.last_id,
        "ts": m.now,
    });
    let to = if r == 0 {
        m.online.clone()
    } else {
        m.room_sockets(r)
    };
    if let Some(s) = secs {
        let until = m.now as i64 + (i64::from(s) + 1) * 1000;
        v["until"] = json!(until);
        m.room_muted.insert((r, who), until);
    } else {
        m.rooms.get_mut(&r).unwrap().members.remove(&who);
        m.kicked.insert((r, who));
    }
    with_leaves(m, Event::Deliver(to, v))
}
