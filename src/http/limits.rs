//! The caps on one request, and why a request is refused: what both the
//! request parser and the chunked-body decoder speak of, below both.

/// Caps on one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request line plus headers (including the blank line), in bytes. Also
    /// caps the trailer section of a chunked body.
    pub max_head_bytes: usize,
    /// Header lines (and trailer lines of a chunked body).
    pub max_headers: usize,
    /// Decoded body bytes. The framing of a chunked body (size lines,
    /// extensions, CRLFs) gets the same budget again, plus
    /// [`CHUNK_FRAMING_SLACK`].
    pub max_body_bytes: usize,
}

/// Extra framing bytes a chunked body may use on top of `max_body_bytes`,
/// so that even a zero body limit admits `0\r\n\r\n` and a few extensions.
pub const CHUNK_FRAMING_SLACK: usize = 1024;

impl Limits {
    /// The most bytes one request can occupy on the wire under these limits:
    /// head, body, chunk framing and trailer section. [`parse_request`](super::parse_request) never
    /// answers `Partial` for a longer buffer, so a connection's input buffer
    /// capped at this size (plus one read) can never grow without bound.
    pub fn max_request_bytes(&self) -> usize {
        self.max_head_bytes
            .saturating_mul(2)
            .saturating_add(self.max_body_bytes.saturating_mul(2))
            .saturating_add(CHUNK_FRAMING_SLACK)
    }
}

/// Why a request was refused. Each variant says what the peer sees; every
/// one of them closes the connection after the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed request line, header syntax or chunk framing, both
    /// `Content-Length` and `Transfer-Encoding`, differing `Content-Length`s,
    /// an unknown transfer coding, an unsupported HTTP version, a missing or
    /// repeated `Host`, a request target that is not origin- or
    /// absolute-form: 400 `bad_request`, close. The string is for the log
    /// only.
    BadRequest(&'static str),
    /// Head (or chunked trailer section) over `max_head_bytes`, or more than
    /// `max_headers` header (or trailer) lines: 431 `headers_too_large`,
    /// close.
    HeadTooLarge,
    /// Body (declared or decoded) over `max_body_bytes`, or chunk framing
    /// over its budget (see [`Limits::max_body_bytes`]): 413
    /// `payload_too_large`, close.
    PayloadTooLarge,
}
