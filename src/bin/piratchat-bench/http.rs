//! The bench's minimal HTTP/1.1 client codec, sans-IO: request bytes out,
//! a push parser for responses in (`Ok(None)` = need more bytes, nothing
//! consumed). Only what the Piratchat API needs: `Content-Length` bodies,
//! the `session` cookie, and the WebSocket upgrade answer.

use std::fmt::Write as _;

/// Most response headers we accept; the server sends far fewer.
const MAX_HEADERS: usize = 32;

/// Builds one request. `Content-Length` is added when `body` is not empty.
pub fn request(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = String::with_capacity(128 + body.len());
    // Writing to a String cannot fail.
    let _ = write!(head, "{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if !body.is_empty() {
        let _ = write!(
            head,
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The body of `POST /api/rooms` for a public room `name` (letters,
/// digits, `-`, `_`: nothing to escape).
pub fn room_body(name: &str) -> Vec<u8> {
    format!("{{\"name\":\"{name}\"}}").into_bytes()
}

/// The WebSocket upgrade request for `path`, carrying the session cookie.
pub fn upgrade(path: &str, host: &str, session: &str, ws_key: &str) -> Vec<u8> {
    let cookie = format!("session={session}");
    let headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", ws_key),
        ("Cookie", cookie.as_str()),
    ];
    request("GET", path, host, &headers, b"")
}

/// A complete response, with the few headers the bench looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Value of the `session` cookie from `Set-Cookie`, if one was set.
    pub session: Option<String>,
    /// `Sec-WebSocket-Accept`, on a 101.
    pub accept: Option<String>,
    /// The server said `Connection: close`.
    pub close: bool,
    /// The body (small JSON on this API).
    pub body: Vec<u8>,
}

/// Why a response could not be parsed; the bench fails that user's flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Bad status line or header syntax.
    Malformed(httparse::Error),
    /// A body without `Content-Length` (e.g. chunked), or a bad length.
    BadLength,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Malformed(e) => write!(f, "malformed response: {e}"),
            HttpError::BadLength => f.write_str("response without a usable Content-Length"),
        }
    }
}

/// Parses one response from the front of `buf`: `Ok(Some((resp, used)))`
/// once head and body are complete, `Ok(None)` when more bytes are needed.
/// A 101 has no body: the bytes after its head belong to the WebSocket.
pub fn parse_response(buf: &[u8]) -> Result<Option<(Response, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(buf).map_err(HttpError::Malformed)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let mut resp = Response {
        status: parsed.code.unwrap_or(0),
        ..Response::default()
    };
    let mut length = None;
    for h in parsed.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| HttpError::BadLength)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::BadLength);
        } else if name.eq_ignore_ascii_case("set-cookie") {
            if let Some(v) = value.strip_prefix("session=") {
                let token = v.split(';').next().unwrap_or("");
                resp.session = (!token.is_empty()).then(|| token.to_string());
            }
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            resp.accept = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("connection") {
            resp.close = value.eq_ignore_ascii_case("close");
        }
    }
    let body_len = match (resp.status, length) {
        (101 | 204 | 304, _) => 0,
        (_, Some(n)) => n,
        (_, None) => return Err(HttpError::BadLength),
    };
    if buf.len() < head_len + body_len {
        return Ok(None);
    }
    resp.body = buf[head_len..head_len + body_len].to_vec();
    Ok(Some((resp, head_len + body_len)))
}

/// The JSON body of a register request.
pub fn register_body(username: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "username": username })).unwrap_or_default()
}

/// The JSON body of a login request.
pub fn login_body(key: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "key": key })).unwrap_or_default()
}

/// The `key` of a 201 register answer.
pub fn key_of(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("key")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN_OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
        Set-Cookie: session=AbC123; Path=/; Max-Age=3600; HttpOnly\r\n\
        Content-Length: 20\r\n\r\n{\"username\":\"alice\"}";

    #[test]
    fn every_prefix_of_a_response_is_partial() {
        for n in 0..LOGIN_OK.len() {
            assert_eq!(parse_response(&LOGIN_OK[..n]), Ok(None), "prefix {n}");
        }
        let (resp, used) = parse_response(LOGIN_OK).unwrap().unwrap();
        assert_eq!(used, LOGIN_OK.len());
        assert_eq!(resp.status, 200);
        assert_eq!(resp.session.as_deref(), Some("AbC123"));
        assert_eq!(resp.body, b"{\"username\":\"alice\"}");
    }

    #[test]
    fn pipelined_bytes_after_a_response_are_not_consumed() {
        let mut two = LOGIN_OK.to_vec();
        two.extend_from_slice(b"HTTP/1.1 404");
        let (_, used) = parse_response(&two).unwrap().unwrap();
        assert_eq!(used, LOGIN_OK.len());
    }

    #[test]
    fn upgrade_answer_leaves_frames_behind() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi";
        let (resp, used) = parse_response(raw).unwrap().unwrap();
        assert_eq!(resp.status, 101);
        assert_eq!(resp.accept.as_deref(), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        assert_eq!(&raw[used..], b"\x81\x02hi");
    }

    /// Raw response and the status it parses to (`Ok(None)`: partial).
    type Case = (&'static [u8], Result<Option<u16>, HttpError>);

    #[test]
    fn table_of_odd_responses() {
        let cases: &[Case] = &[
            (
                b"HTTP/1.1 409 Conflict\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                Ok(Some(409)),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(HttpError::BadLength),
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", Err(HttpError::BadLength)),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                Err(HttpError::BadLength),
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", Ok(None)),
            (b"HTTP/1.1 204 No Content\r\n\r\n", Ok(Some(204))),
        ];
        for (raw, want) in cases {
            let got = parse_response(raw).map(|r| r.map(|(resp, _)| resp.status));
            assert_eq!(&got, want, "{}", String::from_utf8_lossy(raw));
        }
        assert!(matches!(
            parse_response(b"HTTP/1.1 2x0 OK\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
    }

    #[test]
    fn requests_and_bodies() {
        let req = request("POST", "/api/login", "h:1", &[], &login_body("ab"));
        let text = String::from_utf8(req).unwrap();
        assert!(text.starts_with("POST /api/login HTTP/1.1\r\nHost: h:1\r\n"));
        assert!(text.ends_with("Content-Length: 12\r\n\r\n{\"key\":\"ab\"}"));
        let up = String::from_utf8(upgrade("/ws", "h:1", "tok", "k==")).unwrap();
        assert!(up.contains("Cookie: session=tok\r\n") && up.ends_with("\r\n\r\n"));
        assert_eq!(key_of(b"{\"key\":\"00ff\"}").as_deref(), Some("00ff"));
        assert_eq!(key_of(b"{\"error\":\"x\"}"), None);
    }
}
