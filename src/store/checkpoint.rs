//! WAL checkpoints on a helper thread: the one exception to "one thread".
//!
//! A checkpoint copies the write-ahead log back into the database file and
//! fsyncs both. That blocks for milliseconds, and SQLite's automatic
//! checkpoint runs it inside whichever commit crosses the threshold — on
//! the event loop, where the stall reaches every connection at once. With
//! a commit per loop turn under a steady stream of messages, that happened
//! many times a second and set the tail of the delivery latency (see the
//! README's "Performance" section for the figures).
//!
//! So the loop's connection does not checkpoint. Its WAL hook, called after
//! every commit with the log's size, asks this thread for a checkpoint once
//! the log reaches [`REQUEST_PAGES`]. The thread owns a second connection
//! to the same file and does nothing but `PASSIVE` checkpoints, which never
//! block the writer. It shares no state with the loop: a one-slot request
//! channel (requests made while one is pending fold into it), a channel
//! that carries errors back, and a counter.
//!
//! If the thread falls far behind (a very slow disk), the hook checkpoints
//! inline once the log reaches [`INLINE_PAGES`], so the WAL stays bounded
//! whatever happens.

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags};
use std::ffi::c_int;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::thread::JoinHandle;

/// WAL size (in pages) at which a checkpoint is requested: SQLite's own
/// automatic checkpoint threshold (4 MiB with 4 KiB pages).
pub(super) const REQUEST_PAGES: c_int = 1000;

/// WAL size at which the loop stops waiting for the thread and checkpoints
/// itself (64 MiB with 4 KiB pages).
const INLINE_PAGES: c_int = 16 * 1024;

/// The type of the hook as `Connection::wal_hook` takes it.
type Hook = Box<dyn FnMut(&mut Wal, c_int) -> rusqlite::Result<()> + Send>;

/// The running checkpoint thread.
pub(super) struct Checkpointer {
    /// Joined on close, after the hook (holding the only request sender)
    /// has been removed, which ends the thread's receive loop.
    thread: Option<JoinHandle<()>>,
    /// Errors the thread met, for the loop to log.
    errors: Receiver<String>,
    /// Checkpoints the thread has completed.
    done: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Opens a second connection to `path`, starts the thread and installs
    /// the hook on `conn` that feeds it. `request_pages` is
    /// [`REQUEST_PAGES`] except in tests.
    pub(super) fn start(
        conn: &mut Connection,
        path: &std::path::Path,
        request_pages: c_int,
    ) -> Result<Checkpointer, String> {
        let own = open_own(path).map_err(|e| format!("opening a checkpoint connection: {e}"))?;
        let (request, requests) = mpsc::sync_channel(1);
        let (error, errors) = mpsc::channel();
        let done = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&done);
        let thread = std::thread::Builder::new()
            .name("wal-checkpoint".to_owned())
            .spawn(move || run(&own, &requests, &error, &counter))
            .map_err(|e| format!("starting the checkpoint thread: {e}"))?;
        conn.wal_hook(Some(hook(request, request_pages)))
            .map_err(|e| format!("installing the WAL hook: {e}"))?;
        Ok(Checkpointer {
            thread: Some(thread),
            errors,
            done,
        })
    }

    /// The oldest error the thread reported and nobody has taken yet.
    pub(super) fn take_error(&self) -> Option<String> {
        self.errors.try_recv().ok()
    }

    /// Checkpoints the thread has completed.
    pub(super) fn completed(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Removes the hook from `conn` (dropping the request sender) and waits
    /// for the thread to finish its current checkpoint and exit.
    pub(super) fn stop(mut self, conn: &mut Connection) -> Result<(), String> {
        conn.wal_hook(None::<Hook>).map_err(|e| e.to_string())?;
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(_)) => Err("the checkpoint thread panicked".to_owned()),
            _ => self.take_error().map_or(Ok(()), Err),
        }
    }
}

/// How long a statement of either connection (the loop's, this
/// thread's) waits for a lock held by another connection (the
/// `sqlite3` shell, a backup tool) before failing with "database is locked".
/// Long enough for a backup step, short enough not to stall the loop for good.
pub(super) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The thread's own connection to the database file.
pub(super) fn open_own(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let own = Connection::open_with_flags(path, flags)?;
    own.busy_timeout(BUSY_TIMEOUT)?;
    // A checkpoint's fsyncs follow the checkpointing connection's setting;
    // the same as the writer's, so the durability promise is one thing.
    own.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(own)
}

/// The hook: runs on the loop after every commit, with the WAL's size.
fn hook(request: SyncSender<()>, request_pages: c_int) -> Hook {
    Box::new(move |wal, pages| {
        if pages >= INLINE_PAGES {
            // Busy (the thread is mid-checkpoint) or failing: either way
            // the commit itself succeeded, and an error returned here would
            // be reported as the statement's.
            let _ = wal.checkpoint_v2(CheckpointMode::PASSIVE);
        } else if pages >= request_pages {
            match request.try_send(()) {
                // Full: a request is already pending and covers this one.
                // Disconnected: the thread is gone; INLINE_PAGES bounds it.
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
        Ok(())
    })
}

/// The thread's body: one PASSIVE checkpoint per request, until the hook
/// (the only sender) is dropped.
fn run(conn: &Connection, requests: &Receiver<()>, errors: &Sender<String>, done: &AtomicU64) {
    while requests.recv().is_ok() {
        match conn.wal_checkpoint_v2(Some("main"), CheckpointMode::PASSIVE) {
            Ok(_) => {
                done.fetch_add(1, Ordering::Relaxed);
            }
            // Another connection (the search index thread's) was updating
            // the WAL's header or checkpointing: not a failure, and the
            // next commit over the threshold asks again.
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy => {}
            Err(e) => {
                // The loop may be gone already at shutdown; nothing to do.
                let _ = errors.send(format!("checkpointing the WAL: {e}"));
            }
        }
    }
}
