//! An open client WebSocket over a non-blocking mio socket: a read half that
//! parses the server's frames in place (see `wsframe` for why not
//! tungstenite's reader) and a write half that queues masked frames.

use std::io::{ErrorKind, Read, Write};

use mio::net::TcpStream;

use crate::wsframe::{self, Masker, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT};

/// Largest frame or message accepted from the server; its own default
/// limit is 16 KiB, so this only stops a runaway peer.
const MAX_MESSAGE: usize = 1 << 20;
/// Outgoing bytes one socket may queue before the bench calls it broken
/// (the server is not reading).
const MAX_OUT: usize = 1 << 20;

/// What a scenario does with the traffic of open sockets.
pub trait Handler {
    /// A whole text message arrived on user `u`'s socket; `tx` may be
    /// written to.
    fn on_text(&mut self, u: usize, tx: &mut WsTx, text: &str, now_ns: u64);
    /// The `data:` line of an event arrived on user `u`'s event stream
    /// (the same JSON a socket gets as a text message).
    fn on_event(&mut self, _u: usize, _data: &str, _now_ns: u64) {}
}

/// The write half: what a handler may use.
pub struct WsTx {
    stream: TcpStream,
    out: Vec<u8>,
    written: usize,
    masker: Masker,
}

impl WsTx {
    /// Queues a text frame; it goes out at the next flush (the engine
    /// flushes after every drain, `Engine::send` at once).
    pub fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.queue(OP_TEXT, text.as_bytes())
    }

    fn queue(&mut self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        if self.out.len() - self.written > MAX_OUT {
            return Err(format!(
                "more than {MAX_OUT} bytes queued: the server is not reading"
            ));
        }
        let key = self.masker.next_key();
        wsframe::encode(&mut self.out, opcode, payload, key);
        Ok(())
    }

    /// Writes queued bytes until done or `WouldBlock` (the rest goes on the
    /// next writable event).
    pub fn flush(&mut self) -> Result<(), String> {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return Err("write returned 0".into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        self.out.clear();
        self.written = 0;
        Ok(())
    }
}

/// What one `read` found.
enum Filled {
    /// It filled the buffer: there may be more, read again.
    Full,
    /// A short read: the socket's receive queue was empty when it returned.
    /// Edge-triggered epoll reports every later arrival (bytes or FIN) as a
    /// new event, so the bench stops here instead of paying a second `recv`
    /// per wakeup just to see `WouldBlock` (at a smooth rate, wakeups carry
    /// one frame each and that second call doubled the syscalls). A FIN that
    /// came before the wakeup is flagged on the event (`hup`), and then the
    /// bench reads on.
    Drained,
    /// `WouldBlock`.
    Empty,
}

/// The read half.
struct WsRx {
    /// Received bytes; `buf[start..end]` is not parsed yet.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// A fragmented text message being assembled.
    message: Option<Vec<u8>>,
    /// The server's close frame, once one came.
    close_reason: Option<String>,
    /// We sent a close frame (ours or the echo of the server's).
    sent_close: bool,
}

/// An open client WebSocket.
pub struct Ws {
    tx: WsTx,
    rx: WsRx,
}

impl Ws {
    /// Wraps a socket after its 101; `early` are bytes that came with it.
    pub fn new(stream: TcpStream, early: &[u8], read_buffer: usize) -> Self {
        let mut buf = vec![0; read_buffer.max(early.len())];
        buf[..early.len()].copy_from_slice(early);
        let rx = WsRx {
            buf,
            start: 0,
            end: early.len(),
            message: None,
            close_reason: None,
            sent_close: false,
        };
        let tx = WsTx {
            stream,
            out: Vec::new(),
            written: 0,
            masker: Masker::new(),
        };
        Self { tx, rx }
    }

    /// The write half.
    pub fn tx(&mut self) -> &mut WsTx {
        &mut self.tx
    }

    /// Sends a close frame (code 1000) unless one was sent already.
    pub fn close(&mut self) -> Result<(), String> {
        if !self.rx.sent_close {
            self.rx.sent_close = true;
            self.tx.queue(OP_CLOSE, &1000u16.to_be_bytes())?;
        }
        self.tx.flush()
    }

    /// Reads and handles frames until the socket is drained, then flushes
    /// replies; `Some(reason)` when the socket is finished (closed or
    /// broken). With `hup` (the event carried the peer's FIN or an error),
    /// reads go on to end of stream: a short read would hide it.
    pub fn drain(
        &mut self,
        u: usize,
        h: &mut impl Handler,
        now_ns: u64,
        hup: bool,
    ) -> Option<String> {
        loop {
            if let Err(e) = self.handle_frames(u, h, now_ns) {
                return Some(e);
            }
            match self.fill() {
                Ok(Filled::Full) => {}
                Ok(Filled::Drained) if hup => {}
                Ok(Filled::Drained) => {
                    // Frames that came with the last read are still to handle.
                    if let Err(e) = self.handle_frames(u, h, now_ns) {
                        return Some(e);
                    }
                    return self.tx.flush().err();
                }
                Ok(Filled::Empty) => return self.tx.flush().err(),
                Err(e) => return Some(e),
            }
        }
    }

    /// Reads once into the free end of the buffer.
    fn fill(&mut self) -> Result<Filled, String> {
        let rx = &mut self.rx;
        if rx.start == rx.end {
            (rx.start, rx.end) = (0, 0);
        } else if rx.end == rx.buf.len() {
            if rx.start > 0 {
                rx.buf.copy_within(rx.start..rx.end, 0);
                (rx.start, rx.end) = (0, rx.end - rx.start);
            } else {
                // One frame larger than the buffer: grow (parse caps the size).
                rx.buf.resize(rx.buf.len() * 2, 0);
            }
        }
        loop {
            match self.tx.stream.read(&mut rx.buf[rx.end..]) {
                Ok(0) => {
                    let why = rx.close_reason.take();
                    return Err(
                        why.unwrap_or_else(|| "connection closed without a close frame".into())
                    );
                }
                Ok(n) => {
                    let room = rx.buf.len() - rx.end;
                    rx.end += n;
                    return Ok(if n < room {
                        Filled::Drained
                    } else {
                        Filled::Full
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Filled::Empty),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// Handles every complete frame in the buffer.
    fn handle_frames(&mut self, u: usize, h: &mut impl Handler, now_ns: u64) -> Result<(), String> {
        let Ws { tx, rx } = self;
        loop {
            let pending = &rx.buf[rx.start..rx.end];
            let Some(head) = wsframe::parse(pending, MAX_MESSAGE).map_err(|e| e.to_string())?
            else {
                return Ok(());
            };
            let payload = rx.start + head.payload.start..rx.start + head.payload.end;
            rx.start += head.payload.end;
            if rx.close_reason.is_some() {
                continue; // Nothing counts after the server's close frame.
            }
            let data = &rx.buf[payload];
            match (head.opcode, head.fin, &mut rx.message) {
                (OP_TEXT, true, None) => h.on_text(u, tx, utf8(data)?, now_ns),
                (OP_TEXT, false, m @ None) => *m = Some(data.to_vec()),
                (OP_CONT, fin, Some(m)) if m.len() + data.len() <= MAX_MESSAGE => {
                    m.extend_from_slice(data);
                    if fin {
                        let whole = rx.message.take().unwrap_or_default();
                        h.on_text(u, tx, utf8(&whole)?, now_ns);
                    }
                }
                (OP_TEXT | OP_CONT, ..) => return Err("bad fragmentation".into()),
                (OP_BINARY, ..) => return Err("binary frame from the server".into()),
                (OP_PING, ..) => tx.queue(OP_PONG, data)?,
                (OP_PONG, ..) => {}
                _ => {
                    rx.close_reason = Some(close_reason(data));
                    if !rx.sent_close {
                        rx.sent_close = true;
                        tx.queue(OP_CLOSE, data.get(..2).unwrap_or_default())?;
                    }
                }
            }
        }
    }
}

/// A text payload as `&str`.
fn utf8(data: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(data).map_err(|_| "invalid UTF-8 in a text frame".into())
}

/// A close frame's payload for the report.
fn close_reason(payload: &[u8]) -> String {
    match payload {
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            format!("close frame {code} {:?}", String::from_utf8_lossy(reason))
        }
        _ => "close frame without a code".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons() {
        assert_eq!(
            close_reason(&[0x03, 0xE9, b'b', b'y', b'e']),
            "close frame 1001 \"bye\""
        );
        assert_eq!(close_reason(&[]), "close frame without a code");
    }
}
