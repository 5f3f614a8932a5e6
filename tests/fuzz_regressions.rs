//! Regression tests for defects the fuzz targets found, each named after
//! its bug. They include the fuzz crate's harness files, so each replays
//! its reproducer exactly as the target ran it.

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
        let setup = conn_driver::Setup::from_bytes(data[0], data[1]);
        let mut input = Vec::new();
        if data[0] & 4 != 0 {
            input = conn_driver::upgrade_request(setup.echo);
        }
        input.extend_from_slice(&data[2..]);
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
