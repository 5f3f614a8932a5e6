//! Accepting connections: the connection limit (503 for a few more, then
//! a plain close), TCP_NODELAY, and backing off when file descriptors run
//! out instead of spinning on a listener that stays readable.

use super::Server;
use super::core::Timer;
use crate::config::LogLevel;
use crate::ids::Millis;
use crate::log::Logger;
use crate::metrics::CloseCause;
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::io;
use std::net::SocketAddr;

/// The listener's token.
pub(super) const LISTENER: Token = Token(usize::MAX);

/// Connections beyond the limit that are still accepted just to be told
/// 503 `server_busy`; past these, new connections are closed at once.
const BUSY_RESERVE: usize = 64;

/// File descriptors kept for the listener, the database, the poll and
/// signal pipes, and logs, below the open-file limit.
const FD_RESERVE: usize = 32;

/// After `accept` fails for lack of file descriptors, try again this much
/// later (not at once: the listener would spin).
const ACCEPT_BACKOFF: Millis = Millis(100);

impl Server {
    pub(super) fn accept(&mut self, now: Millis) {
        while let Some(listener) = &self.listener {
            match listener.accept() {
                Ok((sock, peer)) => self.admit(sock, peer, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_out_of_fds(&e) => {
                    self.turn
                        .core
                        .log
                        .log(LogLevel::Warn, format_args!("accept paused: {e}"));
                    self.pause_accept(now);
                    return;
                }
                // A connection that died in the backlog, or an interrupted
                // call: carry on with the next.
                Err(_) => {}
            }
        }
    }

    fn pause_accept(&mut self, now: Millis) {
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
            self.turn
                .core
                .wheel
                .insert(now + ACCEPT_BACKOFF, Timer::ResumeAccept);
            self.paused_listener = Some(l);
        }
    }

    fn admit(&mut self, sock: TcpStream, peer: SocketAddr, now: Millis) {
        let open = self.turn.open();
        let busy = open >= self.max_conns;
        if busy && open >= self.max_conns + BUSY_RESERVE {
            self.turn.core.metrics.closed(CloseCause::Busy);
            return;
        }
        // Latency over batching: chat frames are small and go out at once.
        let _ = sock.set_nodelay(true);
        let registry = self.poll.registry();
        self.turn.admit(sock, peer, busy, now, |sock, id| {
            // Registered for WRITABLE once, for the socket's whole life,
            // not only while output is left: mio is edge-triggered, so a
            // writable edge costs nothing until the socket fills, and then
            // it is the wake-up the flush needs. Toggling interest with
            // `reregister` would be a system call per full socket per turn.
            let interest = Interest::READABLE | Interest::WRITABLE;
            registry.register(sock, Token(id.0 as usize), interest)
        });
    }

    pub(super) fn resume_accept(&mut self, now: Millis) {
        let Some(mut l) = self.paused_listener.take() else {
            return;
        };
        if self
            .poll
            .registry()
            .register(&mut l, LISTENER, Interest::READABLE)
            .is_ok()
        {
            self.listener = Some(l);
            // Connections may be waiting in the backlog with no new event
            // to announce them.
            self.accept(now);
        }
    }
}

fn is_out_of_fds(e: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM on Linux.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// The connection limit, lowered to fit the process's open-file limit as
/// `/proc/self/limits` tells it (left as it is where that cannot be read).
pub(super) fn fit_to_fd_limit(wanted: usize, log: &Logger) -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        });
    match soft {
        Some(soft) if soft < wanted + FD_RESERVE + BUSY_RESERVE => {
            let fit = soft.saturating_sub(FD_RESERVE + BUSY_RESERVE).max(1);
            log.log(
                LogLevel::Warn,
                format_args!(
                    "max connections lowered from {wanted} to {fit}: the open-file limit is {soft}"
                ),
            );
            fit
        }
        _ => wanted,
    }
}
