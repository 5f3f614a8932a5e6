//! Responses: status line, headers (always `Content-Length` where HTTP
//! allows one), body; plus the reason phrases and cookie lookup.

use std::io::Write;

use super::limits::HttpError;
use super::request::Version;

/// The interim response to `Expect: 100-continue`, ready to send.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// One response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers (`Content-Length` and `Connection` are written by
    /// `write_to`, never stored here, except `Connection: Upgrade` on a 101).
    pub headers: Vec<(&'static str, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Close the connection after this response whatever the request said.
    pub close: bool,
}

impl Response {
    /// A response with no headers and an empty body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            close: false,
        }
    }

    /// A JSON response: `Content-Type: application/json` and the body.
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, body: &T) -> Response {
        // The server's bodies are structs and maps of strings, which always
        // serialize; a failure would be a bug in the caller's type.
        let bytes = serde_json::to_vec(body).expect("response bodies serialize");
        Response {
            body: bytes,
            ..Response::new(status)
        }
        .with_header("Content-Type", "application/json")
    }

    /// The error body `{"error": code}` with `status`.
    pub fn error(status: u16, code: &str) -> Response {
        Response::json(status, &serde_json::json!({ "error": code }))
    }

    /// An error response that also says what was wrong, for people:
    /// `{"error": code, "detail": "limit must be an integer from 1 to
    /// 200"}`. Programs keep branching on `error` and the status.
    pub fn error_detail(status: u16, code: &str, detail: &str) -> Response {
        Response::json(
            status,
            &serde_json::json!({ "error": code, "detail": detail }),
        )
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Marks the response as closing the connection (builder style).
    pub fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    /// Appends the serialized response to `out`, for a request of `version`
    /// (`head_only` for a HEAD request) that may keep the connection open
    /// iff `keep_alive`.
    ///
    /// Writes the status line (always `HTTP/1.1`), the headers,
    /// `Content-Length` of the body (the real length even for HEAD),
    /// `Connection: close` when `!keep_alive || self.close`, else
    /// `Connection: keep-alive` for an HTTP/1.0 request (which would close
    /// otherwise), a blank line, and the body unless `head_only`.
    ///
    /// A 1xx response gets only the status line and its own headers (a 101
    /// carries `Connection: Upgrade` itself); a 204 gets no `Content-Length`
    /// and no body. RFC 9110 §8.6 forbids `Content-Length` on both.
    pub fn write_to(&self, version: Version, head_only: bool, keep_alive: bool, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail; the io::Result is only the trait's.
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\n",
            self.status,
            status_reason(self.status)
        );
        for (name, value) in &self.headers {
            write_header(out, name, value);
        }
        let informational = (100..200).contains(&self.status);
        if !informational {
            self.write_framing(version, keep_alive, out);
        }
        out.extend_from_slice(b"\r\n");
        if !head_only && !informational && self.status != 204 {
            out.extend_from_slice(&self.body);
        }
    }

    /// The headers `write_to` owns: `Content-Length` and `Connection`.
    fn write_framing(&self, version: Version, keep_alive: bool, out: &mut Vec<u8>) {
        debug_assert!(
            !self.headers.iter().any(|(n, _)| {
                n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("connection")
            }),
            "write_to owns Content-Length and Connection: {:?}",
            self.headers
        );
        if self.status != 204 {
            let _ = write!(out, "Content-Length: {}\r\n", self.body.len());
        }
        if !keep_alive || self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if version == Version::Http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
    }
}

impl HttpError {
    /// The response the peer gets for this error, marked closing: after a
    /// framing error the rest of the input cannot be trusted to start a
    /// request.
    pub fn response(self) -> Response {
        let (status, code) = match self {
            HttpError::BadRequest(_) => (400, "bad_request"),
            HttpError::HeadTooLarge => (431, "headers_too_large"),
            HttpError::PayloadTooLarge => (413, "payload_too_large"),
        };
        Response::error(status, code).closing()
    }
}

/// Writes `name: value\r\n`. A CR or LF in the value would end the header
/// early and let whoever chose the value add headers (response splitting),
/// so each becomes a space; values never should hold one.
fn write_header(out: &mut Vec<u8>, name: &str, value: &str) {
    debug_assert!(
        !value.contains(['\r', '\n']),
        "CR/LF in header {name}: {value:?}"
    );
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend(value.bytes().map(|b| match b {
        b'\r' | b'\n' => b' ',
        b => b,
    }));
    out.extend_from_slice(b"\r\n");
}

/// The reason phrase for a status code ("Not Found"); "Unknown" otherwise.
pub fn status_reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The value of cookie `name` in a `Cookie` header value
/// (`a=1; session=xyz`), if present. Whitespace around pairs is ignored.
///
/// Names match exactly (cookie names are case-sensitive), the first match
/// wins, and the value is returned as sent (quotes included). `None` when
/// the header is not UTF-8.
pub fn cookie_value<'a>(header: &'a [u8], name: &str) -> Option<&'a str> {
    std::str::from_utf8(header)
        .ok()?
        .split(';')
        .filter_map(|pair| pair.trim_matches(' ').split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` value for cookie `name` holding `value` for
/// `max_age_secs` (0 clears it): sent on every path, never to scripts,
/// along on top-level cross-site navigations only (Lax), and only over
/// HTTPS when `secure`.
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_table() {
        let cases = [
            (
                ("session", "t", 60, false),
                "session=t; Path=/; Max-Age=60; HttpOnly; SameSite=Lax",
            ),
            (
                ("session", "t", 60, true),
                "session=t; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure",
            ),
            (
                ("session", "", 0, false),
                "session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax",
            ),
        ];
        for ((name, value, age, secure), want) in cases {
            assert_eq!(set_cookie(name, value, age, secure), want);
        }
    }

    /// `write_to` with these arguments, as a string.
    fn written(resp: &Response, version: Version, head_only: bool, keep_alive: bool) -> String {
        let mut out = b"previous|".to_vec();
        resp.write_to(version, head_only, keep_alive, &mut out);
        let out = String::from_utf8(out).unwrap();
        // write_to appends; it never touches what is already queued.
        out.strip_prefix("previous|").unwrap().to_owned()
    }

    #[test]
    fn write_to_table() {
        use Version::{Http10, Http11};
        let ok = Response::json(200, &serde_json::json!({ "online": ["a"] }));
        let not_found = Response::error(404, "not_found");
        let allow = Response::error(405, "method_not_allowed").with_header("Allow", "GET, POST");
        let busy = Response::error(503, "server_busy").closing();
        let no_content = Response::new(204).with_header("Set-Cookie", "s=; Max-Age=0");
        let upgrade = Response::new(101)
            .with_header("Upgrade", "websocket")
            .with_header("Connection", "Upgrade");
        let cases: &[(&Response, Version, bool, bool, &str)] = &[
            (
                &ok,
                Http11,
                false,
                true,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"online\":[\"a\"]}",
            ),
            (
                &ok,
                Http11,
                true,
                true,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n",
            ),
            (
                &ok,
                Http10,
                true,
                true,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: keep-alive\r\n\r\n",
            ),
            (
                &ok,
                Http10,
                false,
                false,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{\"online\":[\"a\"]}",
            ),
            (
                &not_found,
                Http11,
                false,
                false,
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 21\r\nConnection: close\r\n\r\n{\"error\":\"not_found\"}",
            ),
            (
                &allow,
                Http11,
                true,
                true,
                "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nAllow: GET, POST\r\nContent-Length: 30\r\n\r\n",
            ),
            (
                &busy,
                Http10,
                false,
                true,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 23\r\nConnection: close\r\n\r\n{\"error\":\"server_busy\"}",
            ),
            (
                &no_content,
                Http11,
                false,
                true,
                "HTTP/1.1 204 No Content\r\nSet-Cookie: s=; Max-Age=0\r\n\r\n",
            ),
            (
                &upgrade,
                Http11,
                false,
                true,
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            ),
        ];
        for &(resp, version, head_only, keep_alive, want) in cases {
            assert_eq!(
                written(resp, version, head_only, keep_alive),
                want,
                "{resp:?}"
            );
        }
    }

    #[test]
    fn continue_matches_write_to() {
        assert_eq!(
            written(&Response::new(100), Version::Http11, false, true).as_bytes(),
            CONTINUE
        );
    }

    #[test]
    fn http_errors_map_to_closing_json_responses() {
        let cases = [
            (HttpError::BadRequest("x"), 400, "bad_request"),
            (HttpError::HeadTooLarge, 431, "headers_too_large"),
            (HttpError::PayloadTooLarge, 413, "payload_too_large"),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.response(), Response::error(status, code).closing());
        }
    }

    #[test]
    fn error_body_is_json() {
        let resp = Response::error(422, "bad \"name\"");
        let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body, serde_json::json!({ "error": "bad \"name\"" }));
        assert_eq!(
            resp.headers,
            [("Content-Type", "application/json".to_owned())]
        );
        assert!(!resp.close);
    }

    #[test]
    fn status_reason_table() {
        let cases: &[(u16, &str)] = &[
            (100, "Continue"),
            (101, "Switching Protocols"),
            (200, "OK"),
            (201, "Created"),
            (204, "No Content"),
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (409, "Conflict"),
            (413, "Content Too Large"),
            (422, "Unprocessable Content"),
            (429, "Too Many Requests"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (503, "Service Unavailable"),
            (418, "Unknown"),
            (0, "Unknown"),
        ];
        for &(status, want) in cases {
            assert_eq!(status_reason(status), want, "{status}");
        }
    }

    #[test]
    fn cookie_value_table() {
        let cases: &[(&[u8], &str, Option<&str>)] = &[
            (b"session=xyz", "session", Some("xyz")),
            (b"a=1; session=xyz", "session", Some("xyz")),
            (b"a=1;session=xyz;b=2", "session", Some("xyz")),
            (b"  session=xyz  ", "session", Some("xyz")),
            (b"session=1; session=2", "session", Some("1")),
            (b"Session=1", "session", None),
            (b"xsession=1; session=2", "session", Some("2")),
            (b"session", "session", None),
            (b"session=", "session", Some("")),
            (b"session=\"q\"", "session", Some("\"q\"")),
            (b"session=a=b", "session", Some("a=b")),
            (b"session =1", "session", None),
            (b"", "session", None),
            (b"session=\xff", "session", None),
            (b"x=\xff; session=1", "session", None),
        ];
        for &(header, name, want) in cases {
            assert_eq!(
                cookie_value(header, name),
                want,
                "{:?}",
                String::from_utf8_lossy(header)
            );
        }
    }
}
