//! Chat helpers shared by the conversation tests: authenticated requests
//! by session token, frames and their acks, and history pages.

use super::ws::Client;
use super::{Resp, Server};
use serde_json::Value;

/// `POST path` with `body` as the user of session `token`.
pub fn post(s: &Server, token: &str, path: &str, body: &str) -> Resp {
    let cookie = format!("session={token}");
    s.request("POST", path, &[("Cookie", &cookie)], body)
}

/// The next frame that is not presence (`join`/`leave`).
pub fn next(c: &mut Client) -> Value {
    loop {
        let v = c.raw_json();
        if !matches!(v["event"].as_str(), Some("join" | "leave")) {
            return v;
        }
    }
}

/// Sends a frame; returns its ack (skipping frames that came before it).
pub fn send(c: &mut Client, frame: Value) -> Value {
    c.send_text(&frame.to_string());
    loop {
        let v = c.raw_json();
        if v.get("status").is_some() {
            return v;
        }
    }
}

/// Sends a frame and returns the id of its success ack.
pub fn send_ok(c: &mut Client, frame: Value) -> i64 {
    let ack = send(c, frame);
    assert_eq!(ack["status"], true, "{ack}");
    ack["id"].as_i64().expect("an id")
}

/// `(id, message)` of the history page `GET /api/messages{query}`.
pub fn history(s: &Server, token: &str, query: &str) -> Vec<(i64, String)> {
    let r = s.get(&format!("/api/messages{query}"), Some(token));
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    let page = r.json()["messages"].as_array().unwrap().clone();
    page.iter()
        .map(|m| {
            (
                m["id"].as_i64().unwrap(),
                m["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
