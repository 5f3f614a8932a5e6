//! The bench's event loop: one `mio::Poll`, one user per `Token`, each user
//! owning at most one socket at a time. A user walks register → login (one
//! keep-alive connection) → WebSocket open (a fresh connection, as a
//! browser does); at most `parallel` users are in that walk at once. Open
//! sockets hand every text frame to a scenario's `Handler`.
//!
//! Readiness is a hint: every event on a user's token drives that user's
//! socket as far as it goes (connect check, write, read to `WouldBlock`),
//! so spurious or stale events are harmless.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use tungstenite::handshake::client::generate_key;
use tungstenite::handshake::derive_accept_key;

use crate::hist::Histogram;
use crate::http::{self, Response};
use crate::sse::Sse;
pub use crate::ws::{Handler, Ws, WsTx};

/// Bytes per `read` on HTTP connections, and the smallest WebSocket read
/// buffer (about 35 deliveries per syscall).
const READ_CHUNK: usize = 4096;
/// The largest WebSocket read buffer: fewer syscalls per delivery when few
/// sockets carry the whole load.
const MAX_READ_BUFFER: usize = 64 * 1024;
/// What all WebSocket read buffers together may take: 100 or 1,000 clients
/// get 64 KiB each, 10,000 get 6.5 KiB.
const READ_BUFFER_BUDGET: usize = 64 << 20;
/// Error messages kept for the report; the rest are only counted.
const MAX_ERRORS: usize = 10;

/// The step of the login walk an HTTP connection is in.
#[derive(Debug)]
enum Step {
    Register,
    Login,
    /// `POST /api/rooms` (201, or 409 when another user made it first).
    CreateRoom,
    /// `POST /api/rooms/{room}/join`.
    JoinRoom,
    Upgrade {
        ws_key: String,
    },
    /// `GET /api/events`: an event stream in place of the socket.
    Stream,
}

/// A connection carrying one request at a time.
struct HttpConn {
    stream: TcpStream,
    connected: bool,
    out: Vec<u8>,
    sent: usize,
    inbuf: Vec<u8>,
    step: Step,
}

/// What an HTTP connection produced on this event.
enum Pumped {
    /// Needs more readiness.
    Pending,
    /// A whole response, and the bytes after it.
    Answer(Response, Vec<u8>),
    /// The 200 head of an event stream, and the bytes after it.
    Stream(Vec<u8>),
}

impl HttpConn {
    /// Finishes the connect, writes what is pending, reads to `WouldBlock`,
    /// and parses.
    fn pump(&mut self) -> Result<Pumped, String> {
        if !self.connected {
            if let Ok(Some(e)) | Err(e) = self.stream.take_error() {
                return Err(format!("connect: {e}"));
            }
            match self.stream.peer_addr() {
                Ok(_) => self.connected = true,
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(Pumped::Pending),
                Err(e) => return Err(format!("connect: {e}")),
            }
        }
        self.write_out()?;
        let eof = self.read_in()?;
        if matches!(self.step, Step::Stream) {
            return self.stream_head(eof);
        }
        match http::parse_response(&self.inbuf) {
            Err(e) => Err(e.to_string()),
            Ok(Some((resp, used))) => {
                let rest = self.inbuf.split_off(used);
                self.inbuf.clear();
                Ok(Pumped::Answer(resp, rest))
            }
            Ok(None) if eof => Err(format!(
                "server closed the connection during {:?}",
                self.step
            )),
            Ok(None) => Ok(Pumped::Pending),
        }
    }

    /// The head of an event stream (chunked, no length: not for
    /// `parse_response`): a 200 and the bytes after it, or the refusal.
    fn stream_head(&mut self, eof: bool) -> Result<Pumped, String> {
        let Some(end) = self.inbuf.windows(4).position(|w| w == b"\r\n\r\n") else {
            return match eof {
                true => Err("server closed the connection during Stream".into()),
                false => Ok(Pumped::Pending),
            };
        };
        let head = String::from_utf8_lossy(&self.inbuf[..end]).into_owned();
        if !head.starts_with("HTTP/1.1 200 ") || !head.contains("Transfer-Encoding: chunked") {
            let line = head.lines().next().unwrap_or("");
            return Err(format!("/api/events answered {line}"));
        }
        Ok(Pumped::Stream(self.inbuf.split_off(end + 4)))
    }

    fn write_out(&mut self) -> Result<(), String> {
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(0) => return Err("write returned 0".into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        Ok(())
    }

    /// Reads until `WouldBlock`; true on end of stream.
    fn read_in(&mut self) -> Result<bool, String> {
        let mut buf = [0u8; READ_CHUNK];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(true),
                Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// A user's socket, by phase.
enum Sock {
    None,
    Http(Box<HttpConn>),
    Open(Ws),
    /// We sent a close frame and wait for the server to close TCP.
    Closing(Ws),
    /// An open event stream.
    Stream(Box<Sse>),
}

/// One chat user of the bench.
pub struct User {
    /// Username (unique per run).
    pub name: String,
    key: Option<String>,
    session: Option<String>,
    /// A room to create (if need be) and join before opening the socket.
    room: Option<String>,
    /// Opens an event stream, not a WebSocket.
    stream: bool,
    /// Stop the walk once logged in (see [`Engine::prepare`]).
    prepare_only: bool,
    /// When the current upgrade request was started (run clock, ns).
    upgrade_at: Option<u64>,
    sock: Sock,
}

/// Counters of the engine, read by scenarios.
#[derive(Default)]
pub struct Stats {
    /// Successful registrations.
    pub registered: u64,
    /// Successful logins.
    pub logged_in: u64,
    /// WebSocket handshakes completed.
    pub opened: u64,
    /// Sockets open right now (including those we are closing).
    pub open_now: usize,
    /// Closes we asked for that completed.
    pub closed: u64,
    /// Users walked to a session without a socket ([`Engine::prepare`]).
    pub prepared: u64,
    /// Register/login/open walks that failed.
    pub failed: u64,
    /// Sockets the server closed (or that broke) without us asking.
    pub unexpected_closes: u64,
    /// The first few error messages.
    pub errors: Vec<String>,
    /// Time from sending an upgrade request to reading its 101, in ns.
    pub open_latency: Histogram,
}

impl Stats {
    fn error(&mut self, msg: String) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(msg);
        }
    }
}

/// The event loop and every user.
pub struct Engine {
    poll: Poll,
    events: Events,
    /// Tokens of this turn's events, and whether the peer's FIN (or an
    /// error) is among them, which a short read would not reveal.
    ready: Vec<(usize, bool)>,
    addr: SocketAddr,
    host: String,
    users: Vec<User>,
    queue: VecDeque<usize>,
    busy: usize,
    parallel: usize,
    epoch: Instant,
    read_buffer: usize,
    /// Rooms of users not added yet, by index.
    room_plan: Vec<Option<String>>,
    /// Users from this index on open event streams.
    streams_from: usize,
    /// Counters.
    pub stats: Stats,
}

impl Engine {
    /// An engine for the server at `host:port`, sized for `clients` sockets.
    pub fn new(host: &str, parallel: usize, clients: usize) -> io::Result<Self> {
        let addr = host
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::other("no address"))?;
        let read_buffer = (READ_BUFFER_BUDGET / clients.max(1)).clamp(READ_CHUNK, MAX_READ_BUFFER);
        Ok(Self {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            ready: Vec::new(),
            addr,
            host: host.to_string(),
            users: Vec::new(),
            queue: VecDeque::new(),
            busy: 0,
            parallel,
            epoch: Instant::now(),
            read_buffer,
            room_plan: Vec::new(),
            streams_from: usize::MAX,
            stats: Stats::default(),
        })
    }

    /// Nanoseconds since the engine started: the run-local clock that
    /// stamps messages.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Adds a user that has not registered yet.
    pub fn add_user(&mut self, name: String) -> usize {
        self.users.push(User {
            name,
            key: None,
            session: None,
            room: self.room_plan.get(self.users.len()).cloned().flatten(),
            stream: self.users.len() >= self.streams_from,
            prepare_only: false,
            upgrade_at: None,
            sock: Sock::None,
        });
        self.users.len() - 1
    }

    /// Makes user `u` (added now or later) join `room`, creating it if
    /// need be, after logging in and before opening its socket.
    pub fn plan_room(&mut self, u: usize, room: String) {
        match self.users.get_mut(u) {
            Some(user) => user.room = Some(room),
            None => {
                self.room_plan.resize(self.room_plan.len().max(u + 1), None);
                self.room_plan[u] = Some(room);
            }
        }
    }

    /// Makes the users from index `u` on (added later) open event streams
    /// in place of WebSockets.
    pub fn streams_from(&mut self, u: usize) {
        self.streams_from = u;
    }

    /// Users that open (or opened) a WebSocket, not a stream.
    pub fn socket_users(&self) -> usize {
        self.users.len().min(self.streams_from)
    }

    /// Queues user `u` to walk to an open socket (registering and logging in
    /// first when it has no key or session yet).
    pub fn open(&mut self, u: usize) {
        self.queue.push_back(u);
    }

    /// Queues user `u` to register and log in without opening its socket,
    /// so that a later [`Engine::open`] is the upgrade alone.
    pub fn prepare(&mut self, u: usize) {
        self.users[u].prepare_only = true;
        self.queue.push_back(u);
    }

    /// Starts the closing handshake on `u`'s socket (or drops a half-done walk).
    pub fn close(&mut self, u: usize) {
        match std::mem::replace(&mut self.users[u].sock, Sock::None) {
            Sock::Open(mut ws) => match ws.close() {
                Ok(()) => self.users[u].sock = Sock::Closing(ws),
                // Already broken: as good as closed.
                Err(_) => {
                    self.stats.open_now -= 1;
                    self.stats.closed += 1;
                }
            },
            other @ Sock::Closing(_) => self.users[u].sock = other,
            // A stream ends when its connection closes.
            Sock::Stream(_) => {
                self.stats.open_now -= 1;
                self.stats.closed += 1;
            }
            Sock::Http(_) => self.busy -= 1,
            Sock::None => {}
        }
    }

    /// Writes a text frame to `u`'s open socket and flushes it.
    pub fn send(&mut self, u: usize, text: &str) -> Result<(), String> {
        let Sock::Open(ws) = &mut self.users[u].sock else {
            return Err("socket not open".into());
        };
        ws.tx().send_text(text)?;
        ws.tx().flush()
    }

    /// One loop turn: start queued walks, wait up to `timeout` for events,
    /// drive every ready socket.
    pub fn turn(&mut self, h: &mut impl Handler, timeout: Duration) -> io::Result<()> {
        self.start_queued();
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
            other => other?,
        }
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        let hup = |e: &mio::event::Event| e.is_read_closed() || e.is_error();
        ready.extend(self.events.iter().map(|e| (e.token().0, hup(e))));
        for &(u, hup) in &ready {
            match self.users[u].sock {
                Sock::Http(_) => self.drive_http(u, h),
                Sock::Open(_) | Sock::Closing(_) => self.drive_ws(u, h, hup),
                Sock::Stream(_) => self.drive_stream(u, h),
                Sock::None => {}
            }
        }
        self.ready = ready;
        self.start_queued();
        Ok(())
    }

    /// Begins queued walks while fewer than `parallel` are under way.
    fn start_queued(&mut self) {
        while self.busy < self.parallel {
            let Some(u) = self.queue.pop_front() else {
                break;
            };
            self.busy += 1;
            let user = &self.users[u];
            let step = match (&user.key, &user.session) {
                (None, _) => Step::Register,
                (Some(_), None) => Step::Login,
                (Some(_), Some(_)) if user.stream => Step::Stream,
                (Some(_), Some(_)) => Step::Upgrade {
                    ws_key: generate_key(),
                },
            };
            if let Err(e) = self.connect(u, step) {
                self.fail(u, e);
            }
        }
    }

    /// Opens a new connection for `u` carrying the request of `step`.
    fn connect(&mut self, u: usize, step: Step) -> Result<(), String> {
        let mut stream = TcpStream::connect(self.addr).map_err(|e| format!("connect: {e}"))?;
        // Senders write one small frame per ack; Nagle would hold each one
        // back until the previous segment is acknowledged.
        stream
            .set_nodelay(true)
            .map_err(|e| format!("nodelay: {e}"))?;
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.poll
            .registry()
            .register(&mut stream, Token(u), interest)
            .map_err(|e| format!("register: {e}"))?;
        let out = self.request(u, &step);
        if matches!(step, Step::Upgrade { .. }) {
            self.users[u].upgrade_at = Some(self.now_ns());
        }
        let conn = HttpConn {
            stream,
            connected: false,
            out,
            sent: 0,
            inbuf: Vec::new(),
            step,
        };
        self.users[u].sock = Sock::Http(Box::new(conn));
        Ok(())
    }

    /// The request bytes of `step` for user `u`.
    fn request(&self, u: usize, step: &Step) -> Vec<u8> {
        let user = &self.users[u];
        let (host, key, session) = (&self.host, user.key.as_deref(), user.session.as_deref());
        match step {
            Step::Register => http::request(
                "POST",
                "/api/register",
                host,
                &[],
                &http::register_body(&user.name),
            ),
            Step::Login => http::request(
                "POST",
                "/api/login",
                host,
                &[],
                &http::login_body(key.unwrap_or("")),
            ),
            Step::CreateRoom | Step::JoinRoom => {
                let cookie = format!("session={}", session.unwrap_or(""));
                let room = user.room.as_deref().unwrap_or("");
                let (path, body) = match step {
                    Step::CreateRoom => ("/api/rooms".to_string(), http::room_body(room)),
                    _ => (format!("/api/rooms/{room}/join"), Vec::new()),
                };
                http::request("POST", &path, host, &[("Cookie", &cookie)], &body)
            }
            Step::Upgrade { ws_key } => http::upgrade("/ws", host, session.unwrap_or(""), ws_key),
            Step::Stream => {
                let cookie = format!("session={}", session.unwrap_or(""));
                http::request("GET", "/api/events", host, &[("Cookie", &cookie)], b"")
            }
        }
    }

    /// Ends `u`'s walk with an error.
    fn fail(&mut self, u: usize, msg: String) {
        self.users[u].sock = Sock::None;
        self.busy -= 1;
        self.stats.failed += 1;
        let name = &self.users[u].name;
        self.stats.error(format!("user {name}: {msg}"));
    }

    /// Drives an HTTP connection and acts on each complete response.
    fn drive_http(&mut self, u: usize, h: &mut impl Handler) {
        loop {
            let Sock::Http(c) = &mut self.users[u].sock else {
                return;
            };
            match c.pump() {
                Err(e) => return self.fail(u, e),
                Ok(Pumped::Pending) => return,
                Ok(Pumped::Stream(rest)) => return self.stream_open(u, rest, h),
                Ok(Pumped::Answer(resp, rest)) => {
                    if !self.on_response(u, resp, rest, h) {
                        return;
                    }
                }
            }
        }
    }

    /// Advances `u`'s walk after a response; true when the same connection
    /// carries the next request and must be pumped again.
    fn on_response(
        &mut self,
        u: usize,
        resp: Response,
        rest: Vec<u8>,
        h: &mut impl Handler,
    ) -> bool {
        let Sock::Http(c) = std::mem::replace(&mut self.users[u].sock, Sock::None) else {
            return false;
        };
        let body = String::from_utf8_lossy(&resp.body).into_owned();
        let result = match (&c.step, resp.status) {
            (Step::Register, 201) => self.registered(u, c, &resp),
            (Step::Login, 200) => self.logged_in(u, &resp),
            (Step::CreateRoom, 201 | 409) => self.next_step(u, c, &resp, Step::JoinRoom),
            (Step::JoinRoom, 200) => self.open_socket(u),
            (Step::Upgrade { ws_key }, 101) => {
                let accept = derive_accept_key(ws_key.as_bytes());
                self.upgraded(u, c.stream, &resp, &accept, rest, h)
            }
            (step, status) => Err(format!("{step:?} answered {status} {body}")),
        };
        match result {
            Ok(again) => again,
            Err(e) => {
                self.fail(u, e);
                false
            }
        }
    }

    /// Stores the key and sends the login, on the same connection unless
    /// the server closes it.
    fn registered(&mut self, u: usize, c: Box<HttpConn>, resp: &Response) -> Result<bool, String> {
        let key = http::key_of(&resp.body).ok_or("register answer without a key")?;
        self.stats.registered += 1;
        self.users[u].key = Some(key);
        self.next_step(u, c, resp, Step::Login)
    }

    /// Stores the session, then joins the user's room or opens the
    /// WebSocket, on a new connection.
    fn logged_in(&mut self, u: usize, resp: &Response) -> Result<bool, String> {
        let session = resp
            .session
            .clone()
            .ok_or("login answer without a session cookie")?;
        self.stats.logged_in += 1;
        self.users[u].session = Some(session);
        if std::mem::take(&mut self.users[u].prepare_only) {
            self.busy -= 1;
            self.stats.prepared += 1;
            return Ok(false);
        }
        if self.users[u].room.is_some() {
            self.connect(u, Step::CreateRoom)?;
            return Ok(false);
        }
        self.open_socket(u)
    }

    /// Sends `step`'s request on the same connection unless the server
    /// closes it.
    fn next_step(
        &mut self,
        u: usize,
        mut c: Box<HttpConn>,
        resp: &Response,
        step: Step,
    ) -> Result<bool, String> {
        if resp.close {
            self.connect(u, step)?;
            return Ok(false);
        }
        c.out = self.request(u, &step);
        c.sent = 0;
        c.step = step;
        self.users[u].sock = Sock::Http(c);
        Ok(true)
    }

    /// Opens the WebSocket (or the event stream) on a new connection.
    fn open_socket(&mut self, u: usize) -> Result<bool, String> {
        if self.users[u].stream {
            self.connect(u, Step::Stream)?;
            return Ok(false);
        }
        self.connect(
            u,
            Step::Upgrade {
                ws_key: generate_key(),
            },
        )?;
        Ok(false)
    }

    /// Turns the connection into a client WebSocket and reads what came
    /// with the 101.
    fn upgraded(
        &mut self,
        u: usize,
        stream: TcpStream,
        resp: &Response,
        accept: &str,
        rest: Vec<u8>,
        h: &mut impl Handler,
    ) -> Result<bool, String> {
        if resp.accept.as_deref() != Some(accept) {
            return Err(format!(
                "101 with a wrong Sec-WebSocket-Accept {:?}",
                resp.accept
            ));
        }
        self.users[u].sock = Sock::Open(Ws::new(stream, &rest, self.read_buffer));
        if let Some(t) = self.users[u].upgrade_at.take() {
            let now = self.now_ns();
            self.stats.open_latency.record(now.saturating_sub(t));
        }
        self.busy -= 1;
        self.stats.opened += 1;
        self.stats.open_now += 1;
        // Bytes after the 101 may already include the server's FIN.
        self.drive_ws(u, h, true);
        Ok(false)
    }

    /// The stream's head is in: it is open, and what came with the head
    /// is read.
    fn stream_open(&mut self, u: usize, rest: Vec<u8>, h: &mut impl Handler) {
        let Sock::Http(c) = std::mem::replace(&mut self.users[u].sock, Sock::None) else {
            return;
        };
        self.users[u].sock = Sock::Stream(Box::new(Sse::new(c.stream, rest)));
        self.busy -= 1;
        self.stats.opened += 1;
        self.stats.open_now += 1;
        self.drive_stream(u, h);
    }

    /// Reads an open stream to `WouldBlock`.
    fn drive_stream(&mut self, u: usize, h: &mut impl Handler) {
        let now = self.now_ns();
        let user = &mut self.users[u];
        let Sock::Stream(sse) = &mut user.sock else {
            return;
        };
        let Some(reason) = sse.drain(u, h, now) else {
            return;
        };
        user.sock = Sock::None;
        self.stats.open_now -= 1;
        self.stats.unexpected_closes += 1;
        let msg = format!("user {}: stream closed unexpectedly: {reason}", user.name);
        self.stats.error(msg);
    }

    /// Reads an open (or closing) socket to `WouldBlock` and flushes it.
    fn drive_ws(&mut self, u: usize, h: &mut impl Handler, hup: bool) {
        let now = self.now_ns();
        let user = &mut self.users[u];
        let (ws, closing) = match &mut user.sock {
            Sock::Open(ws) => (ws, false),
            Sock::Closing(ws) => (ws, true),
            _ => return,
        };
        let Some(reason) = ws.drain(u, h, now, hup) else {
            return;
        };
        user.sock = Sock::None;
        self.stats.open_now -= 1;
        if closing {
            self.stats.closed += 1;
        } else {
            self.stats.unexpected_closes += 1;
            let msg = format!("user {}: socket closed unexpectedly: {reason}", user.name);
            self.stats.error(msg);
        }
    }
}
