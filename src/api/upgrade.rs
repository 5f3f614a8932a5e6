//! The checks a `GET /ws` request must pass before it is upgraded: the
//! origin rule and the RFC 6455 handshake fields.

use crate::http::{Method, Request, Version};

/// Why a request is not a valid RFC 6455 upgrade (400 `bad_request`). The
/// string is for the log.
pub type NotAnUpgrade = &'static str;

/// Validates the handshake fields and returns the `Sec-WebSocket-Accept`
/// value to answer with.
pub fn accept_key(req: &Request) -> Result<String, NotAnUpgrade> {
    if req.method != Method::Get || req.version != Version::Http11 {
        return Err("websocket upgrade needs GET over HTTP/1.1");
    }
    if !has_token(req, "upgrade", "websocket") {
        return Err("no Upgrade: websocket");
    }
    if !has_token(req, "connection", "upgrade") {
        return Err("no Connection: upgrade");
    }
    if req.header("sec-websocket-version") != Some(b"13") {
        return Err("Sec-WebSocket-Version is not 13");
    }
    let key = req
        .header("sec-websocket-key")
        .ok_or("no Sec-WebSocket-Key")?;
    if !is_base64_of_16_bytes(key) {
        return Err("Sec-WebSocket-Key is not 16 bytes in base64");
    }
    if !req.body.is_empty() {
        return Err("an upgrade request has no body");
    }
    Ok(tungstenite::handshake::derive_accept_key(key))
}

/// Whether any `name` header holds `token` in its comma-separated list,
/// without regard to ASCII case.
fn has_token(req: &Request, name: &str, token: &str) -> bool {
    req.headers
        .iter()
        .filter(|(n, _)| n == name)
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// 16 bytes in base64 are 22 symbols and `==`.
fn is_base64_of_16_bytes(key: &[u8]) -> bool {
    let b64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    key.len() == 24 && key[..22].iter().all(b64) && &key[22..] == b"=="
}

/// An origin as compared: scheme, lower-case host, port (default ports
/// filled in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]` (http or https, no path). `None` for
    /// anything else, `null` included.
    pub fn parse(s: &str) -> Option<Origin> {
        let (scheme, rest) = s.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let (host, port) = split_host_port(rest.strip_suffix('/').unwrap_or(rest), default_port)?;
        Some(Origin { scheme, host, port })
    }
}

/// Splits `host[:port]` (IPv6 in brackets) into a lower-case host and port.
fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    if s.is_empty() || s.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let (host, port) = match s.rfind(':') {
        Some(i) if !s[i..].contains(']') => (&s[..i], s[i + 1..].parse().ok()?),
        _ => (s, default_port),
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

/// The origin rule of `/ws`: allowed when there is no `Origin` header, when
/// it names the request's own `Host` (over either scheme), or when it is in
/// the allowed list (normalized `scheme://host:port` strings).
pub fn origin_allowed(req: &Request, allowed: &[String]) -> bool {
    let Some(origin) = req.header("origin") else {
        return true;
    };
    let Some(origin) = std::str::from_utf8(origin).ok().and_then(Origin::parse) else {
        return false;
    };
    let own_host = req.header_str("host").and_then(|h| {
        let port = if origin.scheme == "https" { 443 } else { 80 };
        split_host_port(h, port)
    });
    if own_host.is_some_and(|(host, port)| host == origin.host && port == origin.port) {
        return true;
    }
    allowed
        .iter()
        .filter_map(|a| Origin::parse(a))
        .any(|a| a == origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Limits, Parsed, parse_request};

    fn req(head: &str) -> Request {
        let limits = Limits {
            max_head_bytes: 8192,
            max_headers: 64,
            max_body_bytes: 16384,
        };
        match parse_request(head.as_bytes(), &limits) {
            Ok(Parsed::Complete(r, _)) => r,
            other => panic!("{other:?}"),
        }
    }

    const GOOD: &str = "GET /ws HTTP/1.1\r\nHost: chat.example:8080\r\nUpgrade: WebSocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    #[test]
    fn accepts_rfc_example_key() {
        let r = req(&format!("{GOOD}\r\n"));
        assert_eq!(accept_key(&r).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn refuses_broken_handshakes() {
        let cases = [
            GOOD.replace("Upgrade: WebSocket\r\n", ""),
            GOOD.replace("keep-alive, Upgrade", "keep-alive"),
            GOOD.replace("Version: 13", "Version: 8"),
            GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"),
            GOOD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
            GOOD.replace("GET", "POST"),
        ];
        for head in cases {
            assert!(accept_key(&req(&format!("{head}\r\n"))).is_err(), "{head}");
        }
    }

    #[test]
    fn origin_table() {
        let allowed = vec!["https://app.example".to_string()];
        let cases = [
            (None, true),
            (Some("http://chat.example:8080"), true),
            (Some("HTTP://CHAT.example:8080"), true),
            (Some("https://chat.example:8080"), true),
            (Some("http://chat.example"), false),
            (Some("https://app.example"), true),
            (Some("https://app.example:443"), true),
            (Some("https://app.example:444"), false),
            (Some("http://evil.example"), false),
            (Some("null"), false),
            (Some("file://x"), false),
        ];
        for (origin, want) in cases {
            let head = match origin {
                Some(o) => format!("{GOOD}Origin: {o}\r\n\r\n"),
                None => format!("{GOOD}\r\n"),
            };
            assert_eq!(origin_allowed(&req(&head), &allowed), want, "{origin:?}");
        }
    }

    #[test]
    fn own_host_on_default_port() {
        let head = GOOD.replace("chat.example:8080", "chat.example");
        let r = req(&format!("{head}Origin: https://chat.example\r\n\r\n"));
        assert!(origin_allowed(&r, &[]));
        let r = req(&format!("{head}Origin: http://chat.example\r\n\r\n"));
        assert!(origin_allowed(&r, &[]));
    }
}
