//! Arbitrary text as a client's chat frame, and arbitrary bytes as a REST
//! body.
//!
//! Properties: the decoder answers exactly one of accepted / error ack, and
//! the answer agrees with a reference reading through `serde_json::Value`:
//! invalid JSON is `invalid_json`; anything but an object with a string
//! `message` holding a non-whitespace character (and at most an optional
//! `client_id` string of 1 to 64 bytes, and one of `room` or `to`, a
//! non-empty string) is `invalid_message`; more than `max_chars` scalar values is
//! `message_too_long`; otherwise the accepted text is that string, within
//! the limit. A REST body is accepted only as an object with exactly the
//! one string field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use piratchat::protocol::{AckError, LoginBody, MAX_CLIENT_ID, decode_body, decode_chat_text};
use serde_json::Value;

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
        let got = decode_chat_text(text, max_chars);
        let want = reference(text, max_chars);
        match (&got, &want) {
            (Ok(a), Ok((text, id))) => {
                assert_eq!(a.text.as_ref(), text.as_str());
                assert_eq!(a.client_id.as_deref(), id.as_deref());
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("{text:?}: decoder {got:?}, reference {want:?}"),
        }
        if let Ok(t) = got {
            assert!(t.text.chars().count() <= max_chars);
            assert!(!t.text.chars().all(char::is_whitespace));
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
fn reference(text: &str, max_chars: usize) -> Result<(String, Option<String>), AckError> {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Err(AckError::InvalidJson);
    };
    // Duplicate names are legal JSON but ambiguous; they are refused.
    let mut fields = unique_fields(text.as_bytes()).ok_or(AckError::InvalidMessage)?;
    fields.sort();
    // `message`, and optionally `client_id` and one of `room` / `to`.
    let allowed = ["client_id", "message", "room", "to"];
    let has = |f: &str| fields.iter().any(|g| g == f);
    if !has("message") || fields.iter().any(|f| !allowed.contains(&f.as_str())) {
        return Err(AckError::InvalidMessage);
    }
    if has("room") && has("to") {
        return Err(AckError::InvalidMessage);
    }
    for target in ["room", "to"] {
        match value.get(target) {
            None => {}
            Some(Value::String(name)) if !name.is_empty() => {}
            Some(_) => return Err(AckError::InvalidMessage),
        }
    }
    let Some(message) = value["message"].as_str() else {
        return Err(AckError::InvalidMessage);
    };
    let client_id = match value.get("client_id") {
        None => None,
        Some(Value::String(id)) if (1..=MAX_CLIENT_ID).contains(&id.len()) => Some(id.clone()),
        Some(_) => return Err(AckError::InvalidMessage),
    };
    if message.chars().all(char::is_whitespace) {
        return Err(AckError::InvalidMessage);
    }
    if message.chars().count() > max_chars {
        return Err(AckError::MessageTooLong);
    }
    Ok((message.to_string(), client_id))
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
