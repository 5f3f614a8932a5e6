//! The chat itself, sans-IO: sessions and their sliding expiry, who is
//! online, join and leave, message ids, broadcasts and acks, duplicate
//! suppression, and the rate limits.
//!
//! Inputs are `handle`-style calls that take `now`; outputs go to an
//! [`Outbox`] the caller provides (the server queues them on its sockets, a
//! test records them); an accepted message comes back to the caller, who
//! stores it before handling anything else. Nothing here reads a clock or
//! touches a socket, so every rule is testable and fuzzable on its own.

mod bearer;
pub mod conversation;
mod directory;
mod history;
pub mod limits;
mod messages;
pub mod moderation;
pub mod online;
mod outbox;
mod post;
pub mod rooms;
mod search;
mod sessions;
mod streams;

use crate::protocol::{AckError, ServerFrame};

use crate::ids::{ConnId, Millis, UserId};
use crate::wheel::Wheel;
pub use conversation::{Accepted, Change, Lookup, NoHistory, ReadMarker, Write};
pub use history::{Paged, found_on_wire};
use limits::{AddressLimiter, TokenBucket};
use online::Ordered;
pub use outbox::Outbox;
pub use post::Posted;
pub use rooms::{GENERAL, MemberInfo, Membership, NewRoom, Role, RoomError, RoomId, RoomInfo};
pub use sessions::{AuthError, Authed, SessionJournal, SessionKey};
use sessions::{Due, Session};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::rc::Rc;

/// The settings the chat rules need.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// Idle time after which a session ends.
    pub session_ttl: Millis,
    /// Live sessions per user; a login past it ends the least recently
    /// used idle one.
    pub sessions_per_user: usize,
    /// Longest message in Unicode scalar values.
    pub max_chars: usize,
    /// Messages one connection may send in a burst (0: no limit).
    pub burst: u32,
    /// Messages per second one connection may sustain.
    pub rate_per_sec: u32,
    /// Registrations per address per window (0: no limit).
    pub register_limit: u32,
    /// Window of the registration limit.
    pub register_window: Millis,
    /// Failed logins per address per window (0: no limit).
    pub login_fail_limit: u32,
    /// Window of the failed-login limit.
    pub login_window: Millis,
    /// How long a `client_id` is remembered for duplicate suppression.
    pub dedupe_window: Millis,
}

impl ChatConfig {
    /// The chat's part of the server's settings.
    pub fn from_config(cfg: &crate::config::Config) -> ChatConfig {
        ChatConfig {
            session_ttl: Millis::of(cfg.session_ttl),
            sessions_per_user: cfg.sessions_per_user,
            max_chars: cfg.max_message_chars,
            burst: cfg.chat_burst,
            rate_per_sec: cfg.chat_rate_per_sec,
            register_limit: cfg.register_limit,
            register_window: Millis::of(cfg.register_window),
            login_fail_limit: cfg.login_fail_limit,
            login_window: Millis::of(cfg.login_window),
            dedupe_window: Millis::of(cfg.dedupe_window),
        }
    }
}

/// The per-address limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressLimit {
    /// Every `POST /api/register`.
    Register,
    /// Every login that fails with 401.
    LoginFailure,
}

/// Counters the chat keeps for `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct ChatStats {
    /// Text and binary frames received on chat sockets.
    pub messages_received: u64,
    /// Chat messages queued to recipients (one per recipient).
    pub messages_delivered: u64,
    /// `{"status": true}` acks sent.
    pub acks_ok: u64,
    /// Error acks sent, indexed like [`AckError::ALL`].
    pub acks_err: [u64; AckError::ALL.len()],
    /// Sessions ended by the per-user cap.
    pub sessions_evicted: u64,
}

/// Presence not delivered yet (see [`Chat::flush_presence`]).
#[derive(Debug, Default)]
struct Presence {
    /// The `join` and `leave` frames, in order.
    frames: Vec<Vec<u8>>,
    /// Sockets opened since, each with how many of `frames` came before
    /// it (and are not for it).
    opened: Vec<(ConnId, usize)>,
}

#[derive(Debug)]
struct Socket {
    key: SessionKey,
    user: UserId,
    name: Rc<str>,
    bucket: TokenBucket,
    /// Position in `Chat::online`.
    pos: usize,
}

/// The chat state. See the module doc.
#[derive(Debug)]
pub struct Chat {
    cfg: ChatConfig,
    sessions: HashMap<SessionKey, Session>,
    /// Each user's live sessions, for the per-user cap. At most
    /// `sessions_per_user` (plus sessions with an open socket) per user,
    /// so scanning one list at login is cheap.
    user_sessions: HashMap<UserId, Vec<SessionKey>>,
    sockets: HashMap<ConnId, Socket>,
    /// Each online user's open sockets, oldest first (at most
    /// `--sockets-per-user`, checked by the upgrade).
    user_sockets: HashMap<UserId, Vec<ConnId>>,
    online: Ordered<ConnId>,
    wheel: Wheel<Due>,
    fired: Vec<Due>,
    register_limiter: AddressLimiter,
    login_limiter: AddressLimiter,
    /// Session changes the server has not stored yet.
    journal: SessionJournal,
    /// Counts session uses (see `Session::used`).
    uses: std::ops::RangeFrom<u64>,
    /// Add to a `Millis` to get Unix milliseconds.
    unix_offset: i64,
    last_id: i64,
    /// The largest message id known to be stored: ids above it were handed
    /// out in the current turn and wait for its commit.
    stored_id: i64,
    /// The newest message's time: times never go back, even when the wall
    /// clock does between runs, so ids and times rise together (the store
    /// relies on it to find messages by time along the ids).
    last_ts: i64,
    /// Recent `client_id`s of each user and the id they were stored under.
    recent: HashMap<(UserId, Box<str>), i64>,
    /// The presence frames (`join`, `leave`) since the last
    /// [`Chat::flush_presence`], in order, and the sockets opened since.
    presence: Presence,
    /// Sockets sent a success ack for a message of this turn. The acks are
    /// queued at once, in frame order, but reach the socket only after the
    /// turn's commit; if the commit fails, these sockets are dropped with
    /// their output.
    unconfirmed: Vec<ConnId>,
    /// Every user's name.
    directory: directory::Directory,
    /// The rate limit of messages posted over HTTP, per user (a socket's
    /// is its own); one entry per user who ever posted that way.
    http_buckets: HashMap<UserId, TokenBucket>,
    /// Rooms, members, and the members' open sockets.
    rooms: rooms::Rooms,
    /// Open event streams, by user and by room.
    streams: streams::Streams,
    /// The newest event of general (kept apart: general's path is the
    /// hot one and needs no room lookup).
    general_last_id: i64,
    /// Messages in general (for unread counts; other rooms count their
    /// own).
    general_count: u64,
    /// Users and conversations with a typing notice relayed in the last
    /// [`conversation::TYPING_INTERVAL`] (live only).
    typing: HashSet<(UserId, i64)>,
    /// Read markers by user and conversation key.
    reads: HashMap<(UserId, i64), rooms::Marker>,
    /// When each user was last online, Unix milliseconds.
    last_seen: HashMap<UserId, i64>,
    /// Admins, bans, mutes and kicks (see [`moderation`]).
    moderation: moderation::Moderation,
    /// Users gone offline since the server last stored them.
    seen_journal: Vec<(UserId, i64)>,
    /// The latest `now` the chat was given (the time of a logout, which
    /// comes without one).
    clock: Millis,
    /// Counters for `/metrics`.
    pub stats: ChatStats,
}

impl Chat {
    /// An empty chat at time `now`; `unix_offset` turns a `Millis` into
    /// Unix milliseconds (message timestamps).
    pub fn new(cfg: ChatConfig, now: Millis, unix_offset: i64) -> Chat {
        Chat {
            // Registrations are what a walked /48 would farm, so that table
            // aggregates IPv6 under pressure. Failed logins do not: a valid
            // key must never meet a neighbour's 429, and guessing a 256-bit
            // key gains nothing from more addresses.
            register_limiter: AddressLimiter::new(cfg.register_limit, cfg.register_window)
                .aggregating(),
            login_limiter: AddressLimiter::new(cfg.login_fail_limit, cfg.login_window),
            cfg,
            sessions: HashMap::new(),
            user_sessions: HashMap::new(),
            sockets: HashMap::new(),
            user_sockets: HashMap::new(),
            online: Ordered::new(),
            wheel: Wheel::new(now),
            fired: Vec::new(),
            journal: SessionJournal::default(),
            uses: 0..,
            unix_offset,
            last_id: 0,
            stored_id: 0,
            last_ts: i64::MIN,
            recent: HashMap::new(),
            presence: Presence::default(),
            unconfirmed: Vec::new(),
            directory: directory::Directory::default(),
            http_buckets: HashMap::new(),
            rooms: rooms::Rooms::new(),
            streams: streams::Streams::default(),
            general_last_id: 0,
            general_count: 0,
            typing: HashSet::new(),
            reads: HashMap::new(),
            last_seen: HashMap::new(),
            moderation: moderation::Moderation::default(),
            seen_journal: Vec::new(),
            clock: now,
            stats: ChatStats::default(),
        }
    }

    /// Whether `user` has an open chat socket.
    pub fn is_online(&self, user: UserId) -> bool {
        self.user_sockets.contains_key(&user)
    }

    /// The open chat sockets of `user`, oldest first.
    pub fn sockets_of(&self, user: UserId) -> &[ConnId] {
        self.user_sockets.get(&user).map_or(&[], Vec::as_slice)
    }

    /// The names of the users with an open socket, in connection order,
    /// each once (at the place of their oldest open socket).
    pub fn online_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.online.iter().filter_map(|c| {
            let sock = &self.sockets[&c];
            (self.sockets_of(sock.user).first() == Some(&c)).then_some(&*sock.name)
        })
    }

    /// Registers the upgraded socket `conn` of the session `key` and, when
    /// it is the user's first, tells every other socket `join` (at the
    /// next [`Chat::flush_presence`]). The caller
    /// has authenticated the session and checked the user's socket count
    /// against `--sockets-per-user` in this same loop turn.
    pub fn ws_open(&mut self, conn: ConnId, key: &SessionKey, now: Millis) {
        let Some(session) = self.sessions.get_mut(key) else {
            debug_assert!(false, "ws_open for an unknown session");
            return;
        };
        session.sockets.push(conn);
        let (user, name) = (session.user, session.name.clone());
        let sockets = &mut self.sockets;
        let pos = self.online.push(conn, |c, p| {
            if let Some(s) = sockets.get_mut(&c) {
                s.pos = p;
            }
        });
        if !self.user_sockets.contains_key(&user) {
            self.presence.frames.push(
                ServerFrame::Presence {
                    event: "join",
                    username: &name,
                }
                .to_json(),
            );
        }
        // Whatever presence came before (its own join, a `leave` of the
        // same user reconnecting) is not news to this socket.
        self.presence
            .opened
            .push((conn, self.presence.frames.len()));
        let bucket = TokenBucket::full(self.cfg.burst, now);
        self.sockets.insert(
            conn,
            Socket {
                key: key.clone(),
                user,
                name,
                bucket,
                pos,
            },
        );
        self.user_sockets.entry(user).or_default().push(conn);
        self.rooms_socket_open(user, conn);
    }

    /// A binary frame from chat socket `conn`: always refused.
    pub fn ws_binary(&mut self, conn: ConnId, now: Millis, out: &mut impl Outbox) {
        let Some(sock) = self.sockets.get_mut(&conn) else {
            return;
        };
        self.stats.messages_received += 1;
        let err = if sock.bucket.take(self.cfg.burst, self.cfg.rate_per_sec, now) {
            AckError::BinaryNotSupported
        } else {
            AckError::RateLimited
        };
        self.ack_error(conn, err, out);
    }

    /// Chat socket `conn` is gone (for any reason): when it was its user's
    /// last, the others get `leave` once, at the next
    /// [`Chat::flush_presence`], and the user is last seen now. Calling it
    /// again, or for a socket logout already removed, does nothing.
    pub fn ws_closed(&mut self, conn: ConnId, now: Millis) {
        if self.end_socket_activity(conn, now) {
            self.remove_socket(conn);
        }
    }

    /// Chat socket `conn` is closed because the server is shutting down:
    /// it is forgotten like in [`Chat::ws_closed`], but nobody is told.
    /// Every other socket is closed in the same turn, so a `leave` would
    /// only reach the ones not closed yet, just before their close frame:
    /// n sockets would queue n²/2 frames on the way out.
    pub fn ws_going_away(&mut self, conn: ConnId, now: Millis) {
        if self.end_socket_activity(conn, now) {
            self.forget_socket(conn);
        }
    }

    /// The socket's end is its session's last activity: idle time counts
    /// from here. Returns whether `conn` is a chat socket.
    fn end_socket_activity(&mut self, conn: ConnId, now: Millis) -> bool {
        self.clock = self.clock.max(now);
        let Some(sock) = self.sockets.get(&conn) else {
            return false;
        };
        if let Some(session) = self.sessions.get_mut(&sock.key) {
            session.last_active = now;
            session.used = self.uses.next().unwrap_or(u64::MAX);
            self.journal.touched.insert(sock.key.clone());
        }
        true
    }

    /// Takes `conn` off every table; its session stays. Returns the
    /// socket when it was its user's last (the user went offline).
    fn forget_socket(&mut self, conn: ConnId) -> Option<Socket> {
        let sock = self.sockets.remove(&conn)?;
        self.online.remove(sock.pos, conn);
        self.rooms_socket_closed(sock.user, conn);
        let over = self.sessions.get_mut(&sock.key).is_some_and(|session| {
            session.sockets.retain(|&c| c != conn);
            session.socket_only && session.sockets.is_empty()
        });
        if over {
            self.unlist_session(&sock.key);
        }
        let others = self.user_sockets.get_mut(&sock.user)?;
        others.retain(|&c| c != conn);
        if !others.is_empty() {
            return None;
        }
        self.user_sockets.remove(&sock.user);
        self.went_offline(sock.user);
        Some(sock)
    }

    /// Takes `conn` off every table and remembers its `leave` for the
    /// next [`Chat::flush_presence`]. Not delivered at once: when many
    /// sockets close in one turn (a proxy restart drops them all), each
    /// `leave` would go to every socket still listed, including the ones
    /// about to close in the same turn: n²/2 frames, nearly all wasted.
    fn remove_socket(&mut self, conn: ConnId) {
        if let Some(sock) = self.forget_socket(conn) {
            self.presence.frames.push(
                ServerFrame::Presence {
                    event: "leave",
                    username: &sock.name,
                }
                .to_json(),
            );
        }
    }

    /// Delivers the presence frames (`join`, `leave`) since the last call
    /// to the sockets open now, as one batch: a socket open before them all
    /// gets them in one shared chunk, a socket opened since gets only those
    /// after its own open. The server calls it before sleeping, after the
    /// turn's closes; every other delivery calls it first, so no frame
    /// overtakes a `join` or `leave` that happened before it. One batch a
    /// turn is what makes a join storm or a mass disconnect cheap: each
    /// socket takes one chunk per turn, not one per user coming or going,
    /// and the frames of sockets closed in the same turn go to nobody.
    pub fn flush_presence(&mut self, out: &mut impl Outbox) {
        let Presence { frames, opened } = &mut self.presence;
        if !frames.is_empty() {
            opened.sort_unstable();
            let fresh = |c: &ConnId| opened.binary_search_by_key(c, |&(o, _)| o).is_ok();
            out.deliver_batch(self.online.iter().filter(|c| !fresh(c)), frames);
            for &(conn, seen) in opened.iter() {
                if seen < frames.len() && self.sockets.contains_key(&conn) {
                    out.deliver_batch(std::iter::once(conn), &frames[seen..]);
                }
            }
        }
        frames.clear();
        opened.clear();
    }

    fn ack_error(&mut self, conn: ConnId, err: AckError, out: &mut impl Outbox) {
        let idx = AckError::ALL
            .iter()
            .position(|&e| e == err)
            .expect("listed");
        self.stats.acks_err[idx] += 1;
        let json = match (err, self.last_mute_end()) {
            // A mute's ack says until when.
            (AckError::Muted, Some(until)) => ServerFrame::AckMuted {
                status: false,
                code: err.code(),
                until,
            },
            _ => ServerFrame::AckErr {
                status: false,
                code: err.code(),
            },
        }
        .to_json();
        out.reply(conn, &json);
    }

    /// `Err(retry_after_secs)` when `addr` is over `limit`.
    pub fn check_limit(&self, limit: AddressLimit, addr: IpAddr, now: Millis) -> Result<(), u64> {
        match limit {
            AddressLimit::Register => self.register_limiter.check(addr, now),
            AddressLimit::LoginFailure => self.login_limiter.check(addr, now),
        }
    }

    /// Counts one attempt of `addr` toward `limit`.
    pub fn record_limit(&mut self, limit: AddressLimit, addr: IpAddr, now: Millis) {
        let limiter = match limit {
            AddressLimit::Register => &mut self.register_limiter,
            AddressLimit::LoginFailure => &mut self.login_limiter,
        };
        limiter.record(addr, now);
    }

    /// The earliest time `handle_timeouts` has work (never later than it).
    pub fn next_deadline(&self) -> Option<Millis> {
        [
            self.wheel.next_deadline(),
            self.register_limiter.next_expiry(),
            self.login_limiter.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Ends idle sessions, forgets old rate-limit entries and old
    /// `client_id`s whose time has come. Session timers are re-armed
    /// lazily: activity only moves `last_active`, and a timer that fires
    /// early re-inserts itself for the remainder.
    pub fn handle_timeouts(&mut self, now: Millis) {
        self.clock = self.clock.max(now);
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.advance(now, &mut fired);
        for due in fired.drain(..) {
            let again = match &due {
                Due::Session(key) => self.session_due(key, now),
                Due::Dedupe(user, client_id, id) => {
                    let key = (*user, client_id.clone());
                    if self.recent.get(&key) == Some(id) {
                        self.recent.remove(&key);
                    }
                    None
                }
                Due::Typing(user, conv) => {
                    self.typing.remove(&(*user, *conv));
                    None
                }
            };
            if let Some(at) = again {
                self.wheel.insert(at, due);
            }
        }
        self.fired = fired;
        self.register_limiter.expire(now);
        self.login_limiter.expire(now);
    }

    /// Asserts the invariants tying sessions, sockets and the online list
    /// together; for tests and fuzzing.
    pub fn check(&self) {
        assert_eq!(
            self.online.len(),
            self.sockets.len(),
            "online list vs sockets"
        );
        let listed: usize = self.user_sockets.values().map(Vec::len).sum();
        assert_eq!(listed, self.sockets.len(), "per-user socket lists");
        for (conn, sock) in &self.sockets {
            assert!(
                self.sockets_of(sock.user).contains(conn),
                "user map of {conn:?}"
            );
            let session = self.sessions.get(&sock.key);
            assert!(
                session.is_some_and(|s| s.sockets.contains(conn)),
                "session of {conn:?}"
            );
        }
        assert!(self.user_sockets.values().all(|v| !v.is_empty()));
        assert!(
            self.sessions
                .values()
                .all(|s| !s.socket_only || !s.sockets.is_empty()),
            "a bearer socket's session outlived its sockets"
        );
        let with_socket: usize = self.sessions.values().map(|s| s.sockets.len()).sum();
        assert_eq!(with_socket, self.sockets.len(), "sessions with a socket");
        let listed: usize = self.user_sessions.values().map(Vec::len).sum();
        assert_eq!(listed, self.sessions.len(), "per-user session lists");
        for (user, keys) in &self.user_sessions {
            assert!(!keys.is_empty(), "empty session list of {user:?}");
            for key in keys {
                assert_eq!(self.sessions.get(key).map(|s| s.user), Some(*user));
            }
            let idle = keys.iter().filter(|k| !self.sessions[*k].in_use());
            assert!(
                idle.count() <= self.cfg.sessions_per_user,
                "idle sessions of {user:?} over the cap"
            );
        }
        self.check_rooms();
        self.check_moderation();
        self.check_streams();
        self.wheel.check();
    }
}

#[cfg(test)]
mod tests;
