//! What a phase of a connection works with besides its own state: the
//! byte stream, the connection's id and timer, and what to do once its
//! output is flushed; and what it answers. Below both `conn` (the phases
//! as one enum) and `ws` (the WebSocket phase), so neither imports the
//! other back.

use super::core::{Env, Timer};
use crate::ids::{ConnId, Millis};
use crate::metrics::CloseCause;
use crate::wheel::TimerId;
use std::io::{Read, Write};

/// A byte stream a connection runs over: a TCP socket, or memory.
pub trait Transport: Read + Write {
    /// Stops sending (FIN) while still reading.
    fn shutdown_write(&mut self);
}

impl Transport for mio::net::TcpStream {
    fn shutdown_write(&mut self) {
        // A peer that is already gone makes this fail; nothing to do then.
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

/// What to do once the outlet is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFlush {
    /// Carry on.
    Stay,
    /// Send FIN, then linger.
    Linger(CloseCause),
}

/// What became of a connection after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Drained to `WouldBlock`; wait for the next event.
    Idle,
    /// Stopped by the per-turn budget; serve again next turn.
    MoreReady,
    /// Close now (after queueing what is queued is dropped).
    Close(CloseCause),
}

/// A connection's parts a phase may use, borrowed beside its phase state.
pub struct Link<'a, S> {
    /// The connection's id.
    pub id: ConnId,
    /// The byte stream.
    pub sock: &'a mut S,
    /// The connection's pending timer.
    pub timer: &'a mut Option<TimerId>,
    /// What to do once the outlet is empty.
    pub after_flush: &'a mut AfterFlush,
}

impl<S> Link<'_, S> {
    /// Replaces the connection's timer with one at `deadline`.
    pub fn arm(&mut self, env: &mut Env<'_>, deadline: Millis) {
        arm(self.timer, self.id, env, deadline);
    }
}

/// Replaces the timer in `timer` (of connection `id`) with one at `deadline`.
pub fn arm(timer: &mut Option<TimerId>, id: ConnId, env: &mut Env<'_>, deadline: Millis) {
    if let Some(old) = timer.take() {
        env.wheel.cancel(old);
    }
    *timer = Some(env.wheel.insert(deadline, Timer::Conn(id)));
}
