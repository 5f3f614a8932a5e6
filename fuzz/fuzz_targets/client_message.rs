//! Arbitrary text as a client's frame, and arbitrary bytes as a REST
//! body.
//!
//! Properties: the decoder answers exactly one of accepted / error ack, and
//! the answer agrees with a reference reading through `serde_json::Value`:
//! invalid JSON is `invalid_json`; an object is a message (`message`, an
//! optional `client_id` string of 1 to 64 bytes, one of `room` or `to`, a
//! non-empty string), an edit (`edit` integer and `message`), a deletion
//! (`delete` alone), a reaction (`react` and `emoji`), a typing notice
//! (`typing` boolean, one of `room`/`to`) or a read marker (`read`, an
//! integer from 0, one of `room`/`with`), each with exactly its fields,
//! else `invalid_message`; a message's or an edit's text must hold a
//! non-whitespace character (`invalid_message`) and at most `max_chars`
//! scalar values (`message_too_long`); an emoji is 1 to 8 scalar values
//! without whitespace or control characters (`invalid_emoji`). A REST body
//! is accepted only as an object with exactly the one string field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use piratchat::protocol::{
    AckError, ClientOp, LoginBody, MAX_CLIENT_ID, Target, decode_body, decode_client_op,
};
use serde_json::{Map, Value};

/// A decoded frame in owned form, for comparing decoder and reference.
#[derive(Debug, PartialEq, Eq)]
enum Op {
    Message(String, Option<String>, Option<(char, String)>),
    Edit(i64, String),
    Delete(i64),
    React(i64, String),
    Typing(bool, Option<(char, String)>),
    Read(i64, Option<(char, String)>),
}

/// `None`: general; `r`: a room; `t`: a direct conversation.
fn target(t: &Target<'_>) -> Option<(char, String)> {
    match t {
        Target::General => None,
        Target::Room(r) => Some(('r', r.to_string())),
        Target::To(u) => Some(('t', u.to_string())),
    }
}

fn owned(op: &ClientOp<'_>) -> Op {
    match op {
        ClientOp::Message(m) => Op::Message(
            m.text.to_string(),
            m.client_id.as_deref().map(str::to_string),
            target(&m.target),
        ),
        ClientOp::Edit { target, text } => Op::Edit(*target, text.to_string()),
        ClientOp::Delete { target } => Op::Delete(*target),
        ClientOp::React { target, emoji } => Op::React(*target, emoji.to_string()),
        ClientOp::Typing { on, target: t } => Op::Typing(*on, target(t)),
        ClientOp::Read { id, target: t } => Op::Read(*id, target(t)),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    // The configured 300, and small limits so the length rule is reached.
    let max_chars = match pick % 4 {
        0 => 300,
        n => usize::from(n),
    };
    if let Ok(text) = std::str::from_utf8(rest) {
        let got = decode_client_op(text, max_chars).map(|op| owned(&op));
        let want = reference(text, max_chars);
        assert_eq!(got, want, "{text:?}");
        if let Ok(Op::Message(t, ..) | Op::Edit(_, t)) = &got {
            assert!(t.chars().count() <= max_chars);
            assert!(!t.chars().all(char::is_whitespace));
        }
    }
    if let Some(body) = decode_body::<LoginBody>(rest) {
        let v: Value = serde_json::from_slice(rest).expect("accepted bodies are JSON");
        let fields = unique_fields(rest).expect("accepted bodies are objects");
        assert_eq!(fields, ["key"], "{v}");
        assert_eq!(v["key"].as_str(), Some(body.key.as_str()));
    }
});

/// The spec's rules, written against `serde_json::Value`.
fn reference(text: &str, max_chars: usize) -> Result<Op, AckError> {
    use AckError::InvalidMessage as Bad;
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Err(AckError::InvalidJson);
    };
    // Duplicate names are legal JSON but ambiguous; they are refused.
    let fields = unique_fields(text.as_bytes()).ok_or(Bad)?;
    let obj = value.as_object().ok_or(Bad)?;
    let only = |allowed: &[&str]| fields.iter().all(|f| allowed.contains(&f.as_str()));
    let int = |name: &str| obj.get(name).and_then(Value::as_i64).ok_or(Bad);
    let kinds = ["edit", "delete", "react", "typing", "read"];
    let present: Vec<&str> = kinds.into_iter().filter(|k| obj.contains_key(*k)).collect();
    match present.as_slice() {
        [] => {}
        ["edit"] if only(&["edit", "message"]) => {
            let id = int("edit")?;
            let message = obj.get("message").and_then(Value::as_str).ok_or(Bad)?;
            check_text(message, max_chars)?;
            return Ok(Op::Edit(id, message.to_string()));
        }
        ["delete"] if only(&["delete"]) => return Ok(Op::Delete(int("delete")?)),
        ["react"] if only(&["react", "emoji"]) => {
            let id = int("react")?;
            let emoji = obj.get("emoji").and_then(Value::as_str).ok_or(Bad)?;
            let n = emoji.chars().count();
            if !(1..=8).contains(&n) || emoji.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(AckError::InvalidEmoji);
            }
            return Ok(Op::React(id, emoji.to_string()));
        }
        ["typing"] if only(&["typing", "room", "to"]) => {
            let on = obj["typing"].as_bool().ok_or(Bad)?;
            return Ok(Op::Typing(on, conversation(obj, "to")?));
        }
        ["read"] if only(&["read", "room", "with"]) => {
            let id = int("read").ok().filter(|&i| i >= 0).ok_or(Bad)?;
            return Ok(Op::Read(id, conversation(obj, "with")?));
        }
        _ => return Err(Bad),
    }
    // A message: `message`, and optionally `client_id` and one of
    // `room` / `to`.
    if !obj.contains_key("message") || !only(&["client_id", "message", "room", "to"]) {
        return Err(Bad);
    }
    let target = conversation(obj, "to")?;
    let message = obj["message"].as_str().ok_or(Bad)?;
    let client_id = match obj.get("client_id") {
        None => None,
        Some(Value::String(id)) if (1..=MAX_CLIENT_ID).contains(&id.len()) => Some(id.clone()),
        Some(_) => return Err(Bad),
    };
    check_text(message, max_chars)?;
    Ok(Op::Message(message.to_string(), client_id, target))
}

/// `room` or `other` (`to`, `with`): a non-empty string, at most one.
fn conversation(obj: &Map<String, Value>, other: &str) -> Result<Option<(char, String)>, AckError> {
    let name = |f: &str| match obj.get(f) {
        None => Ok(None),
        Some(Value::String(n)) if !n.is_empty() => Ok(Some(n.clone())),
        Some(_) => Err(AckError::InvalidMessage),
    };
    match (name("room")?, name(other)?) {
        (None, None) => Ok(None),
        (Some(r), None) => Ok(Some(('r', r))),
        (None, Some(t)) => Ok(Some(('t', t))),
        _ => Err(AckError::InvalidMessage),
    }
}

fn check_text(message: &str, max_chars: usize) -> Result<(), AckError> {
    if message.chars().all(char::is_whitespace) {
        return Err(AckError::InvalidMessage);
    }
    if message.chars().count() > max_chars {
        return Err(AckError::MessageTooLong);
    }
    Ok(())
}

/// The member names of a top-level JSON object, in order; `None` when the
/// JSON is not an object or a name repeats.
fn unique_fields(json: &[u8]) -> Option<Vec<String>> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Names;
    impl<'de> Visitor<'de> for Names {
        type Value = Option<Vec<String>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut names: Vec<String> = Vec::new();
            let mut unique = true;
            while let Some(name) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                unique &= !names.contains(&name);
                names.push(name);
            }
            Ok(unique.then_some(names))
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let names = de.deserialize_map(Names).ok()?;
    de.end().ok()?;
    names
}
