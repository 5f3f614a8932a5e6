//! The event loop: the only code that touches mio, sockets, signals or the
//! clock. One thread, one `Poll`; every timeout comes from one timer wheel.
//!
//! A turn: poll (timeout = the next deadline, zero while connections wait
//! for their share), read the clock once, handle the events, serve the
//! connections the read budget cut short last turn, fire the timers, then
//! before sleeping: close what must close (telling the chat, which may
//! queue `leave` frames), and flush every outlet with new output once.

mod accept;
pub mod conn;
mod core;
pub mod fanout;
pub mod outlet;
mod persist;
pub mod ws;

use crate::chat::{Chat, ChatConfig};
use crate::config::{Config, LogLevel};
use crate::ids::{ConnId, Millis};
use crate::log::Logger;
use crate::metrics::{CloseCause, Metrics};
use crate::store::Store;
use crate::wheel::Wheel;
use conn::{AfterFlush, Conn, Phase, Step};
pub use core::Core;
use fanout::Fanout;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use outlet::Accepts;
pub use persist::Held;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);

/// Connections beyond the limit that are still accepted just to be told
/// 503 `server_busy`; past these, new connections are closed at once.
const BUSY_RESERVE: usize = 64;

/// File descriptors kept for the listener, the database, the poll and
/// signal pipes, and logs, below the open-file limit.
const FD_RESERVE: usize = 32;

/// After `accept` fails for lack of file descriptors, try again this much
/// later (not at once: the listener would spin).
const ACCEPT_BACKOFF: Millis = Millis(100);

/// What a server timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// A connection's deadline (its phase knows which).
    Conn(ConnId),
    /// Accepting paused after running out of file descriptors.
    ResumeAccept,
    /// The shutdown grace period is over.
    ShutdownDeadline,
    /// Write sessions' last activity to the database.
    SessionFlush,
    /// Delete a batch of messages past the retention limits.
    Prune,
}

/// What a connection is, for the open-connection gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    /// Still HTTP (or lingering after it).
    Http,
    /// A chat WebSocket.
    Chat,
    /// An `/echo` WebSocket.
    Echo,
}

/// Everything a connection's handlers may use during one event.
pub struct Env<'a> {
    /// Settings.
    pub cfg: &'a Config,
    /// The chat state.
    pub chat: &'a mut Chat,
    /// The database.
    pub store: &'a mut Store,
    /// Counters.
    pub metrics: &'a mut Metrics,
    /// The server's timer wheel.
    pub wheel: &'a mut Wheel<Timer>,
    /// Every connection's outlet.
    pub fan: Fanout<'a>,
    /// The logger.
    pub log: &'a Logger,
    /// This turn's time.
    pub now: Millis,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// A read buffer shared by all connections.
    pub scratch: &'a mut [u8],
    /// A note for the next access-log line.
    pub note: Option<String>,
    /// What of this turn stands only if its commit succeeds (a write that
    /// failed, replays, held responses).
    pub held: &'a mut Held,
}

/// A start-up failure: one line, and exit code 2.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The shared state at start-up, with what the database brings back, and
/// the `Millis` it starts at. Not zero: sessions and `client_id`s restored
/// at start-up have times before it, and `Millis` cannot go negative.
fn start_core(cfg: Config, store: Store, log: Logger) -> Result<(Core, Millis), StartError> {
    let base = Millis::of(cfg.session_ttl) + Millis::of(cfg.dedupe_window) + Millis(1000);
    let unix_now = persist::unix_ms_now();
    let chat = Chat::new(
        ChatConfig::from_config(&cfg),
        base,
        unix_now - base.0 as i64,
    );
    let mut wheel = Wheel::new(base);
    wheel.insert(base + cfg.session_flush, Timer::SessionFlush);
    wheel.insert(base, Timer::Prune);
    let mut core = Core::new(cfg, chat, store, wheel, log);
    persist::restore(&mut core, base, unix_now).map_err(|e| StartError(e.to_string()))?;
    Ok((core, base))
}

/// The server: a bound listener and everything the loop owns.
pub struct Server {
    poll: Poll,
    events: Events,
    listener: Option<TcpListener>,
    /// The listener while accepting is paused for lack of descriptors.
    paused_listener: Option<TcpListener>,
    local_addr: SocketAddr,
    signals: Signals,
    core: Core,
    conns: Vec<Option<Conn<TcpStream>>>,
    free: Vec<usize>,
    open: usize,
    max_conns: usize,
    ready: Vec<ConnId>,
    closing: Vec<(ConnId, CloseCause)>,
    fired: Vec<Timer>,
    shutting_down: bool,
    deadline_passed: bool,
    /// When the loop started, and the `Millis` it started at.
    start: Instant,
    base: Millis,
    /// Session activity is due to be written at the end of this turn.
    flush_sessions: bool,
}

impl Server {
    /// Binds the listener and prepares the loop.
    pub fn bind(cfg: Config, store: Store, log: Logger) -> Result<Server, StartError> {
        let fail = |what: &str, e: io::Error| StartError(format!("{what}: {e}"));
        let poll = Poll::new().map_err(|e| fail("cannot create the event loop", e))?;
        let mut listener = TcpListener::bind(cfg.listen)
            .map_err(|e| fail(&format!("cannot listen on {}", cfg.listen), e))?;
        let local_addr = listener.local_addr().map_err(|e| fail("listener", e))?;
        let registry = poll.registry();
        registry
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| fail("poll", e))?;
        let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(|e| fail("signals", e))?;
        registry
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| fail("poll", e))?;
        let max_conns = accept::fit_to_fd_limit(cfg.max_connections, &log);
        let (core, base) = start_core(cfg, store, log)?;
        Ok(Server {
            poll,
            events: Events::with_capacity(1024),
            listener: Some(listener),
            paused_listener: None,
            local_addr,
            signals,
            core,
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            max_conns,
            ready: Vec::new(),
            closing: Vec::new(),
            fired: Vec::new(),
            shutting_down: false,
            deadline_passed: false,
            start: Instant::now(),
            base,
            flush_sessions: false,
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn now(&self) -> Millis {
        self.base + self.start.elapsed()
    }

    /// Runs until SIGTERM/SIGINT and the graceful shutdown are done.
    pub fn run(mut self) -> io::Result<()> {
        let mut tokens: Vec<(Token, bool, bool)> = Vec::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout(self.now());
            match self.poll.poll(&mut self.events, timeout) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                Ok(()) => {}
            }
            let now = self.now();
            // Readiness is a hint: copy it out, then act on it.
            tokens.clear();
            tokens.extend(self.events.iter().map(|e| {
                (
                    e.token(),
                    e.is_readable() || e.is_read_closed() || e.is_error(),
                    e.is_writable(),
                )
            }));
            for &(token, readable, writable) in &tokens {
                self.dispatch(token, readable, writable, now);
            }
            self.serve_ready(now);
            self.fire_timers(now);
            self.before_sleep(now);
            if self.shutting_down && (self.open == 0 || self.deadline_passed) {
                break;
            }
        }
        self.finish()
    }

    fn poll_timeout(&self, now: Millis) -> Option<Duration> {
        if !self.ready.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = [
            self.core.wheel.next_deadline(),
            self.core.chat.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(Duration::from_millis(next.saturating_sub(now).0))
    }

    fn dispatch(&mut self, token: Token, readable: bool, writable: bool, now: Millis) {
        match token {
            LISTENER => self.accept(now),
            SIGNALS => {
                if self.signals.pending().next().is_some() {
                    self.begin_shutdown(now);
                }
            }
            Token(t) => {
                let id = ConnId(t as u64);
                if !self.is_live(id) {
                    return;
                }
                if writable && !self.core.outlets[id.slot()].is_empty() {
                    self.core.mark_dirty(id.slot());
                }
                if readable {
                    self.serve(id, now);
                }
            }
        }
    }

    fn is_live(&self, id: ConnId) -> bool {
        let slot = id.slot();
        self.core.generations.get(slot) == Some(&id.generation())
            && self.conns.get(slot).is_some_and(Option::is_some)
    }

    /// Reads from a connection and acts on what it read.
    fn serve(&mut self, id: ConnId, now: Millis) {
        let Some(conn) = self.conns[id.slot()].as_mut() else {
            return;
        };
        let mut env = self.core.env(now);
        let step = conn.on_readable(&mut env);
        self.after_step(id, step);
    }

    fn after_step(&mut self, id: ConnId, step: Step) {
        match step {
            Step::Idle => {}
            Step::MoreReady => self.ready.push(id),
            Step::Close(cause) => self.closing.push((id, cause)),
        }
        let closing = self.conns[id.slot()]
            .as_ref()
            .is_some_and(|c| c.after_flush != AfterFlush::Stay);
        if closing {
            // The flush step acts on `after_flush`, even with nothing queued.
            self.core.mark_dirty(id.slot());
        }
    }

    fn serve_ready(&mut self, now: Millis) {
        let ready = std::mem::take(&mut self.ready);
        for id in ready {
            if self.is_live(id) {
                self.serve(id, now);
            }
        }
    }
}

impl Server {
    fn fire_timers(&mut self, now: Millis) {
        let mut fired = std::mem::take(&mut self.fired);
        self.core.wheel.advance(now, &mut fired);
        for timer in fired.drain(..) {
            match timer {
                Timer::Conn(id) => self.conn_timer(id, now),
                Timer::ResumeAccept => self.resume_accept(now),
                Timer::ShutdownDeadline => self.deadline_passed = true,
                Timer::SessionFlush => {
                    self.flush_sessions = true;
                    let next = now + self.core.cfg.session_flush;
                    self.core.wheel.insert(next, Timer::SessionFlush);
                }
                Timer::Prune => persist::prune(&mut self.core, now),
            }
        }
        self.fired = fired;
        self.core.chat.handle_timeouts(now);
    }

    fn conn_timer(&mut self, id: ConnId, now: Millis) {
        if !self.is_live(id) {
            return;
        }
        let conn = self.conns[id.slot()].as_mut().expect("live");
        let mut env = self.core.env(now);
        let step = conn.on_timer(&mut env);
        self.after_step(id, step);
    }

    /// SIGTERM/SIGINT: stop accepting, finish responses in flight, close
    /// every WebSocket with 1001, and give it all `shutdown_grace`.
    fn begin_shutdown(&mut self, now: Millis) {
        if std::mem::replace(&mut self.shutting_down, true) {
            return;
        }
        self.core.log.log(
            LogLevel::Info,
            format_args!(
                "shutting down: {} connection{} open",
                self.open,
                if self.open == 1 { "" } else { "s" }
            ),
        );
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.paused_listener = None;
        let deadline = now + self.core.cfg.shutdown_grace;
        self.core.wheel.insert(deadline, Timer::ShutdownDeadline);
        for slot in 0..self.conns.len() {
            let Some(conn) = self.conns[slot].as_mut() else {
                continue;
            };
            let id = conn.id;
            let mut env = self.core.env(now);
            match conn.phase {
                Phase::Http(_) => conn.after_flush = AfterFlush::Linger(CloseCause::Shutdown),
                Phase::Ws(_) => ws::start_close(conn, 1001, "going away", &mut env),
                Phase::Linger => {}
            }
            self.after_step(id, Step::Idle);
        }
    }

    /// Before sleeping: apply what the turn asked for (close requests, slow
    /// consumers, closes), then write every outlet with new output. The
    /// `leave`s of the sockets closed go out after the closes, as one batch
    /// to the sockets still open; they may push another over its limit, so
    /// this settles in rounds until nothing is left.
    fn before_sleep(&mut self, now: Millis) {
        let flush_sessions = std::mem::take(&mut self.flush_sessions);
        for id in self.core.end_turn(flush_sessions) {
            // Acked but not stored: nothing it has queued may be written.
            if self.is_live(id) {
                self.core.outlets[id.slot()].clear();
                self.closing.push((id, CloseCause::Error));
            }
        }
        loop {
            let dirty = std::mem::take(&mut self.core.dirty);
            for &slot in &dirty {
                self.apply_flags(slot, now);
            }
            while let Some((id, cause)) = self.closing.pop() {
                self.close_conn(id, cause, now);
            }
            // The `leave`s of every socket closed so far, to the ones
            // still open, once: not to those closed in this same turn.
            let mut env = self.core.env(now);
            env.chat.flush_leaves(&mut env.fan);
            // Replies first (HTTP responses, the 101, acks, control
            // frames), then the outlets holding only broadcasts: a reply is
            // a round trip its client waits on, and writing the turn's
            // presence and chat frames to everyone else before it would
            // hold that up (about 1.5 ms per 500 sockets). Flushing clears
            // `dirty`, so the second pass skips what the first wrote.
            for &slot in &dirty {
                if self.core.outlets[slot].urgent {
                    self.flush(slot, now);
                }
            }
            for &slot in &dirty {
                if self.core.outlets[slot].dirty {
                    self.flush(slot, now);
                }
            }
            if self.core.dirty.is_empty() && self.closing.is_empty() {
                return;
            }
        }
    }

    fn apply_flags(&mut self, slot: usize, now: Millis) {
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        let outlet = &mut self.core.outlets[slot];
        if outlet.overflow {
            self.closing.push((conn.id, CloseCause::SlowConsumer));
        } else if let Some((code, reason)) = outlet.close_request.take() {
            let mut env = self.core.env(now);
            ws::start_close(conn, code, reason, &mut env);
        }
    }

    /// Writes the outlet of `slot` once (until the socket would block).
    fn flush(&mut self, slot: usize, now: Millis) {
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        let outlet = &mut self.core.outlets[slot];
        outlet.dirty = false;
        outlet.urgent = false;
        if outlet.overflow {
            return;
        }
        let id = conn.id;
        match outlet.write_to(&mut conn.sock) {
            Ok(n) => self.core.metrics.bytes_out += n as u64,
            Err(_) => return self.closing.push((id, CloseCause::Peer)),
        }
        if !self.core.outlets[slot].is_empty() {
            // The socket is full; its writable event brings us back.
            return;
        }
        let mut env = self.core.env(now);
        let step = conn.on_flushed(&mut env);
        let resume = matches!(&conn.phase, Phase::Http(h) if h.paused);
        if resume {
            // Parsing stopped while the output was full; it is empty now.
            self.ready.push(id);
        }
        self.after_step(id, step);
    }

    /// Ends connection `id` now: the chat hears of it, its timer and
    /// registration go, and its slot is free for a new generation.
    fn close_conn(&mut self, id: ConnId, cause: CloseCause, now: Millis) {
        if !self.is_live(id) {
            return;
        }
        let slot = id.slot();
        let mut conn = self.conns[slot].take().expect("live");
        let mut env = self.core.env(now);
        ws::closed(&mut conn, &mut env);
        conn.disarm(&mut env);
        let m = &mut self.core.metrics;
        m.closed(conn.closing_cause.unwrap_or(cause));
        match conn.kind {
            ConnKind::Http => m.open_http -= 1,
            ConnKind::Chat => m.open_ws -= 1,
            ConnKind::Echo => m.open_echo -= 1,
        }
        let _ = self.poll.registry().deregister(&mut conn.sock);
        let outlet = &mut self.core.outlets[slot];
        outlet.clear();
        outlet.accepts = Accepts::Nothing;
        outlet.overflow = false;
        outlet.close_request = None;
        // A stale id (in a timer or the ready list) can never reach the
        // slot's next connection.
        self.core.generations[slot] = self.core.generations[slot].wrapping_add(1);
        self.free.push(slot);
        self.open -= 1;
    }

    fn finish(mut self) -> io::Result<()> {
        let now = self.now();
        let ids: Vec<ConnId> = self.conns.iter().flatten().map(|c| c.id).collect();
        for id in ids {
            self.close_conn(id, CloseCause::Shutdown, now);
        }
        self.core.end_turn(true);
        let Core { store, log, .. } = self.core;
        match store.close() {
            Ok(()) => log.log(LogLevel::Info, format_args!("stopped")),
            Err(e) => log.log(LogLevel::Error, format_args!("closing the database: {e}")),
        }
        Ok(())
    }
}
