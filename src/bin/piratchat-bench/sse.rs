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

    /// Hands on every whole event the bytes so far hold.
    fn decode(&mut self, u: usize, h: &mut impl Handler, now_ns: u64) -> Result<(), String> {
        decode(&mut self.raw, &mut self.body, |data| {
            h.on_event(u, data, now_ns)
        })
    }
}

/// Decodes the whole chunks at the front of `raw` into `body`, then hands
/// the `data:` line of every whole block of `body` to `on_data`; what is
/// incomplete stays for the next read. An error for a bad chunk, or for
/// the last chunk (the server ended the stream).
fn decode(
    raw: &mut Vec<u8>,
    body: &mut Vec<u8>,
    mut on_data: impl FnMut(&str),
) -> Result<(), String> {
    let mut at = 0;
    let mut ended = false;
    while let Some(eol) = find(&raw[at..], b"\r\n") {
        let size = std::str::from_utf8(&raw[at..at + eol])
            .ok()
            .and_then(|t| usize::from_str_radix(t, 16).ok())
            .ok_or("a bad chunk size")?;
        let start = at + eol + 2;
        if raw.len() < start + size + 2 {
            break;
        }
        body.extend_from_slice(&raw[start..start + size]);
        at = start + size + 2;
        if size == 0 {
            ended = true;
            break;
        }
    }
    raw.drain(..at);
    let mut from = 0;
    while let Some(end) = find(&body[from..], b"\n\n") {
        for line in body[from..from + end].split(|&b| b == b'\n') {
            if let Some(data) = line.strip_prefix(b"data: ") {
                on_data(std::str::from_utf8(data).map_err(|_| "data not UTF-8")?);
            }
        }
        from += end + 2;
    }
    body.drain(..from);
    match ended {
        true => Err("the server ended the stream".into()),
        false => Ok(()),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunked body of two events and a ping, cut at every byte.
    #[test]
    fn every_split_of_the_input_gives_the_same_events() {
        let events = "id: 1\nevent: message\ndata: {\"a\":1}\n\n";
        let ping = ": ping\n\n";
        let two = "id: 2\nevent: edit\ndata: {\"b\":2}\n\n";
        let wire = format!(
            "{:x}\r\n{events}\r\n{:x}\r\n{ping}\r\n{:x}\r\n{two}\r\n",
            events.len(),
            ping.len(),
            two.len()
        );
        for cut in 0..=wire.len() {
            let (mut raw, mut body, mut got) = (Vec::new(), Vec::new(), Vec::new());
            for part in [&wire[..cut], &wire[cut..]] {
                raw.extend_from_slice(part.as_bytes());
                decode(&mut raw, &mut body, |d| got.push(d.to_string())).unwrap();
            }
            assert_eq!(got, [r#"{"a":1}"#, r#"{"b":2}"#], "cut at {cut}");
            assert!(raw.is_empty() && body.is_empty());
        }
        let mut raw = b"0\r\n\r\n".to_vec();
        assert!(
            decode(&mut raw, &mut Vec::new(), |_| {}).is_err(),
            "the end"
        );
        let mut raw = b"zz\r\n".to_vec();
        assert!(
            decode(&mut raw, &mut Vec::new(), |_| {}).is_err(),
            "a bad size"
        );
    }
}
