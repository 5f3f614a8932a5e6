//! Decoding of a `Transfer-Encoding: chunked` body (RFC 9112 §7.1), as a
//! stateless push decoder: it reads from the first body byte every time and
//! answers "complete", "need more" or an error.
//!
//! Every byte is judged when it is first seen, left to right, so a prefix of
//! a body either needs more or fails exactly as the whole body would. The
//! framing is strict where lenient parsers disagree (bare LF, whitespace
//! without an extension, signs): those disagreements are how requests get
//! smuggled past a proxy.

use super::limits::{CHUNK_FRAMING_SLACK, HttpError, Limits};

/// Hex digits of one chunk size. 16 fits any u64, and bounds the leading
/// zeros a peer can send.
const MAX_SIZE_DIGITS: usize = 16;

/// Bytes of one chunk-size line (size, extensions, not the CRLF). Extensions
/// are skipped, so there is no reason to accept long ones.
const MAX_SIZE_LINE: usize = 256;

/// Why decoding stopped before the end of the body.
enum Stop {
    /// The buffer ends before the body does.
    More,
    /// The body is malformed or too large.
    Fail(HttpError),
}

impl From<HttpError> for Stop {
    fn from(e: HttpError) -> Stop {
        Stop::Fail(e)
    }
}

/// Decodes the chunked body at the start of `buf`: `Some((data, used))` when
/// the whole body (through the trailer section) is in, `None` when more
/// bytes are needed.
pub(super) fn decode(buf: &[u8], limits: &Limits) -> Result<Option<(Vec<u8>, usize)>, HttpError> {
    let mut decoder = Decoder {
        buf,
        pos: 0,
        data: Vec::new(),
        framing: 0,
        limits,
    };
    match decoder.run() {
        Ok(()) => Ok(Some((decoder.data, decoder.pos))),
        Err(Stop::More) => Ok(None),
        Err(Stop::Fail(e)) => Err(e),
    }
}

/// A cursor over the body bytes with the data decoded so far.
struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    data: Vec<u8>,
    /// Framing bytes so far (size lines and CRLFs, not the trailer section).
    framing: usize,
    limits: &'a Limits,
}

impl Decoder<'_> {
    /// Chunks until the last one, then the trailer section.
    fn run(&mut self) -> Result<(), Stop> {
        loop {
            let size = self.size_line()?;
            if size == 0 {
                return self.trailer_section();
            }
            let end = self.pos.saturating_add(size);
            let data = self.buf.get(self.pos..end).ok_or(Stop::More)?;
            self.data.extend_from_slice(data);
            self.pos += size;
            self.crlf()?;
        }
    }

    /// The next byte, not yet consumed.
    fn peek(&self) -> Result<u8, Stop> {
        self.buf.get(self.pos).copied().ok_or(Stop::More)
    }

    /// Consumes one framing byte, charging it to the framing budget. The
    /// budget keeps a stream of tiny chunks from holding many times
    /// `max_body_bytes` in the connection's buffer.
    fn take_framing(&mut self) -> Result<(), Stop> {
        self.pos += 1;
        self.framing += 1;
        let budget = self
            .limits
            .max_body_bytes
            .saturating_add(CHUNK_FRAMING_SLACK);
        if self.framing > budget {
            return Err(HttpError::PayloadTooLarge.into());
        }
        Ok(())
    }

    /// `chunk-size [ chunk-ext ] CRLF`, returning the size.
    fn size_line(&mut self) -> Result<usize, Stop> {
        let start = self.pos;
        let mut size = 0u64;
        while let Some(digit) = (self.peek()? as char).to_digit(16) {
            if self.pos - start == MAX_SIZE_DIGITS {
                return Err(HttpError::BadRequest("chunk size too long").into());
            }
            size = size * 16 + u64::from(digit);
            // Refuse on the digit that crosses the limit, before the data.
            let room = self.limits.max_body_bytes.saturating_sub(self.data.len());
            if size > room as u64 {
                return Err(HttpError::PayloadTooLarge.into());
            }
            self.take_framing()?;
        }
        if self.pos == start {
            return Err(HttpError::BadRequest("bad chunk size").into());
        }
        self.extensions(start)?;
        self.crlf()?;
        // At most `room`, so it fits in usize.
        Ok(size as usize)
    }

    /// Skips `*( BWS ";" ext )` up to the CR ending the size line. Whitespace
    /// is only allowed before a `;`, so `5 \r\n` is refused: parsers that
    /// disagree on it can be made to frame the same body differently.
    fn extensions(&mut self, line_start: usize) -> Result<(), Stop> {
        let mut in_extension = false;
        loop {
            if self.pos - line_start >= MAX_SIZE_LINE {
                return Err(HttpError::BadRequest("chunk extension too long").into());
            }
            match self.peek()? {
                b'\r' if in_extension || !self.after_space() => {
                    return Ok(());
                }
                b';' => in_extension = true,
                b' ' | b'\t' => {}
                b'\n' => return Err(HttpError::BadRequest("bare LF in chunk").into()),
                b if in_extension && (b >= 0x20 && b != 0x7f) => {}
                _ => return Err(HttpError::BadRequest("bad chunk extension").into()),
            }
            self.take_framing()?;
        }
    }

    /// Whether the previous byte was a space or tab.
    fn after_space(&self) -> bool {
        matches!(self.buf[..self.pos].last(), Some(b' ' | b'\t'))
    }

    /// Exactly `\r\n`.
    fn crlf(&mut self) -> Result<(), Stop> {
        match self.peek()? {
            b'\r' => self.take_framing()?,
            b'\n' => return Err(HttpError::BadRequest("bare LF in chunk").into()),
            _ => return Err(HttpError::BadRequest("missing CRLF after chunk").into()),
        }
        match self.peek()? {
            b'\n' => self.take_framing(),
            _ => Err(HttpError::BadRequest("CR without LF in chunk").into()),
        }
    }

    /// `*( field-line CRLF ) CRLF` after the last chunk: framed here, line
    /// by line, bounded like a head, syntax-checked by httparse once
    /// complete, then dropped (nothing we serve reads trailers, and merging
    /// them into the headers invites confusion).
    fn trailer_section(&mut self) -> Result<(), Stop> {
        const BAD_TRAILER: HttpError = HttpError::BadRequest("bad trailer section");
        let rest = &self.buf[self.pos..];
        let window = &rest[..rest.len().min(self.limits.max_head_bytes)];
        // Framing first, so the CRLF rule and the line count are judged at
        // the byte that breaks them (as everywhere else in this decoder);
        // httparse alone would accept bare LF line ends.
        let (mut line_start, mut lines) = (0, 0);
        let mut end = None;
        for (i, _) in window.iter().enumerate().filter(|&(_, &b)| b == b'\n') {
            if i == 0 || window[i - 1] != b'\r' {
                return Err(BAD_TRAILER.into());
            }
            if i == line_start + 1 {
                end = Some(i + 1);
                break;
            }
            lines += 1;
            if lines > self.limits.max_headers {
                return Err(HttpError::HeadTooLarge.into());
            }
            line_start = i + 1;
        }
        let Some(end) = end else {
            if rest.len() > window.len() {
                return Err(HttpError::HeadTooLarge.into());
            }
            return Err(Stop::More);
        };
        let mut slots = vec![httparse::EMPTY_HEADER; lines];
        match httparse::parse_headers(&window[..end], &mut slots) {
            Ok(httparse::Status::Complete((len, _))) if len == end => {
                self.pos += end;
                Ok(())
            }
            _ => Err(BAD_TRAILER.into()),
        }
    }
}
