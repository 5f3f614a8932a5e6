//! One connection: its phase (HTTP → WebSocket → lingering close), what it
//! does with readable bytes, and its single timer. Generic over the byte
//! stream, so the fuzzer drives the same code over memory.

use super::core::{ConnKind, Env, READ_BUDGET};
use super::link::{self, AfterFlush, Link, Step, Transport};
use super::outlet::Accepts;
use super::sse::{self, Framing, StreamState};
use super::ws::{self, WsState};
use crate::api::{self, Ctx, Routed};
use crate::chat::Authed;
use crate::config::LogLevel;
use crate::http::{self, HttpError, Limits, Method, Parsed, Request, Response};
use crate::ids::{ConnId, Millis};
use crate::log::escape;
use crate::metrics::CloseCause;
use crate::wheel::TimerId;
use std::io;
use std::net::SocketAddr;

/// HTTP output queued past which no further pipelined request is parsed
/// until the client has read some.
const HTTP_PAUSE_OUTPUT: usize = 256 * 1024;

/// Request buffer capacity an idle keep-alive connection keeps.
const KEEP_REQUEST_BUFFER: usize = 4 * 1024;

/// How long a closing connection waits for the peer's EOF after our FIN.
const LINGER: Millis = Millis(2_000);

/// Where an HTTP connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Between requests (idle deadline).
    Idle,
    /// A request head is arriving (head deadline).
    Head,
    /// The head is in, the body is arriving (body deadline).
    Body,
}

/// Why reading a request stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadStop {
    /// The socket is drained; the next event brings more.
    WouldBlock,
    /// The peer is done sending.
    Eof,
    /// The socket failed.
    Error,
    /// The request buffer is at its cap.
    Full,
    /// Parsing is paused until the output drains.
    Paused,
    /// This turn's read budget is spent.
    Budget,
}

/// State of the HTTP phase.
#[derive(Debug)]
pub(super) struct HttpState {
    buf: Vec<u8>,
    stage: Stage,
    continue_sent: bool,
    /// Parsing stopped because the output queue is full.
    pub paused: bool,
    started: Millis,
}

/// The phases; each owns what it needs.
pub(super) enum Phase {
    /// Reading requests, writing responses.
    Http(HttpState),
    /// An upgraded WebSocket.
    Ws(Box<WsState>),
    /// An event stream: the response to `GET /api/events`, still going.
    Stream(Box<StreamState>),
    /// Our FIN is sent; input is read and dropped until the peer's EOF, so
    /// that closing with unread input never resets the connection (which
    /// could destroy the last response before the peer read it).
    Linger,
}

/// One connection.
pub struct Conn<S> {
    /// Its id (slot and generation).
    pub id: ConnId,
    /// The byte stream.
    pub sock: S,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The phase.
    pub(super) phase: Phase,
    /// Its pending timer, if any.
    pub(super) timer: Option<TimerId>,
    /// What to do once the outlet is empty.
    pub(super) after_flush: AfterFlush,
    /// What it is, for the open-connection gauges.
    pub kind: ConnKind,
    /// Why it is lingering, for the closed-connection counter.
    pub(super) closing_cause: Option<CloseCause>,
}

impl<S: Transport> Conn<S> {
    /// A new connection in the HTTP phase with its head deadline armed.
    pub(super) fn new(id: ConnId, sock: S, peer: SocketAddr, env: &mut Env<'_>) -> Self {
        let http = HttpState {
            buf: Vec::new(),
            stage: Stage::Head,
            continue_sent: false,
            paused: false,
            started: env.now,
        };
        let mut conn = Conn {
            id,
            sock,
            peer,
            phase: Phase::Http(http),
            timer: None,
            after_flush: AfterFlush::Stay,
            kind: ConnKind::Http,
            closing_cause: None,
        };
        conn.arm(env, env.now + env.cfg.head_timeout);
        conn
    }

    /// Replaces this connection's timer with one at `deadline`.
    pub(super) fn arm(&mut self, env: &mut Env<'_>, deadline: Millis) {
        link::arm(&mut self.timer, self.id, env, deadline);
    }

    /// The phase, and beside it what a phase works with.
    fn split(&mut self) -> (&mut Phase, Link<'_, S>) {
        let link = Link {
            id: self.id,
            sock: &mut self.sock,
            timer: &mut self.timer,
            after_flush: &mut self.after_flush,
        };
        (&mut self.phase, link)
    }

    /// The one place the phase changes for good: what the outlet accepts
    /// and the open-connection gauges follow it. (Lingering keeps both:
    /// nothing is queued any more, and the gauge is the kind it was.)
    fn set_phase(&mut self, phase: Phase, env: &mut Env<'_>) {
        if let Phase::Stream(stream) = &phase {
            if let Some(out) = env.fan.outlet(self.id) {
                out.accepts = stream.accepts();
            }
            env.metrics.open_http -= 1;
            env.metrics.open_streams += 1;
            self.kind = ConnKind::Stream;
        }
        if let Phase::Ws(ws) = &phase {
            if let Some(out) = env.fan.outlet(self.id) {
                out.accepts = Accepts::Frames;
            }
            env.metrics.open_http -= 1;
            self.kind = if ws.is_chat() {
                env.metrics.open_ws += 1;
                ConnKind::Chat
            } else {
                env.metrics.open_echo += 1;
                ConnKind::Echo
            };
        }
        self.phase = phase;
    }

    /// Answers the upgrade with 101 and switches to the WebSocket phase;
    /// `leftover` holds bytes that came after the request head.
    fn upgrade(
        &mut self,
        leftover: Vec<u8>,
        accept: &str,
        chat: Option<Authed>,
        since: Option<i64>,
        env: &mut Env<'_>,
    ) {
        let is_chat = chat.is_some();
        let out = env.fan.outlet(self.id).expect("the connection is live");
        ws::push_switching(out, accept, is_chat, env.cfg.max_output_bytes);
        let user = chat.as_ref().map(|a| a.name.clone());
        let state = WsState::new(leftover, user, env);
        self.set_phase(Phase::Ws(Box::new(state)), env);
        let (Phase::Ws(ws), mut link) = self.split() else {
            unreachable!("just upgraded")
        };
        ws.opened(&mut link, chat, since, env);
    }

    /// Starts a WebSocket's closing handshake, or ends a stream's body (a
    /// close request, shutdown).
    pub(super) fn start_close(&mut self, code: u16, reason: &'static str, env: &mut Env<'_>) {
        match self.split() {
            (Phase::Ws(ws), mut link) => ws.start_close(&mut link, code, reason, env),
            (Phase::Stream(stream), mut link) => {
                let cause = if code == 1001 {
                    CloseCause::Shutdown
                } else {
                    CloseCause::Done
                };
                stream.end(&mut link, reason, cause, env);
            }
            _ => {}
        }
    }

    /// Answers `GET /api/events` with the head of an event stream and
    /// switches to the stream phase.
    fn start_stream(
        &mut self,
        authed: Authed,
        since: Option<i64>,
        framing: Framing,
        env: &mut Env<'_>,
    ) {
        let out = env.fan.outlet(self.id).expect("the connection is live");
        out.push_copy(sse::head(framing));
        let state = StreamState::new(authed.name.clone(), framing);
        self.set_phase(Phase::Stream(Box::new(state)), env);
        let (Phase::Stream(stream), mut link) = self.split() else {
            unreachable!("just switched")
        };
        stream.opened(&mut link, authed, since, env);
    }

    /// A WebSocket's chat life is over (if it was one, and not yet).
    pub(super) fn ws_closed(&mut self, env: &mut Env<'_>) {
        match &mut self.phase {
            Phase::Ws(ws) => ws.closed(self.id, env),
            Phase::Stream(stream) => stream.closed(self.id, env),
            _ => {}
        }
    }

    /// Cancels this connection's timer.
    pub(super) fn disarm(&mut self, env: &mut Env<'_>) {
        if let Some(old) = self.timer.take() {
            env.wheel.cancel(old);
        }
    }

    /// The socket is readable (or a turn's budget ran out last time).
    pub(super) fn on_readable(&mut self, env: &mut Env<'_>) -> Step {
        match self.split() {
            (Phase::Http(_), _) => self.http_readable(env),
            (Phase::Ws(ws), mut link) => ws.readable(&mut link, env),
            (Phase::Stream(stream), mut link) => stream.readable(&mut link, env),
            (Phase::Linger, _) => self.linger_readable(env),
        }
    }

    /// This connection's timer fired.
    pub(super) fn on_timer(&mut self, env: &mut Env<'_>) -> Step {
        self.timer = None;
        match self.split() {
            // Slowloris, a stalled body, or an idle keep-alive connection:
            // close without a response.
            (Phase::Http(_) | Phase::Linger, _) => Step::Close(CloseCause::Timeout),
            (Phase::Ws(ws), mut link) => ws.on_timer(&mut link, env),
            (Phase::Stream(stream), mut link) => stream.on_timer(&mut link, env),
        }
    }

    /// The outlet is empty: act on `after_flush`.
    pub(super) fn on_flushed(&mut self, env: &mut Env<'_>) -> Step {
        match self.after_flush {
            AfterFlush::Stay => Step::Idle,
            AfterFlush::Linger(cause) => {
                self.after_flush = AfterFlush::Stay;
                self.ws_closed(env);
                self.closing_cause = Some(cause);
                self.sock.shutdown_write();
                self.set_phase(Phase::Linger, env);
                self.arm(env, env.now + LINGER);
                self.linger_readable(env)
            }
        }
    }

    fn linger_readable(&mut self, env: &mut Env<'_>) -> Step {
        let mut budget = READ_BUDGET;
        loop {
            match self.sock.read(env.scratch) {
                Ok(0) => return Step::Close(CloseCause::Done),
                Ok(n) if n >= budget => return Step::MoreReady,
                Ok(n) => budget -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Idle,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Step::Close(CloseCause::Done),
            }
        }
    }

    /// Reads and answers requests until the socket would block, the
    /// peer is done, output is paused or the turn's budget is spent.
    /// Readiness is edge-triggered: a connection that stops for any other
    /// reason (a full buffer) must not wait for an event, since none comes
    /// for bytes already in the socket.
    fn http_readable(&mut self, env: &mut Env<'_>) -> Step {
        let mut budget = READ_BUDGET;
        loop {
            let stop = self.http_read(&mut budget, env);
            if stop == ReadStop::Error {
                return Step::Close(CloseCause::Peer);
            }
            let step = self.process_http(env);
            if step != Step::Idle {
                return step;
            }
            let Phase::Http(http) = &self.phase else {
                return Step::Idle;
            };
            if self.after_flush != AfterFlush::Stay || http.paused {
                // Closing ignores further input; a paused connection is put
                // back on the ready list when its output drains.
                return Step::Idle;
            }
            match stop {
                ReadStop::WouldBlock => return Step::Idle,
                // The peer is gone, or at least done sending; what it sent
                // is answered, then the connection closes.
                ReadStop::Eof => {
                    self.after_flush = AfterFlush::Linger(CloseCause::Peer);
                    return Step::Idle;
                }
                ReadStop::Budget => return Step::MoreReady,
                ReadStop::Error => unreachable!("closed above"),
                ReadStop::Full if http.buf.len() >= limits(env).max_request_bytes() => {
                    // The parser answers or refuses a full buffer; never
                    // spin on one it left as it was.
                    debug_assert!(false, "a full request buffer was left unparsed");
                    return Step::Idle;
                }
                ReadStop::Full | ReadStop::Paused if budget == 0 => return Step::MoreReady,
                // Parsing made room (or resumed): read on.
                ReadStop::Full | ReadStop::Paused => {}
            }
        }
    }

    /// Reads into the request buffer until it is full, the socket would
    /// block, the peer is done or `budget` is spent.
    fn http_read(&mut self, budget: &mut usize, env: &mut Env<'_>) -> ReadStop {
        let cap = limits(env).max_request_bytes();
        let Phase::Http(http) = &mut self.phase else {
            unreachable!("checked by caller")
        };
        loop {
            if http.paused {
                return ReadStop::Paused;
            }
            if http.buf.len() >= cap {
                return ReadStop::Full;
            }
            if *budget == 0 {
                return ReadStop::Budget;
            }
            let room = (cap - http.buf.len()).min(env.scratch.len());
            match self.sock.read(&mut env.scratch[..room]) {
                Ok(0) => return ReadStop::Eof,
                Ok(n) => {
                    env.metrics.bytes_in += n as u64;
                    http.buf.extend_from_slice(&env.scratch[..n]);
                    *budget = budget.saturating_sub(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadStop::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return ReadStop::Error,
            }
        }
    }

    /// Parses and answers every complete request in the buffer, in order.
    pub(super) fn process_http(&mut self, env: &mut Env<'_>) -> Step {
        let limits = limits(env);
        loop {
            let Phase::Http(http) = &mut self.phase else {
                return Step::Idle;
            };
            if self.after_flush != AfterFlush::Stay {
                // Closing after the current response: ignore what follows.
                http.buf.clear();
                return Step::Idle;
            }
            if http.stage == Stage::Idle && !http.buf.is_empty() {
                // A new request starts with its first byte, not at the end
                // of the previous one (keep-alive idle time is not its own).
                http.started = env.now;
            }
            let queued = env.fan.outlets[self.id.slot()].queued();
            http.paused = queued > HTTP_PAUSE_OUTPUT;
            if http.paused {
                return Step::Idle;
            }
            match http::parse_request(&http.buf, &limits) {
                Ok(Parsed::Complete(req, used)) => {
                    http.buf.drain(..used);
                    self.respond(req, env);
                    if !matches!(self.phase, Phase::Http(_)) {
                        // Bytes after the upgrade belong to the WebSocket
                        // (a stream's end may be among them): serve them
                        // next turn.
                        return Step::MoreReady;
                    }
                }
                Ok(Parsed::Partial {
                    head_done,
                    expect_continue,
                }) => {
                    self.partial(head_done, expect_continue, env);
                    return Step::Idle;
                }
                Err(e) => {
                    self.refuse(e, env);
                    return Step::Idle;
                }
            }
        }
    }

    /// An incomplete request: move the stage (and its deadline) along.
    fn partial(&mut self, head_done: bool, expect_continue: bool, env: &mut Env<'_>) {
        let Phase::Http(http) = &mut self.phase else {
            return;
        };
        let (stage, timeout) = match (http.buf.is_empty(), head_done) {
            (true, _) => (Stage::Idle, env.cfg.idle_timeout),
            (false, false) => (Stage::Head, env.cfg.head_timeout),
            (false, true) => (Stage::Body, env.cfg.body_timeout),
        };
        let send_continue = expect_continue && !http.continue_sent;
        if stage != http.stage {
            http.stage = stage;
            if stage == Stage::Head {
                http.started = env.now;
            }
            self.arm(env, env.now + timeout);
        }
        if send_continue {
            let Phase::Http(http) = &mut self.phase else {
                return;
            };
            http.continue_sent = true;
            if let Some(o) = env.fan.outlet(self.id) {
                o.push_copy(http::CONTINUE);
            }
        }
    }

    /// Malformed or oversized input: the error response, then close.
    fn refuse(&mut self, e: HttpError, env: &mut Env<'_>) {
        if let HttpError::BadRequest(why) = e {
            env.note = Some(why.to_string());
        }
        let resp = e.response();
        self.send(&resp, http::Version::Http11, false, false, env);
        self.log_access("-", "-", resp.status, env);
        self.after_flush = AfterFlush::Linger(CloseCause::Protocol);
    }

    /// Queues `resp`; returns whether the connection stays open.
    fn send(
        &mut self,
        resp: &Response,
        v: http::Version,
        head: bool,
        keep: bool,
        env: &mut Env<'_>,
    ) {
        let mut bytes = Vec::with_capacity(resp.body.len() + 256);
        resp.write_to(v, head, keep && !resp.close, &mut bytes);
        env.metrics.response(resp.status);
        if let Some(o) = env.fan.outlet(self.id) {
            o.push_owned(bytes);
        }
    }

    /// Queues `resp` held until the turn's commit, and the 503 that takes
    /// its place should the commit fail (same framing, so a pipelined
    /// client reads the next response where it expects it).
    fn send_held(
        &mut self,
        resp: &Response,
        v: http::Version,
        head: bool,
        keep: bool,
        env: &mut Env<'_>,
    ) {
        let render = |r: &Response| {
            let mut bytes = Vec::with_capacity(r.body.len() + 256);
            r.write_to(v, head, keep, &mut bytes);
            bytes
        };
        let held: std::rc::Rc<[u8]> = render(resp).into();
        let fallback = render(&api::storage_unavailable());
        env.metrics.response(resp.status);
        if let Some(o) = env.fan.outlet(self.id) {
            o.push_held(&held);
            env.held.responses.push((self.id, held, fallback));
        }
    }

    fn respond(&mut self, req: Request, env: &mut Env<'_>) {
        let mut ctx = Ctx {
            cfg: env.cfg,
            chat: env.chat,
            store: env.store,
            metrics: &*env.metrics,
            uptime_secs: env.uptime_secs,
            now: env.now,
            out: &mut env.fan,
            note: None,
            client: self.peer.ip(),
            write_failed: false,
        };
        let (routed, client) = api::handle(&req, self.peer.ip(), &mut ctx);
        env.note = ctx.note.take();
        env.held.failed |= ctx.write_failed;
        let client = client.to_string();
        match routed {
            Routed::Respond(resp) => {
                let keep = req.keep_alive && !resp.close;
                self.send(&resp, req.version, req.method == Method::Head, keep, env);
                self.log_access(&client, &request_line(&req), resp.status, env);
                self.after_request(keep, env);
            }
            Routed::AfterCommit(resp) => {
                let keep = req.keep_alive && !resp.close;
                let head = req.method == Method::Head;
                self.send_held(&resp, req.version, head, keep, env);
                self.log_access(&client, &request_line(&req), resp.status, env);
                self.after_request(keep, env);
            }
            Routed::Stream { chat, since } => {
                env.metrics.response(200);
                self.log_access(&client, &request_line(&req), 200, env);
                let framing = match req.version {
                    http::Version::Http10 => Framing::Plain,
                    _ => Framing::Chunked,
                };
                self.start_stream(chat, since, framing, env);
            }
            Routed::Upgrade {
                accept,
                chat,
                since,
            } => {
                env.metrics.response(101);
                self.log_access(&client, &request_line(&req), 101, env);
                // Taken out only to move its buffer into the WebSocket
                // phase, which `upgrade` puts in its place.
                let Phase::Http(http) = std::mem::replace(&mut self.phase, Phase::Linger) else {
                    unreachable!("respond runs in the HTTP phase")
                };
                self.upgrade(http.buf, &accept, chat, since, env);
            }
        }
    }

    fn after_request(&mut self, keep: bool, env: &mut Env<'_>) {
        if !keep {
            self.after_flush = AfterFlush::Linger(CloseCause::Done);
            return;
        }
        let Phase::Http(http) = &mut self.phase else {
            return;
        };
        http.continue_sent = false;
        if http.buf.is_empty() && http.buf.capacity() > KEEP_REQUEST_BUFFER {
            // A large request is answered: an idle keep-alive connection
            // does not hold on to its buffer.
            http.buf = Vec::new();
        }
        // The next request's deadline starts now: as a head deadline if
        // its bytes are already here, else as the idle deadline.
        let (stage, timeout) = if http.buf.is_empty() {
            (Stage::Idle, env.cfg.idle_timeout)
        } else {
            (Stage::Head, env.cfg.head_timeout)
        };
        http.stage = stage;
        http.started = env.now;
        self.arm(env, env.now + timeout);
    }

    fn log_access(&mut self, client: &str, line: &str, status: u16, env: &mut Env<'_>) {
        if !env.log.enabled(LogLevel::Info) {
            env.note = None;
            return;
        }
        let started = match &self.phase {
            Phase::Http(h) => h.started,
            _ => env.now,
        };
        let took = env.now.saturating_sub(started).0;
        let note = env
            .note
            .take()
            .map(|n| format!(" note={}", escape(&n)))
            .unwrap_or_default();
        let client = if client == "-" {
            self.peer.ip().to_string()
        } else {
            client.to_string()
        };
        env.log.log(
            LogLevel::Info,
            format_args!("http {client} {line} {status} {took}ms{note}"),
        );
    }
}

/// `METHOD path` for the access log, with the path escaped (it is the
/// client's text).
fn request_line(req: &Request) -> String {
    format!("{} {}", req.method.as_str(), escape(req.path()))
}

fn limits(env: &Env<'_>) -> Limits {
    Limits {
        max_head_bytes: env.cfg.max_head_bytes,
        max_headers: env.cfg.max_headers,
        max_body_bytes: env.cfg.max_body_bytes,
    }
}
