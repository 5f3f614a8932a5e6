//! One turn of the loop, over any byte stream: the connection slab, the
//! still-ready and closing lists, serving a connection, firing the timers,
//! and before sleeping the commit, the closes and the urgent-first flush.
//! The server runs it over mio's sockets (and keeps the poll, the
//! listener, signals and the clock); the fuzz driver runs the very same
//! code over memory.

use super::conn::{Conn, Phase};
use super::core::{ConnKind, Core, Timer};
use super::link::{AfterFlush, Step, Transport};
use super::outlet::{Accepts, Outlet};
use super::persist;
use crate::ids::{ConnId, Millis};
use crate::metrics::CloseCause;
use std::net::SocketAddr;

/// The connections and what the turn has left to do for them.
pub struct Turn<S> {
    /// The state every connection's handlers share.
    pub core: Core,
    conns: Vec<Option<Conn<S>>>,
    free: Vec<usize>,
    open: usize,
    /// Connections the read budget cut short: served again without an event.
    ready: Vec<ConnId>,
    closing: Vec<(ConnId, CloseCause)>,
    fired: Vec<Timer>,
    /// Session activity is due to be written at the end of this turn.
    flush_sessions: bool,
}

impl<S: Transport> Turn<S> {
    /// A turn with no connections yet.
    pub fn new(core: Core) -> Turn<S> {
        Turn {
            core,
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            ready: Vec::new(),
            closing: Vec::new(),
            fired: Vec::new(),
            flush_sessions: false,
        }
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.open
    }

    /// Whether connections wait to be served without an event (the poll
    /// must not sleep then).
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The live connection `id`, if it is.
    pub fn conn(&self, id: ConnId) -> Option<&Conn<S>> {
        let conn = self.conns.get(id.slot())?.as_ref()?;
        (self.core.generations[id.slot()] == id.generation()).then_some(conn)
    }

    /// The socket of live connection `id` (a harness feeds it).
    pub fn sock_mut(&mut self, id: ConnId) -> Option<&mut S> {
        self.conn(id)?;
        self.conns[id.slot()].as_mut().map(|c| &mut c.sock)
    }

    /// A slot with an outlet that accepts `accepts` and no connection: a
    /// socket the chat may know that this turn does not serve; whoever
    /// made it takes the bytes out of its outlet. Never freed. (The fuzz
    /// driver's second client.)
    pub fn detached_slot(&mut self, accepts: Accepts) -> ConnId {
        self.conns.push(None);
        let limit = self.core.cfg.max_output_bytes;
        self.core.outlets.push(Outlet::new(limit, accepts));
        self.core.generations.push(0);
        ConnId::new(self.conns.len() - 1, 0)
    }

    /// Write the sessions' last activity in this turn's commit.
    pub fn flush_sessions(&mut self) {
        self.flush_sessions = true;
    }

    /// A new connection over `sock` in a free slot, registered by
    /// `register` under its id, then served at once (its bytes may be
    /// there already). With `busy` it is only told 503 `server_busy`.
    /// Returns `None` (and keeps nothing) when `register` fails.
    pub fn admit(
        &mut self,
        mut sock: S,
        peer: SocketAddr,
        busy: bool,
        now: Millis,
        register: impl FnOnce(&mut S, ConnId) -> std::io::Result<()>,
    ) -> Option<ConnId> {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.core.outlets.push(Outlet::new(0, Accepts::Nothing));
            self.core.generations.push(0);
            self.conns.len() - 1
        });
        let id = ConnId::new(slot, self.core.generations[slot]);
        if register(&mut sock, id).is_err() {
            self.free.push(slot);
            return None;
        }
        self.core.outlets[slot] = Outlet::new(self.core.cfg.max_output_bytes, Accepts::Http);
        self.open += 1;
        self.core.metrics.open_http += 1;
        let mut env = self.core.env(now);
        let mut conn = Conn::new(id, sock, peer, &mut env);
        if busy {
            let mut bytes = Vec::new();
            let resp = crate::http::Response::error(503, "server_busy").closing();
            resp.write_to(crate::http::Version::Http11, false, false, &mut bytes);
            env.metrics.response(503);
            env.fan.outlet(id).expect("just made").push_owned(bytes);
            conn.after_flush = AfterFlush::Linger(CloseCause::Busy);
        }
        self.conns[slot] = Some(conn);
        self.serve(id, now);
        Some(id)
    }

    /// A readiness event for connection `id` (ignored if it is stale).
    pub fn event(&mut self, id: ConnId, readable: bool, writable: bool, now: Millis) {
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

    fn is_live(&self, id: ConnId) -> bool {
        self.conn(id).is_some()
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

    /// Serves the connections the read budget cut short.
    pub fn serve_ready(&mut self, now: Millis) {
        let ready = std::mem::take(&mut self.ready);
        for id in ready {
            if self.is_live(id) {
                self.serve(id, now);
            }
        }
    }

    /// Fires the expired timers: the connections' and the storage ones
    /// here, the others (accepting, shutdown) into `others` for the loop.
    pub fn fire_timers(&mut self, now: Millis, others: &mut Vec<Timer>) {
        let mut fired = std::mem::take(&mut self.fired);
        self.core.wheel.advance(now, &mut fired);
        for timer in fired.drain(..) {
            match timer {
                Timer::Conn(id) => self.conn_timer(id, now),
                Timer::SessionFlush => {
                    self.flush_sessions = true;
                    let next = now + self.core.cfg.session_flush;
                    self.core.wheel.insert(next, Timer::SessionFlush);
                }
                Timer::Prune => persist::prune(&mut self.core, now),
                Timer::ResumeAccept | Timer::ShutdownDeadline => others.push(timer),
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

    /// Shutdown: every response in flight finishes and then closes, every
    /// WebSocket is closed with 1001.
    pub fn shut_down(&mut self, now: Millis) {
        for slot in 0..self.conns.len() {
            let Some(conn) = self.conns[slot].as_mut() else {
                continue;
            };
            let id = conn.id;
            let mut env = self.core.env(now);
            match conn.phase {
                Phase::Http(_) => conn.after_flush = AfterFlush::Linger(CloseCause::Shutdown),
                Phase::Ws(_) | Phase::Stream(_) => conn.start_close(1001, "going away", &mut env),
                Phase::Linger => {}
            }
            self.after_step(id, Step::Idle);
        }
    }

    /// Before sleeping: commit the turn's batch (a failed commit drops
    /// the sockets acked or replayed unstored rows, with their output),
    /// apply what the turn asked for (close requests, slow consumers,
    /// closes), then write every outlet with new output once. The
    /// `leave`s of the sockets closed go out after the closes, as one
    /// batch to the sockets still open; they may push another over its
    /// limit, so this settles in rounds until nothing is left. `closed`
    /// gets each closed connection's socket (to deregister it).
    pub fn before_sleep(&mut self, now: Millis, closed: &mut impl FnMut(S)) {
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
                self.close_conn(id, cause, now, closed);
            }
            // The `leave`s of every socket closed so far, to the ones
            // still open, once: not to those closed in this same turn.
            let mut env = self.core.env(now);
            env.chat.flush_presence(&mut env.fan);
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
            conn.start_close(code, reason, &mut env);
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

    /// Ends connection `id` now: the chat hears of it, its timer goes,
    /// `closed` gets its socket, and its slot is free for a new generation.
    fn close_conn(
        &mut self,
        id: ConnId,
        cause: CloseCause,
        now: Millis,
        closed: &mut impl FnMut(S),
    ) {
        if !self.is_live(id) {
            return;
        }
        let slot = id.slot();
        let mut conn = self.conns[slot].take().expect("live");
        let mut env = self.core.env(now);
        conn.ws_closed(&mut env);
        conn.disarm(&mut env);
        let m = &mut self.core.metrics;
        m.closed(conn.closing_cause.unwrap_or(cause));
        match conn.kind {
            ConnKind::Http => m.open_http -= 1,
            ConnKind::Chat => m.open_ws -= 1,
            ConnKind::Echo => m.open_echo -= 1,
            ConnKind::Stream => m.open_streams -= 1,
        }
        closed(conn.sock);
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

    /// The end: every connection closes now, the last batch is committed,
    /// and the shared state comes back.
    pub fn finish(mut self, now: Millis, closed: &mut impl FnMut(S)) -> Core {
        let ids: Vec<ConnId> = self.conns.iter().flatten().map(|c| c.id).collect();
        for id in ids {
            self.close_conn(id, CloseCause::Shutdown, now, closed);
        }
        self.core.end_turn(true);
        self.core
    }
}
