//! The server's own turn (`piratchat::server::Turn`: serving, timers,
//! the commit, closes and the urgent-first flush) over an in-memory
//! socket ([`MemSock`]), an in-memory `Store` and a `Chat`; the driver
//! only plays the poll: it hands the connection its input, a readable and
//! writable event and the time, turn after turn, as `Server::run` does.
//!
//! One client connection ("alice") at slot 0; slot 1 is "bob", a chat
//! socket opened directly through the chat in a slot the turn does not
//! serve, so that broadcasts, `join` and `leave` have somewhere to go and
//! can be counted.
//!
//! Used by the `connection` fuzz target and included by
//! `tests/fuzz_regressions.rs`; it uses only `std` and `piratchat`.

use piratchat::chat::{Chat, ChatConfig, SessionKey};
use piratchat::config::{Config, LogLevel};
use piratchat::ids::{ConnId, Millis, UserId};
use piratchat::log::Logger;
use piratchat::metrics::Metrics;
use piratchat::secret::sha256_hex;
use piratchat::server::link::Transport;
use piratchat::server::outlet::Accepts;
use piratchat::server::{ConnKind, Core, Turn};
use piratchat::store::Store;
use piratchat::wheel::Wheel;
use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

/// Alice's user key (64 hex), so `POST /api/login` can succeed too.
pub const ALICE_KEY: &str = "a11ce0000000000000000000000000000000000000000000000000000000a11c";
/// Alice's session, live from the start: `Cookie: session=<this>`.
pub const ALICE_TOKEN: &str = "FuzzAliceSession0000000000000001";
/// Bob's session; bob is online from the start (so `/ws` with it is 409).
pub const BOB_TOKEN: &str = "FuzzBobSession000000000000000002";

/// The client side of the connection in memory: input handed over in
/// chunks (`WouldBlock` between them), output taken up to `room` bytes per
/// turn (a slow reader), and a record of our FIN.
pub struct MemSock {
    input: Vec<u8>,
    pos: usize,
    avail: usize,
    eof: bool,
    /// Everything the server wrote.
    pub written: Vec<u8>,
    /// Bytes the socket takes per turn; `usize::MAX` for unlimited.
    room: usize,
    room_left: usize,
    /// The server sent FIN.
    pub shut: bool,
    /// Bytes written after FIN (must stay 0).
    pub after_fin: usize,
}

impl Read for MemSock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.avail {
            if self.eof {
                return Ok(0);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.avail - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for MemSock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room_left == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.room_left);
        self.room_left -= n;
        if self.shut {
            self.after_fin += n;
        }
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    /// Takes every slice up to the room left, like a socket's `writev`:
    /// a short write means the socket is full.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut total = 0;
        for buf in bufs.iter().filter(|b| !b.is_empty()) {
            match self.write(buf) {
                Ok(n) => total += n,
                Err(e) if total == 0 => return Err(e),
                Err(_) => break,
            }
            if self.room_left == 0 {
                break;
            }
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for MemSock {
    fn shutdown_write(&mut self) {
        self.shut = true;
    }
}

/// How a run is set up.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Serve `/echo`.
    pub echo: bool,
    /// The peer is on loopback (a trusted proxy, may see `/metrics`).
    pub loopback: bool,
    /// Bytes the client reads per turn (`usize::MAX`: all).
    pub room: usize,
    /// Milliseconds between turns.
    pub step_ms: u64,
    /// Bytes of input per turn.
    pub chunk: usize,
    /// The store refuses the first commit with writes at or after this
    /// turn (as a full disk would), and with `true` every one after it too.
    pub refuse_commit: Option<(u32, bool)>,
}

impl Setup {
    /// A setup from one flags byte and one chunk-size byte (fuzz input).
    pub fn from_bytes(flags: u8, chunk: u8) -> Setup {
        const ROOMS: [usize; 4] = [usize::MAX, 1, 16, 512];
        const STEPS: [u64; 8] = [0, 1, 100, 1_000, 5_000, 15_000, 31_000, 61_000];
        Setup {
            echo: flags & 1 != 0,
            loopback: flags & 2 == 0,
            room: ROOMS[usize::from(flags >> 3 & 3)],
            step_ms: STEPS[usize::from(flags >> 5)],
            chunk: if chunk == 0 { 4096 } else { usize::from(chunk) },
            refuse_commit: None,
        }
    }

    /// The failing-commit operation from one byte (fuzz input): 0 for
    /// none, else the turn in the low 7 bits, and the high bit for "the
    /// disk stays full from then on".
    pub fn with_refusal(mut self, byte: u8) -> Setup {
        let turn = u32::from(byte & 0x7f);
        self.refuse_commit = (byte != 0).then_some((turn, byte & 0x80 != 0));
        self
    }
}

/// Alice's connection id (slot 0) and bob's (slot 1).
pub const ALICE: ConnId = ConnId(0);
/// Bob's chat socket.
pub const BOB: ConnId = ConnId(1);

/// The driver. See the module doc.
pub struct Driver {
    turn: Turn<MemSock>,
    /// The socket after the connection closed.
    pub closed_sock: Option<MemSock>,
    /// What bob's socket received.
    pub bob_got: Vec<u8>,
    now: Millis,
    setup: Setup,
    /// What alice's socket became when it was upgraded, if it was.
    pub upgraded: Option<ConnKind>,
    /// Input bytes read when the upgrade happened.
    pub upgraded_after: usize,
    /// Largest outlet queue seen.
    pub max_queued: usize,
    /// Alice's user id.
    pub alice: UserId,
    /// Turns run so far.
    turns: u32,
    /// Commits the store was told to refuse.
    pub refused: u32,
    /// Message ids handed out in turns whose commit failed: nothing with
    /// one of them may ever be written to a socket.
    pub unstored: BTreeSet<i64>,
}

/// Zero-timeout turns run after a turn while connections are still ready
/// (the real loop runs them until none is; bounded here so that a spin
/// is a failed check, not a hung fuzzer).
const READY_TURNS: usize = 8;

impl Driver {
    /// A driver at time 0 with alice's connection open over `input` and
    /// bob online.
    pub fn new(input: Vec<u8>, setup: Setup) -> Driver {
        let cfg = Config {
            echo_endpoint: setup.echo,
            // Keep the fuzzer's output readable: only errors are logged.
            log_level: LogLevel::Error,
            ..Config::default()
        };
        let mut store = Store::open_in_memory().expect("in-memory database");
        let alice = store
            .create_user("alice", &sha256_hex(ALICE_KEY))
            .expect("database")
            .expect("new name");
        let bob = store
            .create_user("bob", &sha256_hex("b0b"))
            .expect("database")
            .expect("new name");
        let now = Millis(0);
        // Any Unix offset will do: timestamps only go into frames.
        let chat = Chat::new(ChatConfig::from_config(&cfg), now, 1_700_000_000_000);
        let log = Logger::new(cfg.log_level);
        let mut turn = Turn::new(Core::new(cfg, chat, store, Wheel::new(now), log));
        let core = &mut turn.core;
        core.chat
            .login(SessionKey::of(ALICE_TOKEN), alice.id, &alice.name, now);
        core.chat
            .login(SessionKey::of(BOB_TOKEN), bob.id, &bob.name, now);
        let peer: SocketAddr = if setup.loopback {
            ([127, 0, 0, 1], 40000).into()
        } else {
            ([203, 0, 113, 7], 40000).into()
        };
        let sock = MemSock {
            input,
            pos: 0,
            avail: 0,
            eof: false,
            written: Vec::new(),
            room: setup.room,
            room_left: setup.room,
            shut: false,
            after_fin: 0,
        };
        let id = turn.admit(sock, peer, false, now, |_, _| Ok(()));
        assert_eq!(id, Some(ALICE));
        assert_eq!(turn.detached_slot(Accepts::Frames), BOB);
        let env = turn.core.env(now);
        env.chat.ws_open(BOB, &SessionKey::of(BOB_TOKEN), now);
        let mut driver = Driver {
            turn,
            closed_sock: None,
            bob_got: Vec::new(),
            now,
            setup,
            upgraded: None,
            upgraded_after: 0,
            max_queued: 0,
            alice: alice.id,
            turns: 0,
            refused: 0,
            unstored: BTreeSet::new(),
        };
        driver.before_sleep();
        driver
    }

    /// Whether alice's connection is still open.
    pub fn is_open(&self) -> bool {
        self.turn.conn(ALICE).is_some()
    }

    /// Everything the server sent alice.
    pub fn written(&self) -> &[u8] {
        match (self.turn.conn(ALICE), &self.closed_sock) {
            (Some(c), _) => &c.sock.written,
            (None, Some(s)) => &s.written,
            (None, None) => &[],
        }
    }

    /// The chat, to check its invariants.
    pub fn chat(&self) -> &Chat {
        &self.turn.core.chat
    }

    /// The server counters.
    pub fn metrics(&self) -> &Metrics {
        &self.turn.core.metrics
    }

    /// Checks the invariants of the wheel, the chat and the gauges.
    pub fn check(&self) {
        let core = &self.turn.core;
        core.wheel.check();
        core.chat.check();
        let m = &core.metrics;
        let open = u64::from(self.is_open());
        let gauges = m.open_http + m.open_ws + m.open_echo + m.open_streams;
        assert_eq!(gauges, open, "gauges");
        assert_eq!(self.turn.open() as u64, open, "open connections");
        if let Some(c) = self.turn.conn(ALICE) {
            assert_eq!(c.sock.after_fin, 0, "bytes written after FIN");
            let queued = core.outlets[ALICE.slot()].queued();
            assert!(queued <= core.cfg.max_output_bytes, "outlet over its limit");
        }
    }

    /// One turn: the next chunk arrives (or end of file when there is
    /// none), time moves on by the step, then the loop's turn: the event
    /// (readable, and writable: the socket has room again), the ready
    /// list, timers, before sleep; then zero-timeout turns while
    /// connections are still ready. Returns false once there was nothing
    /// left to deliver.
    pub fn turn(&mut self) -> bool {
        self.turns += 1;
        self.now += Millis(self.setup.step_ms);
        let chunk = self.setup.chunk;
        let more = match self.turn.sock_mut(ALICE) {
            Some(s) => {
                s.room_left = s.room;
                if s.avail < s.input.len() {
                    s.avail = (s.avail + chunk).min(s.input.len());
                    true
                } else {
                    s.eof = true;
                    false
                }
            }
            None => false,
        };
        self.turn.event(ALICE, true, true, self.now);
        self.note_upgrade();
        self.rest_of_turn();
        for _ in 0..READY_TURNS {
            if !self.turn.has_ready() {
                break;
            }
            self.rest_of_turn();
        }
        more
    }

    /// The ready list, timers and before-sleep of one turn.
    fn rest_of_turn(&mut self) {
        self.turn.serve_ready(self.now);
        self.note_upgrade();
        let mut others = Vec::new();
        self.turn.fire_timers(self.now, &mut others);
        assert_eq!(others, [], "server timers in the driver");
        self.note_upgrade();
        self.before_sleep();
    }

    /// Records when alice's socket became a WebSocket (a step that
    /// upgrades returns before reading what follows the request). An
    /// event stream is no upgrade: it answers 200, not 101.
    fn note_upgrade(&mut self) {
        if self.upgraded.is_some() {
            return;
        }
        if let Some(c) = self.turn.conn(ALICE)
            && matches!(c.kind, ConnKind::Chat | ConnKind::Echo)
        {
            self.upgraded = Some(c.kind);
            self.upgraded_after = c.sock.pos;
        }
    }

    /// `Turn::before_sleep` (with the sessions' activity every turn), the
    /// commit refused when the setup says so (an in-memory database does
    /// not fail it otherwise); then bob reads what he was sent.
    fn before_sleep(&mut self) {
        // Never the set-up's own commit (turn 0): it logs bob in and opens
        // his socket in one turn, which the server cannot do (a session's
        // token leaves only after its commit), so it must not be undone.
        if let Some((at, always)) = self.setup.refuse_commit
            && self.turns > 0
            && (self.turns == at || always && self.turns > at)
        {
            self.refused += 1;
            self.turn.core.store.refuse_next_commit();
        }
        let queued = self.turn.core.outlets[ALICE.slot()].queued();
        self.max_queued = self.max_queued.max(queued);
        let last_id = self.turn.core.chat.last_id();
        self.turn.flush_sessions();
        let closed_sock = &mut self.closed_sock;
        self.turn.before_sleep(self.now, &mut |sock| {
            assert!(closed_sock.is_none(), "alice closed twice");
            *closed_sock = Some(sock);
        });
        let stored_id = self.turn.core.chat.stored_id();
        self.unstored.extend(stored_id + 1..=last_id);
        let bob = &mut self.turn.core.outlets[BOB.slot()];
        assert!(!bob.overflow, "bob overflowed");
        bob.write_to(&mut self.bob_got).expect("a Vec takes all");
        bob.dirty = false;
        bob.urgent = false;
    }
}

impl Driver {
    /// Nothing of an unstored message was ever written to a socket (no
    /// broadcast to bob, no ack, replay or history page to alice: each
    /// would carry its id), and none of them is in the database.
    pub fn check_unstored(&mut self) {
        for &id in &self.unstored {
            for needle in [format!("\"id\":{id},"), format!("\"id\":{id}}}")] {
                let needle = needle.as_bytes();
                for (who, bytes) in [("alice", self.written()), ("bob", &self.bob_got[..])] {
                    let leaked = bytes.windows(needle.len()).any(|w| w == needle);
                    assert!(!leaked, "unstored message {id} written to {who}");
                }
            }
        }
        if let Some((at, true)) = self.setup.refuse_commit
            && at <= 1
        {
            // The disk was full from the first turn on: no key and no
            // session was stored, so none may have been handed out.
            let written = self.written();
            let found = |needle: &[u8]| written.windows(needle.len()).any(|w| w == needle);
            assert!(!found(b"HTTP/1.1 201 "), "201 on a full disk");
            for cookie in [&b"Set-Cookie: session="[..], b"set-cookie: session="] {
                let after = written
                    .windows(cookie.len())
                    .enumerate()
                    .filter(|(_, w)| *w == cookie);
                for (i, _) in after {
                    let next = written.get(i + cookie.len()).copied();
                    assert!(
                        !next.is_some_and(|b| b.is_ascii_alphanumeric()),
                        "a session on a full disk"
                    );
                }
            }
        }
        let Some(&first) = self.unstored.first() else {
            return;
        };
        let stored = self
            .turn
            .core
            .store
            .events_after(first - 1, usize::MAX >> 1);
        for m in stored.expect("in-memory database") {
            assert!(
                !self.unstored.contains(&m.id),
                "unstored id {} stored",
                m.id
            );
        }
    }
}

/// The upgrade request the harness sends ahead of WebSocket bytes: to
/// `/ws` with alice's session, or to `/echo`.
pub fn upgrade_request(echo: bool) -> Vec<u8> {
    let (path, cookie) = if echo {
        ("/echo", String::new())
    } else {
        ("/ws", format!("Cookie: session={ALICE_TOKEN}\r\n"))
    };
    format!(
        "GET {path} HTTP/1.1\r\nHost: chat.test\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{cookie}\r\n"
    )
    .into_bytes()
}

/// Runs `input` through a whole connection: every chunk in its own turn,
/// then end of file, then timers until the connection is gone. Checks the
/// invariants after every turn and returns the driver for more checks.
///
/// # Panics
/// When an invariant breaks, or the connection outlives its input by more
/// than a bounded number of timers.
pub fn run(input: Vec<u8>, setup: Setup) -> Driver {
    let mut d = Driver::new(input, setup);
    d.check();
    while d.turn() {
        d.check();
    }
    // End of file has been delivered; a few turns to act on it.
    for _ in 0..4 {
        d.turn();
        d.check();
    }
    // Whatever is left must end by its timers (linger 2 s, close wait 5 s,
    // ping 30 + 30 s, idle 60 s): a minute per turn ends them all soon.
    d.setup.step_ms = 61_000;
    for _ in 0..8 {
        if !d.is_open() {
            break;
        }
        d.turn();
        d.check();
    }
    assert!(!d.is_open(), "connection outlives its input and its timers");
    d.check_unstored();
    assert!(
        !d.chat().is_online(d.alice),
        "alice online without a socket"
    );
    d
}
