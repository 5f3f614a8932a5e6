//! Counters and gauges for `GET /metrics`, rendered in the Prometheus text
//! format. Pure data: the server updates it, the API renders it.

use crate::chat::ChatStats;
use crate::protocol::AckError;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Why the server ended a connection, for `piratchat_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CloseCause {
    /// The peer closed or reset it.
    Peer,
    /// An HTTP response with `Connection: close`, or a finished WebSocket.
    Done,
    /// A head, body, idle or ping deadline passed.
    Timeout,
    /// Malformed input or a protocol violation.
    Protocol,
    /// More output queued than the limit (slow consumer).
    SlowConsumer,
    /// Refused at accept: too many connections.
    Busy,
    /// A socket error.
    Error,
    /// Server shutdown.
    Shutdown,
}

impl CloseCause {
    fn label(self) -> &'static str {
        match self {
            CloseCause::Peer => "peer",
            CloseCause::Done => "done",
            CloseCause::Timeout => "timeout",
            CloseCause::Protocol => "protocol",
            CloseCause::SlowConsumer => "slow_consumer",
            CloseCause::Busy => "busy",
            CloseCause::Error => "error",
            CloseCause::Shutdown => "shutdown",
        }
    }
}

/// Everything `/metrics` reports besides the chat's own counters.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    /// Open connections still speaking HTTP.
    pub open_http: u64,
    /// Open chat WebSockets.
    pub open_ws: u64,
    /// Open `/echo` WebSockets.
    pub open_echo: u64,
    /// Open event streams (`/api/events`).
    pub open_streams: u64,
    /// HTTP responses sent, by status.
    pub responses: BTreeMap<u16, u64>,
    /// Connections closed, by cause.
    pub closed: BTreeMap<CloseCause, u64>,
    /// Bytes read from sockets.
    pub bytes_in: u64,
    /// Bytes written to sockets.
    pub bytes_out: u64,
}

impl Metrics {
    /// Counts one response of `status`.
    pub fn response(&mut self, status: u16) {
        *self.responses.entry(status).or_default() += 1;
    }

    /// Counts one closed connection.
    pub fn closed(&mut self, cause: CloseCause) {
        *self.closed.entry(cause).or_default() += 1;
    }

    /// The exposition text. `wal_checkpoints` comes from the store's
    /// checkpoint thread, the rest from the loop.
    pub fn render(
        &self,
        chat: &ChatStats,
        sessions: usize,
        wal_checkpoints: u64,
        uptime_secs: u64,
    ) -> String {
        let mut s = String::with_capacity(2048);
        let conns = [
            ("http", self.open_http),
            ("websocket", self.open_ws),
            ("echo", self.open_echo),
            ("stream", self.open_streams),
        ];
        family(
            &mut s,
            "piratchat_open_connections",
            "gauge",
            "Open connections by kind.",
        );
        for (kind, n) in conns {
            let _ = writeln!(s, "piratchat_open_connections{{kind=\"{kind}\"}} {n}");
        }
        gauge(
            &mut s,
            "piratchat_open_websockets",
            "Open chat WebSockets.",
            self.open_ws,
        );
        gauge(
            &mut s,
            "piratchat_sessions",
            "Live sessions.",
            sessions as u64,
        );
        counter(
            &mut s,
            "piratchat_sessions_evicted_total",
            "Sessions ended by the per-user cap (--sessions-per-user).",
            chat.sessions_evicted,
        );
        let help = "Chat frames received.";
        counter(
            &mut s,
            "piratchat_messages_received_total",
            help,
            chat.messages_received,
        );
        let help = "Chat messages queued to recipients.";
        counter(
            &mut s,
            "piratchat_messages_delivered_total",
            help,
            chat.messages_delivered,
        );
        family(
            &mut s,
            "piratchat_acks_total",
            "counter",
            "Acks sent, by code.",
        );
        let _ = writeln!(s, "piratchat_acks_total{{code=\"ok\"}} {}", chat.acks_ok);
        for (e, n) in AckError::ALL.iter().zip(chat.acks_err) {
            let _ = writeln!(s, "piratchat_acks_total{{code=\"{}\"}} {n}", e.code());
        }
        family(
            &mut s,
            "piratchat_http_responses_total",
            "counter",
            "HTTP responses by status.",
        );
        for (status, n) in &self.responses {
            let _ = writeln!(
                s,
                "piratchat_http_responses_total{{status=\"{status}\"}} {n}"
            );
        }
        let help = "Connections closed, by cause.";
        family(
            &mut s,
            "piratchat_connections_closed_total",
            "counter",
            help,
        );
        for (cause, n) in &self.closed {
            let label = cause.label();
            let _ = writeln!(
                s,
                "piratchat_connections_closed_total{{cause=\"{label}\"}} {n}"
            );
        }
        counter(
            &mut s,
            "piratchat_bytes_in_total",
            "Bytes read.",
            self.bytes_in,
        );
        counter(
            &mut s,
            "piratchat_bytes_out_total",
            "Bytes written.",
            self.bytes_out,
        );
        counter(
            &mut s,
            "piratchat_wal_checkpoints_total",
            "WAL checkpoints completed off the event loop.",
            wal_checkpoints,
        );
        gauge(
            &mut s,
            "piratchat_uptime_seconds",
            "Seconds since start.",
            uptime_secs,
        );
        s
    }
}

fn family(s: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(s: &mut String, name: &str, help: &str, v: u64) {
    family(s, name, "gauge", help);
    let _ = writeln!(s, "{name} {v}");
}

fn counter(s: &mut String, name: &str, help: &str, v: u64) {
    family(s, name, "counter", help);
    let _ = writeln!(s, "{name} {v}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let mut m = Metrics::default();
        m.response(200);
        m.response(200);
        m.closed(CloseCause::SlowConsumer);
        let text = m.render(&ChatStats::default(), 3, 4, 9);
        for line in [
            "piratchat_http_responses_total{status=\"200\"} 2",
            "piratchat_connections_closed_total{cause=\"slow_consumer\"} 1",
            "piratchat_sessions 3",
            "piratchat_uptime_seconds 9",
            "piratchat_wal_checkpoints_total 4",
            "piratchat_acks_total{code=\"rate_limited\"} 0",
            "piratchat_sessions_evicted_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(types, helps);
        assert_eq!(types, 13);
    }
}
