//! An event-stream (`GET /api/events`) client for the black-box tests: a
//! blocking `TcpStream` with a read timeout, the chunked body decoded, and
//! the body cut into Server-Sent Events blocks.

use super::{Resp, Server, read_response};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;

/// One block of the stream: an event, or a comment (a ping).
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// An event: its `id:` (none for `resync`), `event:` and `data:`.
    Event {
        id: Option<i64>,
        event: String,
        data: Value,
    },
    /// A `: text` comment line.
    Comment(String),
}

/// An open stream.
pub struct Stream {
    pub sock: TcpStream,
    /// The response head.
    pub head: Resp,
    /// Body bytes received and not yet cut into blocks.
    body: Vec<u8>,
    /// Raw bytes not yet decoded from their chunks.
    raw: Vec<u8>,
    chunked: bool,
    /// The last chunk arrived: the server ended the body.
    pub ended: bool,
}

/// The request line and headers of `GET target` as `token`.
pub fn request(target: &str, token: &str, extra: &[(&str, &str)], http10: bool) -> String {
    let version = if http10 { "1.0" } else { "1.1" };
    let mut s =
        format!("GET {target} HTTP/{version}\r\nHost: localhost\r\nCookie: session={token}\r\n");
    for (k, v) in extra {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s
}

/// Tries to open `target` (`/api/events?...`) as `token` with `extra`
/// headers: the stream, or the response that refused it.
pub fn try_open(
    server: &Server,
    target: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> Result<Stream, Resp> {
    open_with(server, &request(target, token, extra, false))
}

/// Sends `request` on a new connection: the stream, or the response that
/// refused it.
pub fn open_with(server: &Server, request: &str) -> Result<Stream, Resp> {
    let mut sock = server.connect();
    sock.write_all(request.as_bytes()).unwrap();
    // A stream's head has no Content-Length, so `read_response` reads no
    // body; an error's body comes with its length.
    let head = read_response(&mut sock).expect("a response");
    if head.status != 200 {
        return Err(head);
    }
    let chunked = head.header("transfer-encoding") == Some("chunked");
    Ok(Stream {
        sock,
        head,
        body: Vec::new(),
        raw: Vec::new(),
        chunked,
        ended: false,
    })
}

/// Opens `/api/events` for `token`, resuming after `since` if given.
pub fn open(server: &Server, token: &str, since: Option<i64>) -> Stream {
    let target = match since {
        Some(id) => format!("/api/events?since={id}"),
        None => "/api/events".to_string(),
    };
    try_open(server, &target, token, &[]).unwrap_or_else(|r| panic!("refused: {r:?}"))
}

impl Stream {
    /// Reads more from the socket and decodes it; false at the end of the
    /// body or of the connection.
    fn fill(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let n = match self.sock.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("reading the stream: {e}"),
        };
        if n == 0 {
            return false;
        }
        if !self.chunked {
            self.body.extend_from_slice(&buf[..n]);
            return true;
        }
        self.raw.extend_from_slice(&buf[..n]);
        self.decode_chunks();
        true
    }

    fn decode_chunks(&mut self) {
        loop {
            let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = std::str::from_utf8(&self.raw[..eol]).unwrap();
            let size = usize::from_str_radix(size_text, 16).expect("a chunk size");
            if self.raw.len() < eol + 2 + size + 2 {
                return;
            }
            let data = &self.raw[eol + 2..eol + 2 + size];
            assert_eq!(
                &self.raw[eol + 2 + size..eol + 4 + size],
                b"\r\n",
                "chunk end"
            );
            self.body.extend_from_slice(data);
            self.raw.drain(..eol + 4 + size);
            if size == 0 {
                self.ended = true;
                assert!(self.raw.is_empty(), "bytes after the last chunk");
                return;
            }
        }
    }

    /// The next block; `None` when the body or the connection ends first.
    pub fn next_block(&mut self) -> Option<Block> {
        loop {
            if let Some(end) = self.body.windows(2).position(|w| w == b"\n\n") {
                let text = String::from_utf8(self.body[..end].to_vec()).unwrap();
                self.body.drain(..end + 2);
                return Some(parse_block(&text));
            }
            if self.ended || !self.fill() {
                assert!(self.body.is_empty(), "a cut block: {:?}", self.body);
                return None;
            }
        }
    }

    /// The next event, skipping comments (pings); panics at the end.
    pub fn event(&mut self) -> (Option<i64>, String, Value) {
        loop {
            match self.next_block().expect("an event before the end") {
                Block::Event { id, event, data } => return (id, event, data),
                Block::Comment(_) => {}
            }
        }
    }

    /// The next event's data, checking that it has an id equal to its
    /// JSON's and that its `event:` names its kind.
    pub fn data(&mut self) -> Value {
        let (id, event, data) = self.event();
        assert_eq!(id, data["id"].as_i64(), "id line of {data}");
        let kind = data["event"].as_str().unwrap_or("message");
        assert_eq!(event, kind, "event line of {data}");
        data
    }

    /// Reads to the end; whether the server ended the body cleanly (the
    /// last chunk) before closing.
    pub fn ends_cleanly(&mut self) -> bool {
        while let Some(block) = self.next_block() {
            assert!(
                matches!(block, Block::Comment(_)),
                "after the end: {block:?}"
            );
        }
        let ended = self.ended;
        let mut rest = Vec::new();
        let _ = self.sock.read_to_end(&mut rest);
        assert!(rest.is_empty(), "bytes after the end: {rest:?}");
        ended
    }
}

/// One block's lines.
fn parse_block(text: &str) -> Block {
    if let Some(comment) = text.strip_prefix(':') {
        assert!(!comment.contains('\n'), "one comment line: {text:?}");
        return Block::Comment(comment.trim().to_string());
    }
    let (mut id, mut event, mut data) = (None, None, None);
    for line in text.split('\n') {
        let (field, value) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("a field: {line:?}"));
        match field {
            "id" => id = Some(value.parse().expect("a numeric id")),
            "event" => event = Some(value.to_string()),
            "data" => {
                assert!(data.is_none(), "one data line: {text:?}");
                data = Some(serde_json::from_str(value).expect("JSON data"));
            }
            other => panic!("unknown field {other:?} in {text:?}"),
        }
    }
    Block::Event {
        id,
        event: event.expect("an event line"),
        data: data.expect("a data line"),
    }
}
