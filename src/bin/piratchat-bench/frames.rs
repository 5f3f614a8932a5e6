//! The chat frames of the bench: building the timestamped messages it sends
//! and classifying the frames the server sends back. Pure functions.
//!
//! A sent frame is `{"message":"<seq> <t_ns> xxx…"}`, padded to the requested
//! size. Deliveries come back as `{"message":…,"author":…}` plus any fields
//! a newer server adds; a prefix check handles the common shape without a
//! JSON parse (the bench reads millions per second), anything else goes
//! through serde_json.

use std::fmt::Write as _;

use serde::Deserialize;

/// A frame from the server, as the bench counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// One of our messages, sent at `t_ns` on the run clock.
    Delivery {
        /// Send time.
        t_ns: u64,
    },
    /// A chat message that is not ours (another client on the server).
    Foreign,
    /// `{"status": true}`.
    Ack,
    /// `{"status": false, "code": …}`.
    Nack(String),
    /// `{"event": "join", …}`.
    Join,
    /// `{"event": "leave", …}`.
    Leave,
    /// Anything else.
    Other,
}

/// Writes the frame for message `seq` sent at `t_ns` into `buf`, padded
/// with `x` to `size` bytes when it is shorter; with `room`, the frame
/// names that room.
pub fn chat_frame(buf: &mut String, seq: u64, t_ns: u64, size: usize, room: Option<&str>) {
    buf.clear();
    // Writing to a String cannot fail.
    let _ = write!(buf, "{{\"message\":\"{seq} {t_ns} ");
    let tail = room.map_or(String::new(), |r| format!(",\"room\":\"{r}\""));
    let pad = size.saturating_sub(buf.len() + 2 + tail.len());
    buf.extend(std::iter::repeat_n('x', pad));
    buf.push('"');
    buf.push_str(&tail);
    buf.push('}');
}

/// The send time in a message text `<seq> <t_ns> …` (the text may run on
/// past the stamp, as in the unparsed rest of a frame).
fn stamp(text: &str) -> Option<u64> {
    // Hand-rolled single passes: this runs once per delivery, millions of
    // times a second.
    let b = text.as_bytes();
    let (_seq, used) = number(b)?;
    let rest = b[used..].strip_prefix(b" ")?;
    let (t, used) = number(rest)?;
    rest[used..].starts_with(b" ").then_some(t)
}

/// A leading run of 1 to 19 ASCII digits (19 cannot overflow a `u64`) as a
/// number and its length.
fn number(b: &[u8]) -> Option<(u64, usize)> {
    let mut n: u64 = 0;
    let mut len = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            break;
        }
        if len == 19 {
            return None;
        }
        n = n * 10 + u64::from(c - b'0');
        len += 1;
    }
    (len > 0).then_some((n, len))
}

/// Every field the bench looks at; the rest are ignored.
#[derive(Deserialize)]
struct Frame {
    message: Option<String>,
    status: Option<bool>,
    code: Option<String>,
    event: Option<String>,
}

/// Classifies one text frame from the server.
pub fn classify(text: &str) -> Incoming {
    if let Some(rest) = text.strip_prefix(r#"{"message":""#) {
        if let Some(t_ns) = stamp(rest) {
            return Incoming::Delivery { t_ns };
        }
    } else if text.starts_with(r#"{"status":true"#) {
        return Incoming::Ack;
    } else if text.starts_with(r#"{"event":"join","#) {
        // Each open sends one to everyone connected: N²/2 of them per room.
        return Incoming::Join;
    } else if text.starts_with(r#"{"event":"leave","#) {
        return Incoming::Leave;
    }
    let Ok(f) = serde_json::from_str::<Frame>(text) else {
        return Incoming::Other;
    };
    match (f.message, f.status, f.event.as_deref()) {
        (Some(m), _, _) => stamp(&m).map_or(Incoming::Foreign, |t_ns| Incoming::Delivery { t_ns }),
        (_, Some(true), _) => Incoming::Ack,
        (_, Some(false), _) => Incoming::Nack(f.code.unwrap_or_default()),
        (_, _, Some("join")) => Incoming::Join,
        (_, _, Some("leave")) => Incoming::Leave,
        _ => Incoming::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_requested_size_and_round_trip() {
        let mut buf = String::new();
        for size in [56, 100, 300] {
            chat_frame(&mut buf, u64::MAX, u64::MAX, size, None);
            assert_eq!(buf.len(), size, "{buf}");
            let v: serde_json::Value = serde_json::from_str(&buf).unwrap();
            assert!(v["message"].is_string());
        }
        chat_frame(&mut buf, 7, 123_456, 100, None);
        let echoed = buf.replace("\"}", "\",\"author\":\"b1\"}");
        assert_eq!(classify(&echoed), Incoming::Delivery { t_ns: 123_456 });
        chat_frame(&mut buf, 7, 123_456, 100, Some("r1"));
        assert_eq!(buf.len(), 100, "{buf}");
        let v: serde_json::Value = serde_json::from_str(&buf).unwrap();
        assert_eq!(v["room"], "r1");
        let echoed = buf.replace("\"}", "\",\"author\":\"b1\"}");
        assert_eq!(classify(&echoed), Incoming::Delivery { t_ns: 123_456 });
    }

    #[test]
    fn table_of_server_frames() {
        let table: &[(&str, Incoming)] = &[
            (
                r#"{"message":"1 99 xx","author":"a"}"#,
                Incoming::Delivery { t_ns: 99 },
            ),
            (
                r#"{"id":5,"message":"1 99 x","author":"a","ts":1}"#,
                Incoming::Delivery { t_ns: 99 },
            ),
            (
                r#"{ "message" : "1 99 x", "author": "a" }"#,
                Incoming::Delivery { t_ns: 99 },
            ),
            (
                r#"{"message":"hello there","author":"a"}"#,
                Incoming::Foreign,
            ),
            (r#"{"message":"1 x9 y","author":"a"}"#, Incoming::Foreign),
            (r#"{"message":"1 99","author":"a"}"#, Incoming::Foreign),
            (
                r#"{"message":"1 99999999999999999999 x","author":"a"}"#,
                Incoming::Foreign,
            ),
            (
                r#"{"message":"1 9999999999999999999 x","author":"a"}"#,
                Incoming::Delivery {
                    t_ns: 9_999_999_999_999_999_999,
                },
            ),
            (r#"{"status":true}"#, Incoming::Ack),
            (r#"{"status":true,"id":3,"ts":9}"#, Incoming::Ack),
            (r#"{"id":3,"status":true}"#, Incoming::Ack),
            (
                r#"{"status":false,"code":"rate_limited"}"#,
                Incoming::Nack("rate_limited".into()),
            ),
            (r#"{"event":"join","username":"a"}"#, Incoming::Join),
            (r#"{"event": "leave", "username": "a"}"#, Incoming::Leave),
            (r#"{"event":"typing"}"#, Incoming::Other),
            ("not json", Incoming::Other),
        ];
        for (text, want) in table {
            assert_eq!(&classify(text), want, "{text}");
        }
    }
}
