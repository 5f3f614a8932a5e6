//! The fuzz targets' seed corpora replayed under `cargo test` (the
//! `*_seeds_*` tests: not defects, they keep the harness in step with the
//! code), and regression tests through the fuzz harness, each named after
//! the bug it pins (`issue<N>_<what went wrong>`). They include the fuzz
//! crate's harness files, so each replays its input exactly as the target
//! runs it.

#[allow(dead_code)]
#[path = "../fuzz/src/conn_driver.rs"]
mod conn_driver;
#[allow(dead_code)]
#[path = "../fuzz/src/ws_model.rs"]
mod ws_model;

use std::path::Path;

/// The committed seeds of a target, as (name, bytes).
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.expect("directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("seed"))
        })
        .collect();
    out.sort();
    out
}

/// Not a defect: keeps the harness the `connection` target shares with
/// these tests in step with the connection code, so a change to `src/server`
/// that breaks it shows up in `cargo test`, not only in the fuzz CI. Every
/// seed runs to the end with the driver's invariants checked each turn.
#[test]
fn connection_seeds_replay_cleanly() {
    for (name, data) in seeds("connection") {
        let setup = conn_driver::Setup::from_bytes(data[0], data[1]).with_refusal(data[2]);
        let mut input = Vec::new();
        if data[0] & 4 != 0 {
            input = conn_driver::upgrade_request(setup.echo);
        }
        input.extend_from_slice(&data[3..]);
        let d = conn_driver::run(input, setup);
        assert!(!d.is_open(), "{name}");
    }
}

/// Not a defect: the `ws_frames` seeds read the same through tungstenite
/// (configured as the server does) as through the reference model.
#[test]
fn ws_frames_seeds_agree_with_the_model() {
    use tungstenite::Message;
    for (name, data) in seeds("ws_frames") {
        let stream = data[3..].to_vec();
        let (want, _) = ws_model::expect(&stream, ws_model::CHAT_LIMIT);
        let mut ctx = ws_model::server_context(ws_model::CHAT_LIMIT, stream);
        let mut input = ws_model::Chunked::new(Vec::new(), 1);
        input.eof();
        let mut output = Vec::new();
        let mut io = ws_model::Duplex {
            input: &mut input,
            output: &mut output,
        };
        let mut got = Vec::new();
        while let Ok(msg) = ctx.read(&mut io) {
            got.push(match msg {
                Message::Text(t) => ws_model::Msg::Text(t.as_str().to_owned()),
                Message::Binary(b) => ws_model::Msg::Binary(b.to_vec()),
                Message::Ping(p) => ws_model::Msg::Ping(p.to_vec()),
                Message::Pong(p) => ws_model::Msg::Pong(p.to_vec()),
                _ => break,
            });
        }
        assert_eq!(got, want, "{name}");
    }
}

/// Issue 11, defect 1 (see also `tests/storage.rs`), through the
/// connection code itself: a commit the
/// store refuses (once, or from a turn on for good) in a chat socket's
/// life. `run` checks that nothing carrying an unstored message's id was
/// written to alice or bob and that none is in the database; here, that
/// the refusals did hit messages.
#[test]
fn issue11_refused_commit_leaked_unstored_messages() {
    let frames: Vec<Vec<u8>> = [
        r#"{"message":"one","client_id":"c-1"}"#,
        r#"{"message":"one","client_id":"c-1"}"#,
        r#"{"message":"two!!!!!!!!!!!!!!!!!!!"}"#,
    ]
    .iter()
    .map(|t| masked_text(t))
    .collect();
    let mut input = conn_driver::upgrade_request(false);
    for f in &frames {
        input.extend_from_slice(f);
    }
    let mut hits = 0;
    for turn in 1..=16u8 {
        for always in [0, 0x80] {
            // One frame's worth of input per turn, 1 ms apart.
            let mut setup = conn_driver::Setup::from_bytes(0x20, 0).with_refusal(turn | always);
            setup.chunk = frames[0].len();
            let d = conn_driver::run(input.clone(), setup);
            hits += usize::from(!d.unstored.is_empty());
        }
    }
    assert!(
        hits >= 3,
        "only {hits} runs refused a commit holding a message"
    );
}

/// A masked client text frame (payload under 126 bytes).
fn masked_text(text: &str) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut f = vec![0x81, 0x80 | text.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}
