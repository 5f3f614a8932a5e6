//! Responses: status line, headers (always `Content-Length`), body.

/// One response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers (`Content-Length` and `Connection` are written by
    /// `write_to`, never stored here).
    pub headers: Vec<(&'static str, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Close the connection after this response whatever the request said.
    pub close: bool,
}

impl Response {
    /// A JSON response: `Content-Type: application/json` and the body.
    pub fn json(status: u16, body: &serde_json::Value) -> Response {
        todo!("helper: http")
    }

    /// The error body `{"error": code}` with `status`.
    pub fn error(status: u16, code: &str) -> Response {
        todo!("helper: http")
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

    /// Appends the serialized response to `out`: status line with
    /// `HTTP/1.1`, the headers, `Content-Length` of the body, `Connection:
    /// close` when `!keep_alive || self.close` (else `Connection: keep-alive`
    /// for HTTP/1.0 keep-alive requests is the caller's business via a
    /// header), then the body unless `head_only` (a HEAD request).
    pub fn write_to(&self, head_only: bool, keep_alive: bool, out: &mut Vec<u8>) {
        todo!("helper: http")
    }
}

/// The reason phrase for a status code ("Not Found"); "Unknown" otherwise.
pub fn status_reason(status: u16) -> &'static str {
    todo!("helper: http")
}

/// The value of cookie `name` in a `Cookie` header value
/// (`a=1; session=xyz`), if present. Whitespace around pairs is ignored.
pub fn cookie_value<'a>(header: &'a [u8], name: &str) -> Option<&'a str> {
    todo!("helper: http")
}
