//! The WebSocket phase: tungstenite's server-role codec over the
//! connection's stream, with its output going into the connection's outlet
//! so its pongs and close replies queue in order with our own frames.
//! Every step is a method of [`WsState`], given the connection's
//! [`Link`]; the phase changes themselves are `conn`'s.

use super::core::Env;
use super::link::{AfterFlush, Link, Step};
use super::outlet::{Accepts, OP_BINARY, OP_TEXT, Outlet, ws_frame};
use crate::api::resume;
use crate::chat::{Authed, Change, Lookup, Write as Stored};
use crate::config::LogLevel;
use crate::event::MessageInfo;
use crate::event::{Conversation, EventKind};
use crate::ids::{ConnId, Millis, UserId};
use crate::log::{Logger, escape};
use crate::metrics::CloseCause;
use crate::store::{Store, StoreError};
use std::io::{self, Read, Write};
use std::rc::Rc;
use tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{Message, Role, WebSocketConfig, WebSocketContext};

/// tungstenite's read buffer per chat socket. It is allocated up front and
/// zero-filled before each read, and it is most of an idle socket's memory
/// (measured: 4.8 KiB per idle socket with 2 KiB, 3.8 KiB with 1 KiB), so
/// it is small: chat frames are about a hundred bytes, and a larger frame
/// grows the buffer while it is read.
const READ_BUFFER: usize = 1024;

/// The read buffer of an `/echo` socket: conformance cases send messages
/// of megabytes, and there are few such sockets.
const ECHO_READ_BUFFER: usize = 64 * 1024;

/// Messages handled for one socket in one turn before others get theirs.
const MESSAGE_BUDGET: usize = 64;

/// Message and frame limit of `/echo` (the Autobahn cases go up to 16 MiB).
pub const ECHO_MAX_MESSAGE: usize = 16 << 20;

/// The close code of a server shutdown (RFC 6455 1001 `going away`); no
/// other close we start uses it.
const GOING_AWAY: u16 = 1001;

/// How long a socket we sent a close frame to may take to answer it.
const CLOSE_WAIT: Millis = Millis(5_000);

/// State of the WebSocket phase.
pub(super) struct WsState {
    ctx: WebSocketContext,
    /// The user of a chat socket; `None` for `/echo`.
    user: Option<Rc<str>>,
    last_rx: Millis,
    ping_at: Option<Millis>,
    /// Our close frame is out; waiting for the peer's.
    closing: bool,
    /// The close code and reason, for the log line.
    close_info: Option<(u16, String)>,
    /// `chat.ws_closed` already ran.
    left: bool,
}

/// tungstenite's stream: reads from the socket, writes into the outlet.
struct Io<'a, S> {
    sock: &'a mut S,
    out: &'a mut Outlet,
    bytes_in: &'a mut u64,
}

impl<S: Read> Read for Io<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.sock.read(buf)?;
        *self.bytes_in += n as u64;
        Ok(n)
    }
}

impl<S> Write for Io<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.push_copy(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl WsState {
    /// The state of a socket just upgraded; `leftover` holds the bytes that
    /// came after the request head, `user` the chat user (`None`: `/echo`).
    pub(super) fn new(leftover: Vec<u8>, user: Option<Rc<str>>, env: &Env<'_>) -> WsState {
        let is_chat = user.is_some();
        WsState {
            ctx: context(leftover, is_chat, env.cfg.ws_max_message_bytes),
            user,
            last_rx: env.now,
            ping_at: None,
            closing: false,
            close_info: None,
            left: false,
        }
    }

    /// Whether this is a chat socket (not `/echo`).
    pub(super) fn is_chat(&self) -> bool {
        self.user.is_some()
    }

    /// Runs `f` with tungstenite's view of the connection.
    fn with_io<S: Read, R>(
        &mut self,
        link: &mut Link<'_, S>,
        env: &mut Env<'_>,
        f: impl FnOnce(&mut WebSocketContext, &mut Io<'_, S>) -> R,
    ) -> R {
        let slot = link.id.slot();
        let out = &mut env.fan.outlets[slot];
        if !out.dirty {
            out.dirty = true;
            env.fan.dirty.push(slot);
        }
        let mut io = Io {
            sock: &mut *link.sock,
            out,
            bytes_in: &mut env.metrics.bytes_in,
        };
        f(&mut self.ctx, &mut io)
    }

    /// The socket is open: a resuming chat socket gets what it missed,
    /// then joins the chat; the ping timer starts.
    pub(super) fn opened<S>(
        &mut self,
        link: &mut Link<'_, S>,
        chat: Option<Authed>,
        since: Option<i64>,
        env: &mut Env<'_>,
    ) {
        let id = link.id;
        if let Some(authed) = chat {
            if let Some(since) = since {
                // Before the socket joins the broadcast: the replay ends where
                // live messages begin, with no gap and no duplicate.
                replay(id, authed.user, since, env, |json| ws_frame(OP_TEXT, json));
            }
            env.chat.ws_open(id, &authed.key, env.now);
            let name = &authed.name;
            env.log.log(
                LogLevel::Info,
                format_args!("ws open user={} conn={}", escape(name), id),
            );
        }
        link.arm(env, env.now + env.cfg.ping_interval);
    }

    /// Reads and handles messages until the socket would block or the
    /// turn's budget is spent.
    pub(super) fn readable<S: Read>(&mut self, link: &mut Link<'_, S>, env: &mut Env<'_>) -> Step {
        for _ in 0..MESSAGE_BUDGET {
            let bytes_before = env.metrics.bytes_in;
            let read = self.with_io(link, env, |ctx, io| ctx.read(io));
            // Any byte is a sign of life (SPEC §5.5: closed when nothing at
            // all arrives), also the part of a frame still coming in.
            let arrived = env.metrics.bytes_in != bytes_before;
            if arrived || read.is_ok() {
                self.last_rx = env.now;
            }
            match read {
                Ok(msg) => self.handle(link.id, msg, env),
                Err(e) => return self.on_error(link, e, env),
            }
        }
        Step::MoreReady
    }

    /// One received message, handled in place and dropped.
    fn handle(&mut self, id: ConnId, msg: Message, env: &mut Env<'_>) {
        let is_chat = self.is_chat();
        match msg {
            Message::Text(text) if is_chat => {
                let mut look = StoreLookup {
                    store: env.store,
                    log: env.log,
                    failed: &mut env.held.failed,
                };
                let write = env
                    .chat
                    .ws_frame(id, &text, env.now, &mut look, &mut env.fan);
                if let Some(write) = write {
                    store_write(&write, env);
                }
            }
            Message::Binary(_) if is_chat => env.chat.ws_binary(id, env.now, &mut env.fan),
            Message::Text(text) => echo(id, OP_TEXT, text.as_bytes(), env),
            Message::Binary(data) => echo(id, OP_BINARY, &data, env),
            Message::Close(frame) => {
                // tungstenite queued the reply; the chat hears of it now.
                let info = frame.map_or((1005, String::new()), |f| {
                    (f.code.into(), f.reason.to_string())
                });
                self.close_info.get_or_insert(info);
                self.closed(id, env);
            }
            // tungstenite queued the pong; receiving anything is all a pong means.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }

    /// What a tungstenite error means for the connection.
    fn on_error<S: Read>(&mut self, link: &mut Link<'_, S>, e: WsError, env: &mut Env<'_>) -> Step {
        if let Some((code, reason)) = fail_code(&e) {
            self.fail(link, code, reason, env);
            return Step::Idle;
        }
        match e {
            WsError::Io(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Push out the pongs and close replies tungstenite holds back.
                let _ = self.with_io(link, env, |ctx, io| ctx.flush(io));
                Step::Idle
            }
            WsError::ConnectionClosed | WsError::AlreadyClosed => {
                *link.after_flush = AfterFlush::Linger(CloseCause::Done);
                Step::Idle
            }
            // Reset without a closing handshake, or the socket failed.
            _ => {
                self.set_close_info(1006, "connection lost");
                self.closed(link.id, env);
                Step::Close(CloseCause::Peer)
            }
        }
    }

    /// Fails the connection: a close frame with `code`, then FIN without
    /// waiting for the peer's reply.
    fn fail<S: Read>(
        &mut self,
        link: &mut Link<'_, S>,
        code: u16,
        reason: &'static str,
        env: &mut Env<'_>,
    ) {
        self.set_close_info(code, reason);
        self.send_close(link, code, reason, env);
        self.closed(link.id, env);
        *link.after_flush = AfterFlush::Linger(CloseCause::Protocol);
    }

    fn set_close_info(&mut self, code: u16, reason: &str) {
        self.close_info.get_or_insert((code, reason.to_string()));
    }

    /// Queues our close frame; nothing may follow it.
    fn send_close<S: Read>(
        &mut self,
        link: &mut Link<'_, S>,
        code: u16,
        reason: &'static str,
        env: &mut Env<'_>,
    ) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        // Errors here mean the socket is already closing; the frame is moot.
        let _ = self.with_io(link, env, |ctx, io| ctx.close(io, Some(frame)));
        if let Some(out) = env.fan.outlet(link.id) {
            out.accepts = Accepts::Closing;
        }
    }

    /// Starts the closing handshake (logout, shutdown): our close frame,
    /// then up to `CLOSE_WAIT` for the peer's reply.
    pub(super) fn start_close<S: Read>(
        &mut self,
        link: &mut Link<'_, S>,
        code: u16,
        reason: &'static str,
        env: &mut Env<'_>,
    ) {
        if self.closing {
            return;
        }
        self.closing = true;
        self.set_close_info(code, reason);
        self.send_close(link, code, reason, env);
        // At shutdown every socket goes in this same turn: announcing each to
        // the ones not closed yet would only queue n²/2 `leave` frames ahead
        // of their own close frame.
        self.leave_chat(link.id, env, code != GOING_AWAY);
        link.arm(env, env.now + CLOSE_WAIT);
    }

    /// The socket's chat life is over: the others get `leave` (once), and
    /// the close is logged.
    pub(super) fn closed(&mut self, id: ConnId, env: &mut Env<'_>) {
        self.leave_chat(id, env, true);
    }

    /// Like [`WsState::closed`]; `announce: false` tells nobody (shutdown).
    fn leave_chat(&mut self, id: ConnId, env: &mut Env<'_>, announce: bool) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        let Some(user) = &self.user else { return };
        if announce {
            env.chat.ws_closed(id, env.now);
        } else {
            env.chat.ws_going_away(id, env.now);
        }
        let (code, reason) = self.close_info.clone().unwrap_or((1006, String::new()));
        env.log.log(
            LogLevel::Info,
            format_args!(
                "ws close user={} conn={} code={code} reason={}",
                // Imported names may hold any text (SPEC §7): spaces would
                // forge fields, bidi controls would reorder the line.
                escape(user),
                id,
                escape(&reason)
            ),
        );
    }

    /// The ping timer (or the close wait) fired.
    pub(super) fn on_timer<S: Read>(&mut self, link: &mut Link<'_, S>, env: &mut Env<'_>) -> Step {
        let interval = Millis::of(env.cfg.ping_interval);
        if self.closing {
            return Step::Close(CloseCause::Timeout);
        }
        if self.ping_at.is_some_and(|at| self.last_rx < at) {
            // Pinged, and nothing at all came back in time: a dead peer.
            self.set_close_info(1006, "ping timeout");
            self.closed(link.id, env);
            return Step::Close(CloseCause::Timeout);
        }
        if env.now >= self.last_rx + interval {
            self.ping_at = Some(env.now);
            let _ = self.with_io(link, env, |ctx, io| {
                ctx.write(io, Message::Ping(Default::default()))
            });
            link.arm(env, env.now + env.cfg.ping_timeout);
        } else {
            // Heard from since: look again when it has been quiet long enough.
            self.ping_at = None;
            let at = self.last_rx + interval;
            link.arm(env, at);
        }
        Step::Idle
    }
}

/// The 101 that answers an upgrade, queued; an `/echo` socket's outlet
/// gets room for a whole message on its way back.
pub(super) fn push_switching(out: &mut Outlet, accept: &str, is_chat: bool, max_output: usize) {
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    out.push_copy(head.as_bytes());
    if !is_chat {
        // An echo socket holds a whole 16 MiB message on its way back.
        out.set_limit(2 * ECHO_MAX_MESSAGE + max_output);
    }
}

/// The close frame (code, reason) that fails a connection after read
/// error `e`; `None` where none is sent (would block, closed, the
/// connection lost). The fuzz model reads it from here.
pub fn fail_code(e: &WsError) -> Option<(u16, &'static str)> {
    Some(match e {
        WsError::Io(_)
        | WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return None,
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => (1009, "message too big"),
        WsError::Capacity(_) => (1009, "frame too big"),
        WsError::Utf8(_) => (1007, "invalid utf-8"),
        _ => (1002, "protocol error"),
    })
}

/// tungstenite in server role with our limits (the fuzz model reads them
/// from here); `leftover` holds the bytes that came after the request head.
pub fn context(leftover: Vec<u8>, is_chat: bool, chat_limit: usize) -> WebSocketContext {
    let (limit, buffer) = if is_chat {
        (chat_limit, READ_BUFFER)
    } else {
        (ECHO_MAX_MESSAGE, ECHO_READ_BUFFER)
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(buffer)
        // Every write goes straight into the outlet, which is our buffer.
        .write_buffer_size(0)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    WebSocketContext::from_partially_read(leftover, Role::Server, Some(config))
}

/// Stores what a frame changed in the turn's batch, at once: a socket
/// that resumes later in this turn, and the next frame's lookup, must find
/// it.
fn store_write(write: &Stored, env: &mut Env<'_>) {
    if !env.cfg.store_messages {
        return;
    }
    let done = match write {
        Stored::Message(accepted) => env
            .store
            .insert_event(&super::persist::message_row(accepted)),
        Stored::Change(change) => store_change(change, env.store),
        Stored::Read(m) => env.store.put_read(m.user, m.conv, m.id),
    };
    if let Err(e) = done {
        env.log.log(LogLevel::Error, format_args!("{e}"));
        // The turn is stored all or nothing: it will be rolled back.
        env.held.failed = true;
    }
}

/// An edit, deletion or reaction: its event, and its message's new state.
fn store_change(c: &Change, store: &mut Store) -> Result<(), StoreError> {
    store.insert_event(&c.row())?;
    match c.kind {
        EventKind::Edit => store.edit_message(c.target, &c.text, c.ts),
        EventKind::Delete => store.erase_message(c.target),
        EventKind::ReactOn | EventKind::ReactOff => {
            let on = c.kind == EventKind::ReactOn;
            store.set_reaction(c.target, c.user, &c.text, on, c.ts)
        }
        EventKind::Message
        | EventKind::RoomJoin
        | EventKind::RoomLeave
        | EventKind::Kick
        | EventKind::RoomMute => Ok(()),
    }
}

/// The chat's view of the stored messages: one primary-key read each. A
/// failed read is logged and fails the turn, like a failed write.
struct StoreLookup<'a> {
    store: &'a mut Store,
    log: &'a Logger,
    failed: &'a mut bool,
}

impl StoreLookup<'_> {
    fn ok<T: Default>(&mut self, r: Result<T, StoreError>) -> T {
        r.unwrap_or_else(|e| {
            self.log.log(LogLevel::Error, format_args!("{e}"));
            *self.failed = true;
            T::default()
        })
    }
}

impl Lookup for StoreLookup<'_> {
    fn message(&mut self, id: i64) -> Option<MessageInfo> {
        let r = self.store.message_info(id);
        self.ok(r)
    }
    fn reacted(&mut self, id: i64, user: UserId, emoji: &str) -> bool {
        let r = self.store.has_reaction(id, user, emoji);
        self.ok(r)
    }
    fn count_after(&mut self, conv: Conversation, id: i64) -> u64 {
        let r = self.store.count_after(conv, id);
        self.ok(r)
    }
}

/// Queues what a resuming socket (or event stream) missed, each event
/// framed by `frame` (the policy is the API's, see [`resume::replay`]);
/// rows of this turn's uncommitted batch make it one of the turn's
/// readers, which stand only if the commit does.
pub(super) fn replay(
    id: ConnId,
    user: UserId,
    since: i64,
    env: &mut Env<'_>,
    frame: impl Fn(&[u8]) -> Vec<u8>,
) {
    let max_bytes = env.cfg.max_output_bytes / 2;
    let (frames, newest) = resume::replay(
        user,
        since,
        env.cfg.resume_max,
        max_bytes,
        env.store,
        env.chat,
        env.log,
        frame,
    );
    if newest.is_some_and(|newest| newest > env.chat.stored_id()) {
        // Rows of this turn's batch, which the loop's own connection sees
        // before they are committed: they stand only if the commit does.
        env.held.readers.push(id);
    }
    if let Some(out) = env.fan.outlet(id) {
        out.push_owned(frames);
    }
}

fn echo(id: ConnId, opcode: u8, payload: &[u8], env: &mut Env<'_>) {
    if let Some(out) = env.fan.outlet(id)
        && out.accepts == Accepts::Frames
    {
        out.push_owned(ws_frame(opcode, payload));
    }
}
