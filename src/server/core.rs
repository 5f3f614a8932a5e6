//! The state every connection's handlers share, apart from the connection
//! table, so that a connection can be borrowed mutably beside it. The event
//! loop owns one; so does the fuzz harness that drives the connection code
//! over an in-memory socket, and both hand it out as an [`Env`].

use super::fanout::Fanout;
use super::outlet::Outlet;
use crate::chat::Chat;
use crate::config::Config;
use crate::ids::{ConnId, Millis};
use crate::log::Logger;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::wheel::Wheel;
use std::rc::Rc;

/// Bytes read from one connection in one turn before others get theirs.
pub const READ_BUDGET: usize = 64 * 1024;

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
    /// An event stream (`/api/events`).
    Stream,
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

/// What of the current turn stands only if its commit succeeds, besides
/// its broadcasts (which the fan-out records in `Core::events`) and its
/// acks (which the chat records).
#[derive(Debug, Default)]
pub struct Held {
    /// A write of the turn failed: the turn is rolled back, not committed,
    /// so that it is stored all or nothing.
    pub failed: bool,
    /// Sockets sent rows read from the turn's uncommitted batch (a replay
    /// that reached this turn's messages).
    pub readers: Vec<ConnId>,
    /// Responses queued with `Outlet::push_held`, each with the 503 that
    /// replaces it if the commit fails.
    pub responses: Vec<(ConnId, Rc<[u8]>, Vec<u8>)>,
}

/// Shared state: settings, chat, database, counters, timers and every
/// connection's outlet, by slot.
pub struct Core {
    /// Settings.
    pub cfg: Config,
    /// The logger.
    pub log: Logger,
    /// The chat state.
    pub chat: Chat,
    /// The database.
    pub store: Store,
    /// Counters.
    pub metrics: Metrics,
    /// The timer wheel.
    pub wheel: Wheel<Timer>,
    /// Each slot's outlet.
    pub outlets: Vec<Outlet>,
    /// The generation living in each slot.
    pub generations: Vec<u32>,
    /// Slots whose outlet has something new to flush.
    pub dirty: Vec<usize>,
    /// A read buffer shared by all connections.
    pub scratch: Vec<u8>,
    /// The time the core was made at: uptime counts from here, not from
    /// `Millis(0)` (the loop's clock starts past zero, see `start_core`).
    pub started: Millis,
    /// What of this turn stands only if its commit succeeds.
    pub held: Held,
    /// The frames of this turn's events, ditto (see [`Fanout::events`]).
    pub events: Vec<Rc<[u8]>>,
}

impl Core {
    /// Shared state with no connections yet.
    pub fn new(cfg: Config, chat: Chat, store: Store, wheel: Wheel<Timer>, log: Logger) -> Core {
        let wheel_now = wheel.now();
        Core {
            cfg,
            log,
            chat,
            store,
            metrics: Metrics::default(),
            wheel,
            outlets: Vec::new(),
            generations: Vec::new(),
            dirty: Vec::new(),
            scratch: vec![0; READ_BUDGET.min(16 * 1024)],
            started: wheel_now,
            held: Held::default(),
            events: Vec::new(),
        }
    }

    /// What a connection's handlers get for one event at `now`.
    pub fn env(&mut self, now: Millis) -> Env<'_> {
        Env {
            cfg: &self.cfg,
            chat: &mut self.chat,
            store: &mut self.store,
            metrics: &mut self.metrics,
            wheel: &mut self.wheel,
            fan: Fanout {
                outlets: &mut self.outlets,
                generations: &self.generations,
                dirty: &mut self.dirty,
                events: &mut self.events,
            },
            log: &self.log,
            now,
            uptime_secs: now.saturating_sub(self.started).0 / 1000,
            scratch: &mut self.scratch,
            note: None,
            held: &mut self.held,
        }
    }

    /// Puts `slot` on the list of outlets to flush before sleeping.
    pub fn mark_dirty(&mut self, slot: usize) {
        if !self.outlets[slot].dirty {
            self.outlets[slot].dirty = true;
            self.dirty.push(slot);
        }
    }
}
