//! WebSocket clients for the black-box tests: tungstenite's client over a
//! blocking `TcpStream` with a read timeout.

use super::{PATIENCE, Resp, Server, read_response};
use serde_json::Value;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use tungstenite::protocol::{CloseFrame, Role, WebSocket};
use tungstenite::{Message, Utf8Bytes};

/// An open client socket.
pub struct Client {
    pub ws: WebSocket<TcpStream>,
}

/// The upgrade request for `path` with these extra header lines.
pub fn upgrade_request(path: &str, extra: &[(&str, &str)]) -> String {
    let mut s = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    for (k, v) in extra {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s
}

/// Tries to open `path` with `extra` headers: the WebSocket, or the HTTP
/// response that refused it.
pub fn try_open(server: &Server, path: &str, extra: &[(&str, &str)]) -> Result<Client, Resp> {
    let mut s = server.connect();
    s.write_all(upgrade_request(path, extra).as_bytes())
        .unwrap();
    let resp = read_response(&mut s).expect("an upgrade response");
    if resp.status != 101 {
        return Err(resp);
    }
    assert_eq!(
        resp.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    Ok(Client {
        ws: WebSocket::from_raw_socket(s, Role::Client, None),
    })
}

/// Opens `/ws` for the session `token`.
pub fn open(server: &Server, token: &str) -> Client {
    let cookie = format!("session={token}");
    try_open(server, "/ws", &[("Cookie", &cookie)]).unwrap_or_else(|r| panic!("refused: {r:?}"))
}

/// `{"event": "join", "username": name}`.
pub fn join(name: &str) -> Value {
    serde_json::json!({"event": "join", "username": name})
}

/// `{"event": "leave", "username": name}`.
pub fn leave(name: &str) -> Value {
    serde_json::json!({"event": "leave", "username": name})
}

/// A chat message in the original's shape (see [`Client::json`]).
pub fn msg(text: &str, author: &str) -> Value {
    serde_json::json!({"message": text, "author": author})
}

/// A success ack in the original's shape (see [`Client::json`]).
pub fn ack() -> Value {
    serde_json::json!({"status": true})
}

/// An error ack.
pub fn nack(code: &str) -> Value {
    serde_json::json!({"status": false, "code": code})
}

/// `/api/online` as `token` sees it.
pub fn online(server: &Server, token: &str) -> Vec<String> {
    let r = server.get("/api/online", Some(token));
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_value(r.json()["online_clients"].clone()).unwrap()
}

/// Completes the `/ws` handshake on a raw socket and hands it over.
pub fn raw_open(server: &Server, token: &str) -> TcpStream {
    let mut s = server.connect();
    let cookie = format!("session={token}");
    s.write_all(upgrade_request("/ws", &[("Cookie", &cookie)]).as_bytes())
        .unwrap();
    let r = read_response(&mut s).expect("an upgrade response");
    assert_eq!(r.status, 101, "{r:?}");
    s
}

/// A masked client frame whose first byte (FIN, RSV, opcode) is `first`.
pub fn masked_raw(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![first];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend((n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend((n as u64).to_be_bytes());
        }
    }
    f.extend(mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// A complete masked client frame (FIN set) with `opcode`.
pub fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    masked_raw(0x80 | opcode, payload)
}

/// What a client observed next.
#[derive(Debug)]
pub enum Got {
    Json(Value),
    Binary(Vec<u8>),
    Close(Option<CloseFrame>),
    Pong,
    Ping,
    Gone,
}

impl Client {
    pub fn send_text(&mut self, text: &str) {
        self.ws.send(Message::Text(Utf8Bytes::from(text))).unwrap();
    }

    pub fn say(&mut self, message: &str) {
        self.send_text(&serde_json::json!({ "message": message }).to_string());
    }

    /// The next thing that arrives, within `PATIENCE`.
    pub fn next(&mut self) -> Got {
        self.next_within(PATIENCE).expect("something to arrive")
    }

    /// The next thing within `limit`; `None` when nothing came.
    pub fn next_within(&mut self, limit: Duration) -> Option<Got> {
        self.ws.get_ref().set_read_timeout(Some(limit)).unwrap();
        let got = match self.ws.read() {
            Ok(Message::Text(t)) => Got::Json(serde_json::from_str(&t).expect("json frame")),
            Ok(Message::Binary(b)) => Got::Binary(b.to_vec()),
            Ok(Message::Close(f)) => Got::Close(f),
            Ok(Message::Pong(_)) => Got::Pong,
            Ok(Message::Ping(_)) => Got::Ping,
            Ok(Message::Frame(_)) => unreachable!(),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(_) => Got::Gone,
        };
        Some(got)
    }

    /// The next JSON frame (skipping pings) exactly as sent, failing on
    /// anything else.
    pub fn raw_json(&mut self) -> Value {
        loop {
            match self.next() {
                Got::Json(v) => return v,
                Got::Ping => continue,
                other => panic!("expected a JSON frame, got {other:?}"),
            }
        }
    }

    /// The next JSON frame in the original Piratchat's shape: the `id` and
    /// `ts` that chat messages and acks carry besides are checked to be
    /// positive integers, then left out, so tests compare the compatible
    /// fields exactly.
    pub fn json(&mut self) -> Value {
        let mut v = self.raw_json();
        if let Some(obj) = v.as_object_mut() {
            let is_message = obj.contains_key("message") && obj.contains_key("author");
            let is_ack = obj.get("status") == Some(&Value::Bool(true));
            if is_message || is_ack {
                let id = obj.remove("id").and_then(|i| i.as_i64());
                assert!(id.is_some_and(|i| i > 0), "a positive id in {obj:?}");
            }
            if is_message {
                let ts = obj.remove("ts").and_then(|t| t.as_i64());
                assert!(
                    ts.is_some_and(|t| t > 1_600_000_000_000),
                    "a Unix ms ts in {obj:?}"
                );
            }
        }
        v
    }

    /// Asserts that no JSON frame arrives within `limit`.
    pub fn quiet(&mut self, limit: Duration) {
        if let Some(Got::Json(v)) = self.next_within(limit) {
            panic!("unexpected frame {v}");
        }
    }

    /// Reads until the server's close frame; returns its code and reason.
    pub fn close_code(&mut self) -> (u16, String) {
        loop {
            match self.next() {
                Got::Close(Some(f)) => return (f.code.into(), f.reason.to_string()),
                Got::Close(None) => return (1005, String::new()),
                Got::Gone => panic!("connection dropped without a close frame"),
                _ => continue,
            }
        }
    }
}
