//! The search index kept off the event loop: a second helper thread.
//!
//! Triggers on `events` used to update the FTS5 index inside the loop's
//! commit, which made every message insert several times dearer. Now the
//! loop only stores events; this thread follows them by id from a
//! watermark kept in the database (`search_state.indexed_to`) and brings
//! the index up to date in short write transactions of its own (see
//! [`super::search::index_step`] for what each kind of event does). They
//! are short because they hold the database's write lock, which the loop's
//! next commit then waits for.
//!
//! The loop wakes the thread after each commit through a one-slot channel
//! (wake-ups sent while one is pending fold into it); a periodic tick
//! covers a lost one. After a wake-up the thread waits [`COALESCE`] so a
//! stream of messages is indexed in batches rather than one transaction
//! per loop turn: the index's cost is mostly per transaction (a new
//! segment, merges), not per row.
//!
//! The search itself never depends on the thread's timing: a search that
//! finds the index behind catches it up first (see `Store::search`).

use super::search::index_step;
use rusqlite::Connection;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Most events one of the thread's transactions reads: it holds the
/// write lock for about a millisecond.
const STEP_EVENTS: i64 = 200;
/// How long the thread lets events gather after a wake-up.
const COALESCE: Duration = Duration::from_millis(100);
/// Wake-up without a signal, in case one was lost (a failed step).
const TICK: Duration = Duration::from_secs(1);

/// The running index thread.
pub(super) struct Indexer {
    /// Wakes the thread; dropping it ends the thread.
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Errors the thread met, for the loop to log.
    errors: Receiver<String>,
}

impl Indexer {
    /// Opens a connection of its own to `path` and starts the thread.
    pub(super) fn start(path: &std::path::Path) -> Result<Indexer, String> {
        let own = super::checkpoint::open_own(path)
            .map_err(|e| format!("opening a search index connection: {e}"))?;
        // The loop's checkpoint thread owns checkpointing; this
        // connection's commits must not run one themselves.
        own.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| format!("configuring the search index connection: {e}"))?;
        let (wake, wakes) = mpsc::sync_channel(1);
        let (error, errors) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("search-index".to_owned())
            .spawn(move || run(&own, &wakes, &error))
            .map_err(|e| format!("starting the search index thread: {e}"))?;
        Ok(Indexer {
            wake: Some(wake),
            thread: Some(thread),
            errors,
        })
    }

    /// Asks the thread to index what was just committed. Cheap: never
    /// blocks, and a wake-up already pending covers this one.
    pub(super) fn wake(&self) {
        if let Some(wake) = &self.wake {
            match wake.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
    }

    /// The oldest error the thread reported and nobody has taken yet.
    pub(super) fn take_error(&self) -> Option<String> {
        self.errors.try_recv().ok()
    }

    /// Ends the thread (after its current step) and waits for it.
    pub(super) fn stop(mut self) -> Result<(), String> {
        self.wake = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(_)) => Err("the search index thread panicked".to_owned()),
            _ => self.take_error().map_or(Ok(()), Err),
        }
    }
}

impl Drop for Indexer {
    /// A store dropped without `close` still ends the thread, and waits
    /// for it: its connection must be closed before the store's file lock
    /// is released.
    fn drop(&mut self) {
        self.wake = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One write transaction of at most [`STEP_EVENTS`] events; `Ok(true)`
/// when the index has caught up with the events. `IMMEDIATE`: the events
/// read and the index written belong to the same state of the database,
/// with no commit of the loop in between.
fn step(conn: &Connection) -> rusqlite::Result<bool> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match index_step(conn, STEP_EVENTS) {
        Ok(done) => {
            conn.execute_batch("COMMIT")?;
            Ok(done)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The thread's body: catch up after each wake-up or tick, until the
/// sender is dropped.
fn run(conn: &Connection, wakes: &Receiver<()>, errors: &Sender<String>) {
    loop {
        // First of all at start-up: the index may be behind from the last run.
        loop {
            match step(conn) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    // The loop may be gone already at shutdown; nothing to do.
                    let _ = errors.send(format!("updating the search index: {e}"));
                    break;
                }
            }
        }
        match wakes.recv_timeout(TICK) {
            Ok(()) => {
                // Folds the wake-ups of the next few commits into this one.
                std::thread::sleep(COALESCE);
                while wakes.try_recv().is_ok() {}
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
