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
pub mod link;
pub mod outlet;
mod persist;
pub mod sse;
pub mod turn;
pub mod ws;

use crate::chat::{Chat, ChatConfig};
use crate::config::{Config, LogLevel};
use crate::ids::{ConnId, Millis};
use crate::log::Logger;
use crate::store::Store;
use crate::wheel::Wheel;
use accept::LISTENER;
pub use core::{ConnKind, Core, Env, Held, READ_BUDGET, Timer};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
pub use turn::Turn;

/// The signal pipe's token (the listener's is [`LISTENER`]).
const SIGNALS: Token = Token(usize::MAX - 1);

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
    turn: Turn<TcpStream>,
    max_conns: usize,
    /// Server timers the turn fired (accepting, shutdown).
    fired: Vec<Timer>,
    shutting_down: bool,
    deadline_passed: bool,
    /// When the loop started, and the `Millis` it started at.
    start: Instant,
    base: Millis,
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
            turn: Turn::new(core),
            max_conns,
            fired: Vec::new(),
            shutting_down: false,
            deadline_passed: false,
            start: Instant::now(),
            base,
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
            self.turn.serve_ready(now);
            self.fire_timers(now);
            let registry = self.poll.registry();
            self.turn.before_sleep(now, &mut |mut sock| {
                let _ = registry.deregister(&mut sock);
            });
            if self.shutting_down && (self.turn.open() == 0 || self.deadline_passed) {
                break;
            }
        }
        self.finish()
    }

    fn poll_timeout(&self, now: Millis) -> Option<Duration> {
        if self.turn.has_ready() {
            return Some(Duration::ZERO);
        }
        let core = &self.turn.core;
        let next = [core.wheel.next_deadline(), core.chat.next_deadline()]
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
            Token(t) => self.turn.event(ConnId(t as u64), readable, writable, now),
        }
    }
}

impl Server {
    fn fire_timers(&mut self, now: Millis) {
        let mut fired = std::mem::take(&mut self.fired);
        self.turn.fire_timers(now, &mut fired);
        for timer in fired.drain(..) {
            match timer {
                Timer::ResumeAccept => self.resume_accept(now),
                Timer::ShutdownDeadline => self.deadline_passed = true,
                _ => unreachable!("the turn fires {timer:?}"),
            }
        }
        self.fired = fired;
    }

    /// SIGTERM/SIGINT: stop accepting, finish responses in flight, close
    /// every WebSocket with 1001, and give it all `shutdown_grace`.
    fn begin_shutdown(&mut self, now: Millis) {
        if std::mem::replace(&mut self.shutting_down, true) {
            return;
        }
        let open = self.turn.open();
        self.turn.core.log.log(
            LogLevel::Info,
            format_args!(
                "shutting down: {open} connection{} open",
                if open == 1 { "" } else { "s" }
            ),
        );
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.paused_listener = None;
        let deadline = now + self.turn.core.cfg.shutdown_grace;
        self.turn
            .core
            .wheel
            .insert(deadline, Timer::ShutdownDeadline);
        self.turn.shut_down(now);
    }

    fn finish(self) -> io::Result<()> {
        let now = self.now();
        let registry = self.poll.registry();
        let core = self.turn.finish(now, &mut |mut sock| {
            let _ = registry.deregister(&mut sock);
        });
        let Core { store, log, .. } = core;
        match store.close() {
            Ok(()) => log.log(LogLevel::Info, format_args!("stopped")),
            Err(e) => log.log(LogLevel::Error, format_args!("closing the database: {e}")),
        }
        Ok(())
    }
}
