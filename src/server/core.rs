//! The state every connection's handlers share, apart from the connection
//! table, so that a connection can be borrowed mutably beside it. The event
//! loop owns one; so does the fuzz harness that drives the connection code
//! over an in-memory socket, and both hand it out as an [`Env`].

use super::fanout::Fanout;
use super::outlet::Outlet;
use super::persist::{self, Held};
use super::{Env, Timer, conn};
use crate::chat::Chat;
use crate::config::Config;
use crate::ids::{ConnId, Millis};
use crate::log::Logger;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::wheel::Wheel;
use std::rc::Rc;

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
            scratch: vec![0; conn::READ_BUDGET.min(16 * 1024)],
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

    /// Ends the turn's storage: commits its batch (with the session
    /// changes; their last activity too when `flush_sessions`), or, if a
    /// write or the commit failed, takes back everything of the turn that
    /// depended on it. Runs before any of the turn's output is written.
    /// Returns the sockets to drop with everything they have queued (those
    /// acked, or sent a replay, for unstored messages); empty after a
    /// successful commit.
    pub fn end_turn(&mut self, flush_sessions: bool) -> Vec<ConnId> {
        persist::persist_turn(self, flush_sessions)
    }

    /// Puts `slot` on the list of outlets to flush before sleeping.
    pub fn mark_dirty(&mut self, slot: usize) {
        if !self.outlets[slot].dirty {
            self.outlets[slot].dirty = true;
            self.dirty.push(slot);
        }
    }
}
