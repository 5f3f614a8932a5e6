//! The request push parser: give it everything received so far; it answers
//! `Complete` (a request and how many bytes it used), `Partial` (nothing
//! consumed; call again with more bytes) or an error saying what the peer sees.
//!
//! The parser keeps no state between calls, so the caller only has to keep
//! the bytes. Every rule that depends on a byte is decided when that byte is
//! first seen, which is why each strict prefix of a request gives `Partial`
//! or the very error the whole request gives, and why limits trip as soon as
//! the offending byte arrives instead of after the peer has sent everything.

use super::chunked;
use super::limits::{HttpError, Limits};

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

impl Method {
    /// Methods are case-sensitive (RFC 9110 §9.1): `get` is `Other`.
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            other => Method::Other(other.to_owned()),
        }
    }

    /// The method token as sent (for logs and `Allow` comparisons).
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Other(token) => token,
        }
    }
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
    /// The request target in origin-form (path and query, still
    /// percent-encoded). An absolute-form target (`http://host/p?q`) has
    /// already been reduced to its path and query (`/p?q`).
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
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first header of this name as a str, if it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The path part of the target (before `?`).
    pub fn path(&self) -> &str {
        match self.target.split_once('?') {
            Some((path, _)) => path,
            None => &self.target,
        }
    }

    /// The query part of the target (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
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
    /// The parser does not remember having said so: the caller sends
    /// `100 Continue` once per request.
    Partial {
        /// The head is complete, the body is not.
        head_done: bool,
        /// The client asked for `100 Continue` (HTTP/1.1 only; RFC 9110
        /// §10.1.1 says to ignore it from HTTP/1.0 clients).
        expect_continue: bool,
    },
}

/// How the body is delimited, decided from the head alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body headers: the body is empty.
    Empty,
    /// `Content-Length`, already checked against `max_body_bytes`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the head says, checked, before any body byte is looked at.
struct Head {
    version: Version,
    target: String,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
}

/// Parses the request at the start of `buf`.
///
/// Never panics, never reports more than `buf.len()` bytes consumed, and
/// does work bounded by [`Limits::max_request_bytes`] whatever `buf` holds.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Parsed, HttpError> {
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut raw = httparse::Request::new(&mut slots);
    let Some(head_len) = parse_head(&mut raw, buf, limits)? else {
        return Ok(Parsed::Partial {
            head_done: false,
            expect_continue: false,
        });
    };
    let head = check_head(&raw, limits)?;
    let rest = &buf[head_len..];
    let (body, body_len) = match head.framing {
        Framing::Empty => (Vec::new(), 0),
        Framing::Length(n) if rest.len() >= n => (rest[..n].to_vec(), n),
        Framing::Length(_) => return Ok(awaiting_body(&head)),
        Framing::Chunked => match chunked::decode(rest, limits)? {
            Some(done) => done,
            None => return Ok(awaiting_body(&head)),
        },
    };
    let request = Request {
        method: Method::from_token(raw.method.unwrap_or_default()),
        target: head.target,
        version: head.version,
        headers: owned_headers(raw.headers),
        body,
        keep_alive: head.keep_alive,
    };
    Ok(Parsed::Complete(request, head_len + body_len))
}

/// Runs httparse over the head: `Some(head_len)` once it is complete.
fn parse_head<'b>(
    raw: &mut httparse::Request<'_, 'b>,
    buf: &'b [u8],
    limits: &Limits,
) -> Result<Option<usize>, HttpError> {
    // Only the first `max_head_bytes` can hold a valid head; parsing no more
    // bounds the work per call and makes "still partial" mean "too large".
    let window = &buf[..buf.len().min(limits.max_head_bytes)];
    match raw.parse(window) {
        Ok(httparse::Status::Complete(n)) => Ok(Some(n)),
        Ok(httparse::Status::Partial) if buf.len() > window.len() => Err(HttpError::HeadTooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::HeadTooLarge),
        Err(e) => Err(HttpError::BadRequest(head_error(e))),
    }
}

/// The `Partial` answer once the head is in.
fn awaiting_body(head: &Head) -> Parsed {
    Parsed::Partial {
        head_done: true,
        expect_continue: head.expect_continue,
    }
}

/// A log string for an httparse syntax error.
fn head_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Token => "invalid request line",
        httparse::Error::Version => "unsupported HTTP version",
        // Status is for responses and TooManyHeaders is handled by the
        // caller; keep a string rather than a panic for both.
        _ => "malformed head",
    }
}

/// Applies every head-level rule to a complete httparse head.
fn check_head(raw: &httparse::Request, limits: &Limits) -> Result<Head, HttpError> {
    let version = match raw.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HttpError::BadRequest("unsupported HTTP version")),
    };
    let target = origin_form(raw.path.unwrap_or_default())?;
    let hosts = values(raw.headers, "host").count();
    // RFC 9112 §3.2: 1.1 needs exactly one Host; more than one is always
    // an error (two parties might pick different ones).
    if hosts > 1 || (version == Version::Http11 && hosts == 0) {
        return Err(HttpError::BadRequest("missing or repeated Host"));
    }
    let framing = framing(raw.headers, version, limits)?;
    let keep_alive = match version {
        Version::Http11 => !has_token(raw.headers, "connection", "close"),
        Version::Http10 => {
            has_token(raw.headers, "connection", "keep-alive")
                && !has_token(raw.headers, "connection", "close")
        }
    };
    let expect_continue = version == Version::Http11
        && values(raw.headers, "expect").any(|v| trim_ows(v).eq_ignore_ascii_case(b"100-continue"));
    Ok(Head {
        version,
        target,
        framing,
        keep_alive,
        expect_continue,
    })
}

/// Reduces a request target to origin-form (`/path?query`).
///
/// Accepts origin-form as is and absolute-form with an `http` or `https`
/// scheme and a non-empty authority (RFC 9112 §3.2.2, which servers must
/// accept); `*` (asterisk-form, only for OPTIONS, which we refuse anyway),
/// authority-form and anything else are refused.
fn origin_form(target: &str) -> Result<String, HttpError> {
    const BAD: HttpError = HttpError::BadRequest("bad request target");
    // A fragment is never part of a request target (RFC 9112 §3.2).
    if target.contains('#') {
        return Err(BAD);
    }
    if target.starts_with('/') {
        return Ok(target.to_owned());
    }
    let (scheme, rest) = target.split_once("://").ok_or(BAD)?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(BAD);
    }
    let path_at = rest.find(['/', '?']).unwrap_or(rest.len());
    if path_at == 0 {
        return Err(BAD);
    }
    match &rest[path_at..] {
        "" => Ok("/".to_owned()),
        tail if tail.starts_with('?') => Ok(format!("/{tail}")),
        tail => Ok(tail.to_owned()),
    }
}

/// Decides the body framing from `Content-Length` and `Transfer-Encoding`.
fn framing(
    headers: &[httparse::Header],
    version: Version,
    limits: &Limits,
) -> Result<Framing, HttpError> {
    let length = content_length(headers)?;
    let has_te = values(headers, "transfer-encoding").next().is_some();
    match (length, has_te) {
        // The classic smuggling pair: refuse rather than pick one.
        (Some(_), true) => Err(HttpError::BadRequest(
            "both Content-Length and Transfer-Encoding",
        )),
        (None, true) if version == Version::Http10 => Err(HttpError::BadRequest(
            "Transfer-Encoding in an HTTP/1.0 request",
        )),
        (None, true) => {
            let mut codings = list_items(headers, "transfer-encoding");
            match (codings.next(), codings.next()) {
                (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
                _ => Err(HttpError::BadRequest("unsupported transfer coding")),
            }
        }
        (Some(n), false) if n > limits.max_body_bytes as u64 => Err(HttpError::PayloadTooLarge),
        // Fits in usize: it is at most max_body_bytes.
        (Some(n), false) => Ok(Framing::Length(n as usize)),
        (None, false) => Ok(Framing::Empty),
    }
}

/// The declared body length, if any `Content-Length` was sent.
///
/// Several headers or a comma list are accepted only when every value is
/// the same number (RFC 9112 §6.3 item 5). Values too large for a u64
/// saturate: they are refused as too large anyway.
fn content_length(headers: &[httparse::Header]) -> Result<Option<u64>, HttpError> {
    const BAD: HttpError = HttpError::BadRequest("bad Content-Length");
    let mut seen: Option<&[u8]> = None;
    for item in list_items(headers, "content-length") {
        if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
            return Err(BAD);
        }
        // Compare without leading zeros so `05` and `5` agree.
        let digits = strip_zeros(item);
        match seen {
            Some(first) if first != digits => {
                return Err(HttpError::BadRequest("differing Content-Lengths"));
            }
            _ => seen = Some(digits),
        }
    }
    Ok(seen.map(|digits| {
        digits
            .iter()
            .try_fold(0u64, |n, d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .unwrap_or(u64::MAX)
    }))
}

/// `digits` without leading zeros.
fn strip_zeros(digits: &[u8]) -> &[u8] {
    let start = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    &digits[start..]
}

/// The values of every header called `name` (ASCII case-insensitive).
fn values<'a>(
    headers: &'a [httparse::Header<'a>],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// The comma-separated items of every header called `name`, each trimmed of
/// optional whitespace; empty items are kept so callers can refuse them.
fn list_items<'a>(
    headers: &'a [httparse::Header<'a>],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    values(headers, name).flat_map(|v| v.split(|&b| b == b',').map(trim_ows))
}

/// Whether a comma-list header `name` holds `token` (case-insensitive).
fn has_token(headers: &[httparse::Header], name: &str, token: &str) -> bool {
    list_items(headers, name).any(|item| item.eq_ignore_ascii_case(token.as_bytes()))
}

/// `value` without leading and trailing spaces and tabs.
fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// Copies httparse's borrowed headers into the owned, lower-cased form.
fn owned_headers(headers: &[httparse::Header]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::CHUNK_FRAMING_SLACK;

    /// The defaults of SPEC §6.
    const LIMITS: Limits = Limits {
        max_head_bytes: 8 * 1024,
        max_headers: 64,
        max_body_bytes: 16 * 1024,
    };

    /// Small limits, so that the random test reaches them.
    const TINY: Limits = Limits {
        max_head_bytes: 96,
        max_headers: 4,
        max_body_bytes: 16,
    };

    fn complete(raw: &[u8], limits: &Limits) -> (Request, usize) {
        match parse_request(raw, limits) {
            Ok(Parsed::Complete(req, used)) => (req, used),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
        }
    }

    /// One valid request and what it must parse to.
    struct Valid {
        raw: &'static [u8],
        method: &'static str,
        target: &'static str,
        version: Version,
        body: &'static [u8],
        keep_alive: bool,
        expect_continue: bool,
    }

    /// Table rows, httparse `req!` style: raw bytes, then the expectations.
    macro_rules! valid {
        ($raw:expr, $method:expr, $target:expr, $version:ident, $body:expr, ka: $ka:expr, ec: $ec:expr) => {
            Valid {
                raw: $raw,
                method: $method,
                target: $target,
                version: Version::$version,
                body: $body,
                keep_alive: $ka,
                expect_continue: $ec,
            }
        };
    }

    const VALID: &[Valid] = &[
        valid!(b"GET /api/online?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\n",
            "GET", "/api/online?x=1", Http11, b"", ka: true, ec: false),
        valid!(b"POST /api/register HTTP/1.1\r\nHost: a\r\nContent-Length: 18\r\n\r\n{\"username\":\"bob\"}",
            "POST", "/api/register", Http11, b"{\"username\":\"bob\"}", ka: true, ec: false),
        valid!(b"POST /api/login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                5;name=value\r\nhello\r\n1 ; a=\"b c\";x\r\n!\r\nA\r\n0123456789\r\n\
                0\r\nX-Trailer: t\r\nX-Two: 2\r\n\r\n",
            "POST", "/api/login", Http11, b"hello!0123456789", ka: true, ec: false),
        valid!(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\na\r\n0123456789\r\n0000;end\r\n\r\n",
            "POST", "/x", Http11, b"0123456789", ka: true, ec: false),
        valid!(b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\nabc",
            "POST", "/x", Http11, b"abc", ka: true, ec: true),
        valid!(b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "POST", "/x", Http11, b"abc", ka: true, ec: true),
        valid!(b"GET / HTTP/1.0\r\n\r\n", "GET", "/", Http10, b"", ka: false, ec: false),
        valid!(b"POST /p HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
            "POST", "/p", Http10, b"hi", ka: true, ec: false),
        valid!(b"GET http://example.com:7777/a/b?c=d HTTP/1.1\r\nHost: example.com\r\n\r\n",
            "GET", "/a/b?c=d", Http11, b"", ka: true, ec: false),
        valid!(b"GET HTTPS://h?q HTTP/1.1\r\nHost: h\r\n\r\n", "GET", "/?q", Http11, b"", ka: true, ec: false),
        valid!(b"GET HTTP://h HTTP/1.1\r\nHost: h\r\n\r\n", "GET", "/", Http11, b"", ka: true, ec: false),
        valid!(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 02\r\ncontent-length: 2\r\n\r\nok",
            "POST", "/x", Http11, b"ok", ka: true, ec: false),
        valid!(b"\r\nHEAD /h HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            "HEAD", "/h", Http11, b"", ka: false, ec: false),
        valid!(b"OPTIONS /x HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS", "/x", Http11, b"", ka: true, ec: false),
    ];

    #[test]
    fn valid_requests_parse_completely() {
        for case in VALID {
            let (req, used) = complete(case.raw, &LIMITS);
            let name = String::from_utf8_lossy(case.raw);
            assert_eq!(used, case.raw.len(), "{name}");
            assert_eq!(req.method.as_str(), case.method, "{name}");
            assert_eq!(req.target, case.target, "{name}");
            assert_eq!(req.version, case.version, "{name}");
            assert_eq!(req.body, case.body, "{name}");
            assert_eq!(req.keep_alive, case.keep_alive, "{name}");
        }
    }

    #[test]
    fn every_strict_prefix_of_a_valid_request_is_partial() {
        for case in VALID {
            let head_len = find(case.raw, b"\r\n\r\n").unwrap() + 4;
            for n in 0..case.raw.len() {
                let head_done = n >= head_len;
                let want = (head_done, head_done && case.expect_continue);
                match parse_request(&case.raw[..n], &LIMITS) {
                    Ok(Parsed::Partial {
                        head_done,
                        expect_continue,
                    }) => assert_eq!((head_done, expect_continue), want, "{n}: {case:?}"),
                    other => panic!("prefix {n} of {case:?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn trailing_bytes_are_not_consumed() {
        for case in VALID {
            let mut raw = case.raw.to_vec();
            raw.extend_from_slice(b"GET / HTTP/1.1\r\n");
            assert_eq!(complete(&raw, &LIMITS).1, case.raw.len(), "{case:?}");
        }
    }

    #[test]
    fn pipelined_requests_parse_one_after_the_other() {
        let raw = b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
                    2\r\nhi\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.1\r\n";
        let (first, used) = complete(raw, &LIMITS);
        assert_eq!((first.path(), first.body.as_slice()), ("/a", &b"hi"[..]));
        let (second, used2) = complete(&raw[used..], &LIMITS);
        assert_eq!(second.path(), "/b");
        assert!(matches!(
            parse_request(&raw[used + used2..], &LIMITS),
            Ok(Parsed::Partial {
                head_done: false,
                ..
            })
        ));
    }

    #[test]
    fn request_accessors() {
        let raw = b"GET /api/user/bob?x=1&y HTTP/1.1\r\nHost: a\r\nX-Bin: \xff\r\nCookie: s=1\r\ncookie: s=2\r\n\r\n";
        let (req, _) = complete(raw, &LIMITS);
        assert_eq!(req.path(), "/api/user/bob");
        assert_eq!(req.query(), Some("x=1&y"));
        assert_eq!(req.header("cookie"), Some(&b"s=1"[..]));
        assert_eq!(req.header_str("host"), Some("a"));
        assert_eq!(req.header("x-bin"), Some(&b"\xff"[..]));
        assert_eq!(req.header_str("x-bin"), None);
        assert_eq!(req.header("missing"), None);
        let names: Vec<&str> = req.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["host", "x-bin", "cookie", "cookie"]);
        let (bare, _) = complete(b"GET /p HTTP/1.1\r\nHost: a\r\n\r\n", &LIMITS);
        assert_eq!((bare.path(), bare.query()), ("/p", None));
    }

    /// `n` header lines `X-N: v`.
    fn many_headers(n: usize) -> String {
        (0..n).map(|i| format!("X-{i}: v\r\n")).collect()
    }

    fn bad(reason: &'static str) -> HttpError {
        HttpError::BadRequest(reason)
    }

    /// Inputs and the exact error each must give (also given by any prefix
    /// that is not `Partial`).
    #[rustfmt::skip]
    fn error_cases() -> Vec<(String, Limits, HttpError)> {
        use HttpError::{HeadTooLarge, PayloadTooLarge};
        const POST: &str = "POST / HTTP/1.1\r\nHost: a\r\n";
        const CHUNKED: &str = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        let both = bad("both Content-Length and Transfer-Encoding");
        let differ = bad("differing Content-Lengths");
        let coding = bad("unsupported transfer coding");
        let cl = bad("bad Content-Length");
        let target = bad("bad request target");
        let host = bad("missing or repeated Host");
        let version = bad("unsupported HTTP version");
        let bare_lf = bad("bare LF in chunk");
        let size = bad("bad chunk size");
        let ext = bad("bad chunk extension");
        let trailer = bad("bad trailer section");
        let long_value = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(9000));
        let long_trailer = format!("{CHUNKED}0\r\nX: {}\r\n\r\n", "v".repeat(9000));
        let long_ext = format!("{CHUNKED}1;{}\r\n", "e".repeat(300));
        let full_chunk = format!("{CHUNKED}4000\r\n{}\r\n1\r\n", "x".repeat(0x4000));
        // Five 1-byte chunks with 250-byte extensions: 10 bytes of data but
        // over 10 + CHUNK_FRAMING_SLACK bytes of framing.
        let framing = format!("{CHUNKED}{}", format!("1;{}\r\nx\r\n", "e".repeat(250)).repeat(5));
        let small_body = Limits { max_body_bytes: 10, ..LIMITS };
        vec![
            (format!("{POST}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), LIMITS, both),
            (format!("{POST}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), LIMITS, both),
            (format!("{POST}Content-Length: 5\r\nContent-Length: 6\r\n\r\n"), LIMITS, differ),
            (format!("{POST}Content-Length: 5, 6\r\n\r\n"), LIMITS, differ),
            (format!("{POST}Content-Length: +5\r\n\r\n"), LIMITS, cl),
            (format!("{POST}Content-Length: -1\r\n\r\n"), LIMITS, cl),
            (format!("{POST}Content-Length: 0x5\r\n\r\n"), LIMITS, cl),
            (format!("{POST}Content-Length: 5 5\r\n\r\n"), LIMITS, cl),
            (format!("{POST}Content-Length: 5,\r\n\r\n"), LIMITS, cl),
            (format!("{POST}Content-Length:\r\n\r\n"), LIMITS, cl),
            (format!("{POST}Transfer-Encoding: chunked, gzip\r\n\r\n"), LIMITS, coding),
            (format!("{POST}Transfer-Encoding: gzip, chunked\r\n\r\n"), LIMITS, coding),
            (format!("{POST}Transfer-Encoding: gzip\r\n\r\n"), LIMITS, coding),
            (format!("{POST}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), LIMITS, coding),
            (format!("{POST}Transfer-Encoding: chunked;q=1\r\n\r\n"), LIMITS, coding),
            (format!("{POST}Transfer-Encoding:\r\n\r\n"), LIMITS, coding),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".into(), LIMITS,
             bad("Transfer-Encoding in an HTTP/1.0 request")),
            (format!("{CHUNKED}g\r\n"), LIMITS, size),
            (format!("{CHUNKED}-1\r\n"), LIMITS, size),
            (format!("{CHUNKED}+1\r\n"), LIMITS, size),
            (format!("{CHUNKED}\r\n"), LIMITS, size),
            (format!("{CHUNKED}0x1\r\n"), LIMITS, ext),
            (format!("{CHUNKED}5 \r\nhello\r\n0\r\n\r\n"), LIMITS, ext),
            (format!("{CHUNKED}5;a\x01\r\n"), LIMITS, ext),
            (format!("{CHUNKED}00000000000000001\r\n"), LIMITS, bad("chunk size too long")),
            (long_ext, LIMITS, bad("chunk extension too long")),
            (format!("{CHUNKED}5\nhello\r\n"), LIMITS, bare_lf),
            (format!("{CHUNKED}5;x\nhello\r\n"), LIMITS, bare_lf),
            (format!("{CHUNKED}5\r\nhello\n0\r\n\r\n"), LIMITS, bare_lf),
            (format!("{CHUNKED}5\rhello\r\n"), LIMITS, bad("CR without LF in chunk")),
            (format!("{CHUNKED}5\r\nhelloX\r\n"), LIMITS, bad("missing CRLF after chunk")),
            (format!("{CHUNKED}0\r\n\n"), LIMITS, trailer),
            (format!("{CHUNKED}0\r\nX: y\n\r\n"), LIMITS, trailer),
            (format!("{CHUNKED}0\r\nX : y\r\n\r\n"), LIMITS, trailer),
            (format!("{CHUNKED}0\r\nX: y\r\n z\r\n\r\n"), LIMITS, trailer),
            (long_trailer, LIMITS, HeadTooLarge),
            (format!("{CHUNKED}0\r\n{}\r\n", many_headers(65)), LIMITS, HeadTooLarge),
            (long_value, LIMITS, HeadTooLarge),
            (format!("GET / HTTP/1.1\r\nHost: a\r\n{}", "x".repeat(8200)), LIMITS, HeadTooLarge),
            (format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", many_headers(64)), LIMITS, HeadTooLarge),
            (format!("{POST}Content-Length: 16385\r\n\r\n"), LIMITS, PayloadTooLarge),
            (format!("{POST}Content-Length: 99999999999999999999999999\r\n\r\n"), LIMITS, PayloadTooLarge),
            (format!("{CHUNKED}4001\r\n"), LIMITS, PayloadTooLarge),
            (full_chunk, LIMITS, PayloadTooLarge),
            (framing, small_body, PayloadTooLarge),
            ("GET / HTTP/1.1\r\n\r\n".into(), LIMITS, host),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n".into(), LIMITS, host),
            ("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n".into(), LIMITS, host),
            ("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n".into(), LIMITS, target),
            ("CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\n\r\n".into(), LIMITS, target),
            ("GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n".into(), LIMITS, target),
            ("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n".into(), LIMITS, target),
            ("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n".into(), LIMITS, target),
            ("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n".into(), LIMITS, target),
            ("GET / HTTP/2.0\r\nHost: a\r\n\r\n".into(), LIMITS, version),
            ("GET / HTTP/1.2\r\nHost: a\r\n\r\n".into(), LIMITS, version),
            ("GET /  HTTP/1.1\r\nHost: a\r\n\r\n".into(), LIMITS, version),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n".into(), LIMITS, bad("invalid header name")),
            ("GET / HTTP/1.1\r\nHost : a\r\n\r\n".into(), LIMITS, bad("invalid header name")),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n".into(), LIMITS, bad("invalid header value")),
            ("G(T / HTTP/1.1\r\n".into(), LIMITS, bad("invalid request line")),
        ]
    }

    #[test]
    fn error_table() {
        let cases = error_cases();
        for (raw, limits, want) in &cases {
            let raw = raw.as_bytes();
            assert_eq!(
                parse_request(raw, limits).err(),
                Some(*want),
                "{:?}",
                short(raw)
            );
            // Each prefix needs more bytes or already fails the same way.
            for n in 0..raw.len() {
                match parse_request(&raw[..n], limits) {
                    Ok(Parsed::Partial { .. }) => {}
                    Err(e) if e == *want => {}
                    other => panic!("prefix {n} of {:?}: {other:?}", short(raw)),
                }
            }
        }
    }

    #[test]
    fn limits_trip_before_the_body_arrives() {
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 16385\r\n\r\n";
        assert_eq!(
            parse_request(head, &LIMITS).err(),
            Some(HttpError::PayloadTooLarge)
        );
        let chunk = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n40000";
        assert_eq!(
            parse_request(chunk, &LIMITS).err(),
            Some(HttpError::PayloadTooLarge)
        );
        // One byte past the head limit without a blank line is already 431.
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(LIMITS.max_head_bytes, b'v');
        assert!(matches!(
            parse_request(&long, &LIMITS),
            Ok(Parsed::Partial { .. })
        ));
        long.push(b'v');
        assert_eq!(
            parse_request(&long, &LIMITS).err(),
            Some(HttpError::HeadTooLarge)
        );
    }

    #[test]
    fn head_exactly_at_the_limit_is_accepted() {
        let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        raw.resize(LIMITS.max_head_bytes - 4, b'v');
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(complete(&raw, &LIMITS).1, LIMITS.max_head_bytes);
        let raw = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", many_headers(63));
        assert_eq!(complete(raw.as_bytes(), &LIMITS).1, raw.len());
    }

    #[test]
    fn body_exactly_at_the_limit_is_accepted() {
        let mut raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 16384\r\n\r\n".to_vec();
        raw.resize(raw.len() + 0x4000, b'x');
        assert_eq!(complete(&raw, &LIMITS).0.body.len(), 0x4000);
        let mut raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..4 {
            raw.extend_from_slice(b"1000\r\n");
            raw.resize(raw.len() + 0x1000, b'x');
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(complete(&raw, &LIMITS).0.body.len(), 0x4000);
    }

    #[test]
    fn keep_alive_table() {
        let cases: &[(&str, bool)] = &[
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                false,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
                false,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n",
                true,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n",
                true,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: x\r\nConnection: close\r\n\r\n",
                false,
            ),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            (
                "GET / HTTP/1.0\r\nConnection: foo ,keep-alive\r\n\r\n",
                true,
            ),
            (
                "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
                false,
            ),
            ("GET / HTTP/1.0\r\nConnection: keep-alives\r\n\r\n", false),
        ];
        for &(raw, want) in cases {
            assert_eq!(
                complete(raw.as_bytes(), &LIMITS).0.keep_alive,
                want,
                "{raw:?}"
            );
        }
    }

    #[test]
    fn max_request_bytes_covers_every_part() {
        assert_eq!(
            TINY.max_request_bytes(),
            2 * 96 + 2 * 16 + CHUNK_FRAMING_SLACK
        );
        let huge = Limits {
            max_head_bytes: usize::MAX,
            max_headers: 1,
            max_body_bytes: usize::MAX,
        };
        assert_eq!(huge.max_request_bytes(), usize::MAX);
    }

    /// Where `needle` first occurs in `hay`.
    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    /// The start of a long input, for failure messages.
    fn short(raw: &[u8]) -> String {
        String::from_utf8_lossy(&raw[..raw.len().min(120)]).into_owned()
    }

    impl std::fmt::Debug for Valid {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:?}", short(self.raw))
        }
    }

    /// xorshift64: deterministic, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Bytes that matter to the parser, so mutations hit the interesting
    /// paths more often than uniform random bytes would.
    const ALPHABET: &[u8] = b"\r\n\r\n :;,0123456789aAfFgG-+\t\x00\x7f\xff";

    /// Pieces of chunked bodies, valid and not.
    const CHUNK_TOKENS: &[&[u8]] = &[
        b"0", b"1", b"5", b"f", b";e=1", b"\r\n", b"\r\n", b"\r\n", b"\n", b"x", b"hello", b"X: y",
        b" ",
    ];

    /// One random edit of `raw`.
    fn mutate(rng: &mut Rng, raw: &mut Vec<u8>) {
        let at = rng.below(raw.len() + 1);
        let byte = match rng.below(2) {
            0 => ALPHABET[rng.below(ALPHABET.len())],
            _ => rng.next() as u8,
        };
        match rng.below(5) {
            0 if at < raw.len() => raw[at] = byte,
            1 if at < raw.len() => {
                raw.remove(at);
            }
            2 => {
                let end = (at + rng.below(16)).min(raw.len());
                let piece = raw[at..end].to_vec();
                raw.splice(at..at, piece);
            }
            3 => raw.truncate(at),
            _ => raw.insert(at, byte),
        }
    }

    /// The properties every input must have: no panic (implicitly),
    /// `used <= len`, bounded buffering, and prefix consistency. Returns
    /// which outcome the whole input had, so tests can see they covered all.
    fn check_properties(raw: &[u8], limits: &Limits) -> usize {
        let full = parse_request(raw, limits);
        match &full {
            Ok(Parsed::Complete(_, used)) => assert!(*used <= raw.len() && *used > 0),
            Ok(Parsed::Partial { .. }) => assert!(raw.len() <= limits.max_request_bytes()),
            Err(_) => {}
        }
        for n in 0..raw.len() {
            let prefix = parse_request(&raw[..n], limits);
            match (&full, prefix) {
                (_, Ok(Parsed::Partial { .. })) => {}
                (Ok(Parsed::Complete(_, used)), Ok(Parsed::Complete(_, u))) if *used == u => {}
                (Err(e), Err(p)) if *e == p => {}
                (full, prefix) => {
                    panic!("{:?}\nprefix {n}: {prefix:?}\nfull: {full:?}", short(raw))
                }
            }
        }
        match full {
            Ok(Parsed::Complete(..)) => 0,
            Ok(Parsed::Partial { .. }) => 1,
            Err(HttpError::BadRequest(_)) => 2,
            Err(HttpError::HeadTooLarge) => 3,
            Err(HttpError::PayloadTooLarge) => 4,
        }
    }

    #[test]
    fn random_mutations_keep_the_properties() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut seen = [0; 5];
        for round in 0..1500 {
            let case = &VALID[round % VALID.len()];
            let mut raw = case.raw.to_vec();
            for _ in 0..1 + rng.below(4) {
                mutate(&mut rng, &mut raw);
            }
            let limits = if round % 3 == 0 { TINY } else { LIMITS };
            seen[check_properties(&raw, &limits)] += 1;
        }
        assert!(
            seen.iter().all(|&n| n > 0),
            "outcomes not all reached: {seen:?}"
        );
    }

    #[test]
    fn random_bytes_keep_the_properties() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut seen = [0; 5];
        for round in 0..1500 {
            let len = rng.below(200);
            let raw: Vec<u8> = (0..len)
                .map(|_| match round % 2 {
                    0 => ALPHABET[rng.below(ALPHABET.len())],
                    _ => rng.next() as u8,
                })
                .collect();
            seen[check_properties(&raw, &TINY)] += 1;
            // Behind a valid head, random chunk-ish tokens exercise the
            // chunk decoder (uniform bytes would fail at the first one).
            let mut chunked =
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for _ in 0..rng.below(24) {
                chunked.extend_from_slice(CHUNK_TOKENS[rng.below(CHUNK_TOKENS.len())]);
            }
            seen[check_properties(&chunked, &TINY)] += 1;
            // Behind a valid request line, random header lines reach the
            // head's limits (random bytes alone are refused long before).
            let mut headers = b"GET / HTTP/1.1\r\n".to_vec();
            for _ in 0..rng.below(8) {
                headers.extend_from_slice(b"X-A: ");
                headers.extend((0..rng.below(30)).map(|_| b'a' + rng.below(26) as u8));
                headers.extend_from_slice(b"\r\n");
            }
            headers.extend_from_slice(&b"\r\n"[..rng.below(3)]);
            seen[check_properties(&headers, &TINY)] += 1;
        }
        // (complete, partial, 400, 431, 413)
        assert!(
            seen.iter().all(|&n| n > 0),
            "outcomes not all reached: {seen:?}"
        );
    }
}
