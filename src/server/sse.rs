//! The event-stream phase (`GET /api/events`, Server-Sent Events): a
//! response that does not end, carrying the user's events as
//! `id: N`, `event: KIND`, `data: <the WebSocket frame's JSON>`.
//!
//! A stream is one more kind of outlet, not a second path: the chat
//! delivers an event once to a list of connections, and the fan-out
//! gives each WebSocket the shared frame and each stream the shared SSE
//! form, built once per event and only when a stream is among the
//! recipients ([`SharedEvent`]).
//!
//! Framing: over HTTP/1.1 the body is chunked, so a client (curl, nginx)
//! tells the server's clean end (the last chunk) from a cut connection;
//! HTTP/1.0 has no chunks, so there the body ends when the connection
//! closes. Either way the connection carries nothing after the stream.

use super::core::Env;
use super::link::{AfterFlush, Link, Step};
use super::outlet::{Accepts, Outlet};
use crate::chat::Authed;
use crate::config::LogLevel;
use crate::ids::{ConnId, Millis};
use crate::log::escape;
use crate::metrics::CloseCause;
use serde::Deserialize;
use std::borrow::Cow;
use std::io::{self, Read};
use std::rc::Rc;

/// How a stream's body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// HTTP/1.1: every write is one chunk; the last chunk ends the stream.
    Chunked,
    /// HTTP/1.0: plain bytes; closing the connection ends the stream.
    Plain,
}

/// The comment that keeps a quiet stream (and every proxy on its way)
/// from timing out.
const PING: &[u8] = b": ping\n\n";

/// The chunk that ends a chunked body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// How long an ended stream may take to drain before it is cut.
const CLOSE_WAIT: Millis = Millis(5_000);

/// Bytes read (and dropped) from one stream in one turn: a stream's
/// client has nothing to say, this only finds its end.
const READ_BUDGET: usize = 16 * 1024;

/// The two fields of a frame's JSON that its SSE lines name.
#[derive(Deserialize)]
struct Head<'a> {
    id: Option<i64>,
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
}

/// Appends the SSE text of the frame `json`: `id:` when it has an id (a
/// stored event), `event:` its `event` field (`message` for a chat
/// message, which has none), `data:` the JSON itself. The lines are read
/// back from the JSON, so they can never disagree with it; serialized
/// JSON holds no raw newline, so one `data:` line carries it.
pub fn event_text(json: &[u8], out: &mut Vec<u8>) {
    debug_assert!(!json.contains(&b'\n'), "a newline would end the data line");
    let head: Option<Head<'_>> = serde_json::from_slice(json).ok();
    let head = head.unwrap_or(Head {
        id: None,
        event: None,
    });
    if let Some(id) = head.id {
        out.extend_from_slice(format!("id: {id}\n").as_bytes());
    }
    let kind = head.event.unwrap_or(Cow::Borrowed("message"));
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}

/// `body` as one piece of a stream framed by `framing`.
pub fn framed(body: &[u8], framing: Framing) -> Vec<u8> {
    match framing {
        Framing::Plain => body.to_vec(),
        Framing::Chunked => {
            let mut out = format!("{:x}\r\n", body.len()).into_bytes();
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n");
            out
        }
    }
}

/// One event's SSE form, framed for the streams among its recipients:
/// built once per framing on first use and shared by every stream, as
/// the WebSocket frame is shared by every socket.
pub struct SharedEvent<'a> {
    json: &'a [u8],
    chunked: Option<Rc<[u8]>>,
    plain: Option<Rc<[u8]>>,
}

impl<'a> SharedEvent<'a> {
    /// Nothing built yet for `json`.
    pub fn new(json: &'a [u8]) -> SharedEvent<'a> {
        SharedEvent {
            json,
            chunked: None,
            plain: None,
        }
    }

    /// The bytes for a stream framed by `framing`.
    pub fn get(&mut self, framing: Framing) -> &Rc<[u8]> {
        let slot = match framing {
            Framing::Chunked => &mut self.chunked,
            Framing::Plain => &mut self.plain,
        };
        slot.get_or_insert_with(|| {
            let mut text = Vec::with_capacity(self.json.len() + 48);
            event_text(self.json, &mut text);
            framed(&text, framing).into()
        })
    }

    /// What was built (for taking it back should the turn's commit fail).
    pub fn built(self) -> impl Iterator<Item = Rc<[u8]>> {
        self.chunked.into_iter().chain(self.plain)
    }
}

/// The response head of a stream.
pub(super) fn head(framing: Framing) -> &'static [u8] {
    match framing {
        Framing::Chunked => {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
              X-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        }
        Framing::Plain => {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
              X-Accel-Buffering: no\r\nConnection: close\r\n\r\n"
        }
    }
}

/// State of the stream phase.
pub(super) struct StreamState {
    /// The stream's user, for the log.
    user: Rc<str>,
    framing: Framing,
    /// The response is ended: nothing more is queued.
    ended: bool,
    /// `chat.stream_closed` already ran.
    left: bool,
    /// Why it ended, for the log.
    reason: &'static str,
}

impl StreamState {
    /// A stream of `user`, framed by `framing`.
    pub(super) fn new(user: Rc<str>, framing: Framing) -> StreamState {
        StreamState {
            user,
            framing,
            ended: false,
            left: false,
            reason: "connection lost",
        }
    }

    /// What its outlet accepts.
    pub(super) fn accepts(&self) -> Accepts {
        Accepts::Events(self.framing)
    }

    /// The head is queued and the outlet takes events: a resuming stream
    /// gets what it missed, then joins the deliveries (in this order and
    /// in this turn, so there is no gap and no duplicate); pings start.
    pub(super) fn opened<S>(
        &mut self,
        link: &mut Link<'_, S>,
        authed: Authed,
        since: Option<i64>,
        env: &mut Env<'_>,
    ) {
        let id = link.id;
        if let Some(since) = since {
            let framing = self.framing;
            super::ws::replay(id, authed.user, since, env, |json| {
                let mut text = Vec::with_capacity(json.len() + 48);
                event_text(json, &mut text);
                framed(&text, framing)
            });
        }
        env.chat.stream_open(id, &authed);
        env.log.log(
            LogLevel::Info,
            format_args!("stream open user={} conn={}", escape(&self.user), id),
        );
        link.arm(env, env.now + env.cfg.ping_interval);
    }

    /// Reads and drops what the client sends: only its end matters (a
    /// client that closes its side is gone; curl and browsers never
    /// half-close a request they still read).
    pub(super) fn readable<S: Read>(&mut self, link: &mut Link<'_, S>, env: &mut Env<'_>) -> Step {
        let mut budget = READ_BUDGET;
        loop {
            match link.sock.read(env.scratch) {
                Ok(0) => {
                    self.closed(link.id, env);
                    return Step::Close(CloseCause::Peer);
                }
                Ok(n) if n >= budget => return Step::MoreReady,
                Ok(n) => {
                    env.metrics.bytes_in += n as u64;
                    budget -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Idle,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed(link.id, env);
                    return Step::Close(CloseCause::Peer);
                }
            }
        }
    }

    /// The ping timer fired (or an ended stream did not drain in time).
    pub(super) fn on_timer<S>(&mut self, link: &mut Link<'_, S>, env: &mut Env<'_>) -> Step {
        if self.ended {
            return Step::Close(CloseCause::Timeout);
        }
        if let Some(out) = env.fan.outlet(link.id) {
            push_framed(out, PING, self.framing);
        }
        link.arm(env, env.now + env.cfg.ping_interval);
        Step::Idle
    }

    /// Ends the response (logout, shutdown): the last chunk, then the
    /// connection closes once it is written, or after `CLOSE_WAIT`.
    pub(super) fn end<S>(
        &mut self,
        link: &mut Link<'_, S>,
        reason: &'static str,
        cause: CloseCause,
        env: &mut Env<'_>,
    ) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        self.reason = reason;
        if let Some(out) = env.fan.outlet(link.id) {
            if self.framing == Framing::Chunked && !out.overflow {
                out.push_copy(LAST_CHUNK);
            }
            // No event may follow the end of the body.
            out.accepts = Accepts::Closing;
        }
        self.closed(link.id, env);
        *link.after_flush = AfterFlush::Linger(cause);
        link.arm(env, env.now + CLOSE_WAIT);
    }

    /// The stream's chat life is over (once): it leaves the deliveries,
    /// and the close is logged.
    pub(super) fn closed(&mut self, id: ConnId, env: &mut Env<'_>) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        env.chat.stream_closed(id, env.now);
        env.log.log(
            LogLevel::Info,
            format_args!(
                "stream close user={} conn={} reason={}",
                escape(&self.user),
                id,
                escape(self.reason)
            ),
        );
    }
}

/// Queues `body` (a ping) framed by `framing`, as the stream's own output.
fn push_framed(out: &mut Outlet, body: &[u8], framing: Framing) {
    out.push_copy(&framed(body, framing));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_come_from_the_json() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"message":"hi","author":"ann","id":7,"ts":1}"#,
                "id: 7\nevent: message\ndata: {\"message\":\"hi\",\"author\":\"ann\",\"id\":7,\"ts\":1}\n\n",
            ),
            (
                r#"{"event":"room_join","room":"r","username":"ann","id":9,"ts":1}"#,
                "id: 9\nevent: room_join\ndata: {\"event\":\"room_join\",\"room\":\"r\",\"username\":\"ann\",\"id\":9,\"ts\":1}\n\n",
            ),
            (
                r#"{"event":"resync"}"#,
                "event: resync\ndata: {\"event\":\"resync\"}\n\n",
            ),
            // A text that looks like fields is only text.
            (
                r#"{"message":"\"id\":5,\"event\":\"x\"","author":"a","id":8,"ts":1}"#,
                "id: 8\nevent: message\ndata: {\"message\":\"\\\"id\\\":5,\\\"event\\\":\\\"x\\\"\",\"author\":\"a\",\"id\":8,\"ts\":1}\n\n",
            ),
        ];
        for (json, want) in cases {
            let mut got = Vec::new();
            event_text(json.as_bytes(), &mut got);
            assert_eq!(String::from_utf8(got).unwrap(), *want, "{json}");
        }
    }

    #[test]
    fn chunks_carry_their_length() {
        assert_eq!(framed(PING, Framing::Chunked), b"8\r\n: ping\n\n\r\n");
        assert_eq!(framed(PING, Framing::Plain), PING);
        let long = vec![b'x'; 300];
        assert!(framed(&long, Framing::Chunked).starts_with(b"12c\r\n"));
    }

    #[test]
    fn a_shared_event_is_built_once_per_framing() {
        let json = br#"{"message":"hi","author":"ann","id":1,"ts":1}"#;
        let mut shared = SharedEvent::new(json);
        let a = shared.get(Framing::Chunked).clone();
        let b = shared.get(Framing::Chunked).clone();
        assert!(Rc::ptr_eq(&a, &b));
        let plain = shared.get(Framing::Plain).clone();
        assert!(a.ends_with(b"\r\n") && plain.starts_with(b"id: 1\n"));
        assert_eq!(shared.built().count(), 2);
        assert_eq!(SharedEvent::new(json).built().count(), 0, "lazy");
    }
}
