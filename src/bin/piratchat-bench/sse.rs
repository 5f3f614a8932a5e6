//! An open event stream (`GET /api/events`) over a non-blocking mio
//! socket: the chunked body is decoded in place and cut into
//! Server-Sent Events blocks, and each block's `data:` line goes to the
//! scenario's handler, as a socket's text messages do.

use std::io::{ErrorKind, Read};

use mio::net::TcpStream;

use crate::ws::Handler;

/// Bytes per `read` (about 60 events of a 100-byte message).
const READ_CHUNK: usize = 16 * 1024;
/// Undecoded bytes a stream may hold before the bench calls it broken.
const MAX_PENDING: usize = 1 << 20;

/// An open stream, its head already read.
pub struct Sse {
    stream: TcpStream,
    /// Raw bytes not yet decoded from their chunks.
    raw: Vec<u8>,
    /// Decoded body bytes not yet cut into blocks.
    body: Vec<u8>,
    /// The read buffer, kept: no allocation per event.
    buf: Box<[u8]>,
}

impl Sse {
    /// The stream over `stream`, with the bytes that came after the head.
    pub fn new(stream: TcpStream, rest: Vec<u8>) -> Sse {
        Sse {
            stream,
            raw: rest,
            body: Vec::new(),
            buf: vec![0; READ_CHUNK].into(),
        }
    }

    /// Reads to `WouldBlock` and hands every whole event to `h`; `Some`
    /// (why) when the stream ended or broke.
    pub fn drain(&mut self, u: usize, h: &mut impl Handler, now_ns: u64) -> Option<String> {
        loop {
            if let Err(e) = self.decode(u, h, now_ns) {
                return Some(e);
            }
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Some("the server closed the stream".into()),
                Ok(n) => self.raw.extend_from_slice(&self.buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Some(format!("read: {e}")),
            }
            if self.raw.len() > MAX_PENDING {
                return Some("a chunk larger than the bench takes".into());
            }
        }
    }

    /// Decodes whole chunks, then hands on whole blocks.
    fn decode(&mut self, u: usize, h: &mut impl Handler, now_ns: u64) -> Result<(), String> {
        let mut at = 0;
        while let Some(eol) = find(&self.raw[at..], b"\r\n") {
            let size = std::str::from_utf8(&self.raw[at..at + eol])
                .ok()
                .and_then(|t| usize::from_str_radix(t, 16).ok())
                .ok_or("a bad chunk size")?;
            let start = at + eol + 2;
            if self.raw.len() < start + size + 2 {
                break;
            }
            if size == 0 {
                return Err("the server ended the stream".into());
            }
            self.body.extend_from_slice(&self.raw[start..start + size]);
            at = start + size + 2;
        }
        self.raw.drain(..at);
        let mut from = 0;
        while let Some(end) = find(&self.body[from..], b"\n\n") {
            let block = &self.body[from..from + end];
            for line in block.split(|&b| b == b'\n') {
                if let Some(data) = line.strip_prefix(b"data: ") {
                    let text = std::str::from_utf8(data).map_err(|_| "data not UTF-8")?;
                    h.on_event(u, text, now_ns);
                }
            }
            from += end + 2;
        }
        self.body.drain(..from);
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
