//! The request push parser: give it everything received so far; it answers
//! `Complete` (a request and how many bytes it used), `Partial` (nothing
//! consumed; call again with more bytes) or an error saying what the peer sees.

/// Caps on one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request line plus headers (including the blank line), in bytes.
    pub max_head_bytes: usize,
    /// Header lines.
    pub max_headers: usize,
    /// Decoded body bytes.
    pub max_body_bytes: usize,
}

/// The request method. Anything else is kept as `Other` so the router can
/// answer 405 with `Allow`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// Any other token (PUT, OPTIONS, ...).
    Other(String),
}

/// HTTP version of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: close after the response unless `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: keep-alive unless `Connection: close`.
    Http11,
}

/// One complete request.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// The request target as sent (path and query, still percent-encoded).
    pub target: String,
    /// Version.
    pub version: Version,
    /// Header names lower-cased, values as sent, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Decoded body (de-chunked).
    pub body: Vec<u8>,
    /// Whether the connection may stay open after the response (version
    /// default and `Connection` header).
    pub keep_alive: bool,
}

impl Request {
    /// The first header of this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        todo!("helper: http")
    }

    /// The first header of this name as a str, if it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        todo!("helper: http")
    }

    /// The path part of the target (before `?`).
    pub fn path(&self) -> &str {
        todo!("helper: http")
    }

    /// The query part of the target (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        todo!("helper: http")
    }
}

/// Where parsing stands.
#[derive(Debug)]
pub enum Parsed {
    /// A whole request; the first `usize` bytes of the input belong to it.
    Complete(Request, usize),
    /// More bytes are needed; nothing was consumed. `head_done` tells the
    /// caller the head is in and the body is awaited (switch to the body
    /// deadline), and `expect_continue` that the client sent
    /// `Expect: 100-continue` and waits for `100 Continue` before sending it.
    Partial {
        /// The head is complete, the body is not.
        head_done: bool,
        /// The client asked for `100 Continue`.
        expect_continue: bool,
    },
}

/// Why a request was refused. Each variant says what the peer sees; every
/// one of them closes the connection after the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed request line, header syntax or chunk framing, both
    /// `Content-Length` and `Transfer-Encoding`, differing `Content-Length`s,
    /// an unknown transfer coding, an unsupported HTTP version: 400
    /// `bad_request`, close. The string is for the log only.
    BadRequest(&'static str),
    /// Head over `max_head_bytes` or more than `max_headers` headers: 431
    /// `headers_too_large`, close.
    HeadTooLarge,
    /// Body (declared or decoded) over `max_body_bytes`: 413
    /// `payload_too_large`, close.
    PayloadTooLarge,
}

/// Parses the request at the start of `buf`.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Parsed, HttpError> {
    todo!("helper: http")
}
