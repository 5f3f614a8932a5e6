//! A reference reading of a client's WebSocket byte stream, written from
//! RFC 6455 and independent of tungstenite: which messages a server must
//! hand up, and how the stream must end (a failure with which close code, a
//! close frame from the client, or simply more bytes awaited).
//!
//! The `ws_frames` and `connection` fuzz targets compare the real reader
//! (tungstenite configured by `src/server/ws.rs` itself, with its
//! close-code mapping) against it, and `tests/fuzz_regressions.rs`
//! includes this file to replay defects the same way. It uses only `std`,
//! `tungstenite` and `piratchat`, so both crates can include it.

use piratchat::server::ws;
use std::io::{self, Read, Write};
use tungstenite::error::Error as WsError;
use tungstenite::protocol::WebSocketContext;

/// The message and frame limit of `/ws` (`Config::default()`).
pub const CHAT_LIMIT: usize = 16 * 1024;

/// The message and frame limit of `/echo`.
pub const ECHO_LIMIT: usize = ws::ECHO_MAX_MESSAGE;

/// A server-role context, configured by the server's own code: as for
/// `/echo` with [`ECHO_LIMIT`], else as for a chat socket with `limit`.
pub fn server_context(limit: usize, leftover: Vec<u8>) -> WebSocketContext {
    ws::context(leftover, limit != ECHO_LIMIT, limit)
}

/// The close code the server answers a read error with (the server's own
/// mapping); `None` where it sends no close frame (would block, closed,
/// connection lost).
pub fn close_code_for(e: &WsError) -> Option<u16> {
    ws::fail_code(e).map(|(code, _)| code)
}

/// A message the server must hand up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// A complete text message.
    Text(String),
    /// A complete binary message.
    Binary(Vec<u8>),
    /// A ping with its payload.
    Ping(Vec<u8>),
    /// A pong with its payload.
    Pong(Vec<u8>),
}

/// How the stream ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The bytes stop inside a frame or between frames: nothing is wrong yet.
    More,
    /// A violation: the server fails the connection with this close code.
    Fail(u16),
    /// The client sent a close frame; the server's reply carries this code
    /// (`None`: an empty close frame). Whatever follows is not looked at.
    Close(Option<u16>),
}

/// What a server must make of `bytes` under `limit`: the messages in order,
/// then how it ends.
pub fn expect(bytes: &[u8], limit: usize) -> (Vec<Msg>, End) {
    let mut msgs = Vec::new();
    let mut pos = 0;
    // A fragmented message in progress: (is_text, bytes so far).
    let mut partial: Option<(bool, Vec<u8>)> = None;
    loop {
        let frame = match frame_at(&bytes[pos..], limit) {
            Ok(Some((frame, used))) => {
                pos += used;
                frame
            }
            Ok(None) => return (msgs, End::More),
            Err(code) => return (msgs, End::Fail(code)),
        };
        match next(frame, &mut partial, limit) {
            Ok(Some(Step::Msg(m))) => msgs.push(m),
            Ok(Some(Step::Close(code))) => return (msgs, End::Close(code)),
            Ok(None) => {}
            Err(code) => return (msgs, End::Fail(code)),
        }
    }
}

/// One frame, unmasked.
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

enum Step {
    Msg(Msg),
    Close(Option<u16>),
}

/// The frame at the start of `b`: `Ok(None)` when it is not all there.
/// Errors found in the header count as soon as the header is complete
/// (opcode, declared length), the others once the payload is in.
fn frame_at(b: &[u8], limit: usize) -> Result<Option<(Frame, usize)>, u16> {
    let (Some(&first), Some(&second)) = (b.first(), b.get(1)) else {
        return Ok(None);
    };
    let (len, mut at) = match second & 0x7f {
        126 => match b.get(2..4) {
            Some(x) => (u64::from(u16::from_be_bytes([x[0], x[1]])), 4),
            None => return Ok(None),
        },
        127 => match b.get(2..10) {
            Some(x) => (u64::from_be_bytes(x.try_into().expect("8 bytes")), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let masked = second & 0x80 != 0;
    let mask = if masked {
        let Some(m) = b.get(at..at + 4) else {
            return Ok(None);
        };
        at += 4;
        Some([m[0], m[1], m[2], m[3]])
    } else {
        None
    };
    let opcode = first & 0x0f;
    if matches!(opcode, 3..=7 | 11..=15) {
        return Err(1002);
    }
    if len > limit as u64 {
        return Err(1009);
    }
    let end = at + len as usize;
    let Some(raw) = b.get(at..end) else {
        return Ok(None);
    };
    // RFC 6455 §5.1: a server fails on an unmasked client frame; §5.2: on
    // reserved bits without an extension that defines them.
    let Some(mask) = mask else { return Err(1002) };
    if first & 0x70 != 0 {
        return Err(1002);
    }
    let payload = raw
        .iter()
        .enumerate()
        .map(|(i, x)| x ^ mask[i % 4])
        .collect();
    let frame = Frame {
        fin: first & 0x80 != 0,
        opcode,
        payload,
    };
    Ok(Some((frame, end)))
}

/// What one complete frame does to the message stream.
fn next(
    f: Frame,
    partial: &mut Option<(bool, Vec<u8>)>,
    limit: usize,
) -> Result<Option<Step>, u16> {
    if f.opcode >= 8 {
        if !f.fin || f.payload.len() > 125 {
            return Err(1002);
        }
        return Ok(Some(match f.opcode {
            8 => Step::Close(close_reply(&f.payload)?),
            9 => Step::Msg(Msg::Ping(f.payload)),
            _ => Step::Msg(Msg::Pong(f.payload)),
        }));
    }
    let (is_text, data) = match (f.opcode, partial.take()) {
        // A continuation with nothing to continue.
        (0, None) => return Err(1002),
        (0, Some((is_text, mut data))) => {
            if data.len() + f.payload.len() > limit {
                return Err(1009);
            }
            data.extend_from_slice(&f.payload);
            (is_text, data)
        }
        // A new message while one is still in progress.
        (_, Some(_)) => return Err(1002),
        // Reserved opcodes were refused with the header.
        (op, None) => (op == 1, f.payload),
    };
    if is_text && utf8_broken(&data, f.fin) {
        return Err(1007);
    }
    if !f.fin {
        *partial = Some((is_text, data));
        return Ok(None);
    }
    Ok(Some(Step::Msg(if is_text {
        Msg::Text(String::from_utf8(data).expect("checked above"))
    } else {
        Msg::Binary(data)
    })))
}

/// Whether `data` is not UTF-8: an invalid sequence anywhere, or (for the
/// last fragment) one cut off at the end.
fn utf8_broken(data: &[u8], last: bool) -> bool {
    match std::str::from_utf8(data) {
        Ok(_) => false,
        Err(e) => last || e.error_len().is_some(),
    }
}

/// The code of the server's reply to a client's close frame (RFC 6455
/// §5.5.1: it echoes the code), or the failure the frame itself is.
fn close_reply(payload: &[u8]) -> Result<Option<u16>, u16> {
    match payload {
        [] => Ok(None),
        [_] => Err(1002),
        [a, b, reason @ ..] => {
            if std::str::from_utf8(reason).is_err() {
                return Err(1007);
            }
            let code = u16::from_be_bytes([*a, *b]);
            // A code a peer may not send is answered with 1002.
            Ok(Some(if close_code_allowed(code) { code } else { 1002 }))
        }
    }
}

/// RFC 6455 §7.4: the codes an endpoint may put in a close frame (the
/// defined ones, less 1004-1006 and 1015, plus 3000-4999). 1014 was
/// registered later; like tungstenite (and the Autobahn cases) we refuse it.
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

/// One frame as a server writes it (never masked): opcode and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFrame {
    /// The opcode.
    pub opcode: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// The code of a close frame, if it carries one.
    pub fn close_code(&self) -> Option<u16> {
        match self.payload.as_slice() {
            [a, b, ..] if self.opcode == 8 => Some(u16::from_be_bytes([*a, *b])),
            _ => None,
        }
    }
}

/// Splits a server's output into frames; `None` if it is not a clean
/// sequence of unmasked, final, reserved-bit-free frames (a server bug).
pub fn server_frames(mut b: &[u8]) -> Option<Vec<ServerFrame>> {
    let mut frames = Vec::new();
    while !b.is_empty() {
        let (&first, &second) = (b.first()?, b.get(1)?);
        if first & 0x70 != 0 || first & 0x80 == 0 || second & 0x80 != 0 {
            return None;
        }
        let (len, at): (usize, usize) = match second {
            126 => (
                usize::from(u16::from_be_bytes(b.get(2..4)?.try_into().ok()?)),
                4,
            ),
            127 => (
                usize::try_from(u64::from_be_bytes(b.get(2..10)?.try_into().ok()?)).ok()?,
                10,
            ),
            n => (usize::from(n), 2),
        };
        let payload = b.get(at..at.checked_add(len)?)?.to_vec();
        frames.push(ServerFrame {
            opcode: first & 0x0f,
            payload,
        });
        b = &b[at + len..];
    }
    Some(frames)
}

/// A client byte stream in memory, handed over in chunks: `read` returns
/// `WouldBlock` at the end of each chunk until [`Chunked::release`] makes
/// the next one readable, and end of file once everything is read and
/// [`Chunked::eof`] was set.
pub struct Chunked {
    data: Vec<u8>,
    pos: usize,
    avail: usize,
    chunk: usize,
    eof: bool,
}

impl Chunked {
    /// `data` in chunks of `chunk` bytes (at least one); nothing readable yet.
    pub fn new(data: Vec<u8>, chunk: usize) -> Chunked {
        Chunked {
            data,
            pos: 0,
            avail: 0,
            chunk: chunk.max(1),
            eof: false,
        }
    }

    /// Makes the next chunk readable; false when there is none left.
    pub fn release(&mut self) -> bool {
        if self.avail == self.data.len() {
            return false;
        }
        self.avail = (self.avail + self.chunk).min(self.data.len());
        true
    }

    /// From now on, reading past the data gives end of file.
    pub fn eof(&mut self) {
        self.eof = true;
    }

    /// Bytes read so far.
    pub fn read_so_far(&self) -> usize {
        self.pos
    }
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.avail {
            if self.eof && self.avail == self.data.len() {
                return Ok(0);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.avail - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// tungstenite's stream in the `ws_frames` target: reads from a
/// [`Chunked`], writes into a `Vec`, as the server's writes go into the
/// connection's outlet.
pub struct Duplex<'a> {
    /// The client's bytes.
    pub input: &'a mut Chunked,
    /// What the server wrote.
    pub output: &'a mut Vec<u8>,
}

impl Read for Duplex<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Duplex<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
