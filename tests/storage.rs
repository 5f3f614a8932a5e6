//! Storage integrity (issue 11): what a client is told about a row is true.
//! A failing disk is real here: the server runs under `prlimit --fsize`
//! with SIGXFSZ ignored, so once its WAL reaches the limit every commit
//! fails with an I/O error, as on a full disk; a restart without the limit
//! then shows what was stored.

mod util;

use serde_json::{Value, json};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use util::chat::history;
use util::ws::{Client, Got, open};
use util::{PATIENCE, Resp, Server, TempDir, wait_for};

/// The largest file the small disk takes: the fresh database's WAL is
/// about 40 KiB, so a few dozen commits fill it.
const SMALL_DISK: u64 = 256 * 1024;

/// The `i`-th message: long, so that the disk fills in few turns.
fn text(i: usize) -> String {
    format!("{i:04} {}", "x".repeat(280))
}

/// The `i`-th message with its `client_id`.
fn frame(i: usize) -> String {
    json!({ "message": text(i), "client_id": format!("c-{i}") }).to_string()
}

/// What the sender learns of a frame: its ack's id, or `None` when the
/// socket closed without one. Presence and pings are skipped.
fn outcome(c: &mut Client) -> Option<i64> {
    loop {
        match c.next() {
            Got::Json(v) if v.get("status").is_some() => {
                assert_eq!(v["status"], true, "{v}");
                return v["id"].as_i64();
            }
            Got::Json(v) if v.get("event").is_some() => {}
            Got::Ping | Got::Pong => {}
            Got::Gone | Got::Close(_) => return None,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn presence(event: &str, name: &str) -> Value {
    json!({ "event": event, "username": name })
}

/// Registers `name` on a possibly full disk.
fn try_register(s: &Server, name: &str) -> Resp {
    s.post("/api/register", &json!({ "username": name }).to_string())
}

fn try_login(s: &Server, key: &str) -> Resp {
    s.post("/api/login", &json!({ "key": key }).to_string())
}

/// The 503 of a failed commit, and nothing else: no key, no cookie.
fn assert_storage_unavailable(r: &Resp) {
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json(), json!({ "error": "storage_unavailable" }));
    assert!(r.header("set-cookie").is_none(), "{:?}", r.headers);
}

/// Stops `s` and starts it again on its database, without the small disk,
/// with `args`.
fn restart(mut s: Server, args: &[&str]) -> Server {
    s.signal("-TERM");
    assert_eq!(s.wait_exit(), Some(0));
    let dir = s.dir.clone();
    drop(s);
    Server::start_in(dir, args)
}

#[test]
fn failed_commit_leaks_no_broadcast_ack_or_dedupe() {
    let no_limit = ["--chat-burst", "0"];
    let s = Server::start_on_small_disk(Arc::new(TempDir::new()), SMALL_DISK, &no_limit);
    let (ta, tb) = (s.user("alice"), s.user("bob"));
    let mut bob = open(&s, &tb);
    let mut alice = open(&s, &ta);
    assert_eq!(bob.raw_json(), presence("join", "alice"));
    let mut acked: Vec<i64> = Vec::new();
    let failed = (0..2000)
        .find(|&i| {
            alice.send_text(&frame(i));
            let Some(id) = outcome(&mut alice) else {
                return true;
            };
            assert!(acked.last().is_none_or(|&last| last < id), "{id}");
            let got = bob.raw_json();
            assert_eq!(
                (got["id"].as_i64(), &got["message"]),
                (Some(id), &json!(text(i)))
            );
            acked.push(id);
            false
        })
        .expect("the disk fills up");
    assert!(failed > 0, "nothing was stored at all");
    // Alice's socket closed without an ack; bob hears that she left, and
    // nothing of her unstored message before it.
    assert_eq!(bob.raw_json(), presence("leave", "alice"));

    // Still on the full disk: a resend of a stored message is acked with
    // its id (the dedupe entry of a stored message holds), a resend of the
    // unstored one is not acked with any.
    let mut alice = open(&s, &ta);
    assert_eq!(bob.raw_json(), presence("join", "alice"));
    alice.send_text(&frame(0));
    assert_eq!(outcome(&mut alice), Some(acked[0]));
    alice.send_text(&frame(failed));
    assert_eq!(outcome(&mut alice), None, "a resend on the full disk");
    assert_eq!(bob.raw_json(), presence("leave", "alice"));
    bob.quiet(std::time::Duration::from_millis(100));

    // On a disk with room again: the resend is stored as a new message,
    // under an id above every id a client has seen.
    let s = restart(s, &[]);
    let mut bob = open(&s, &tb);
    let mut alice = open(&s, &ta);
    assert_eq!(bob.raw_json(), presence("join", "alice"));
    alice.send_text(&frame(0));
    assert_eq!(
        outcome(&mut alice),
        Some(acked[0]),
        "stored ids are remembered"
    );
    alice.send_text(&frame(failed));
    let id = outcome(&mut alice).expect("stored now");
    assert!(id > *acked.last().unwrap(), "{id} after {acked:?}");
    let got = bob.raw_json();
    assert_eq!(
        (got["id"].as_i64(), &got["message"]),
        (Some(id), &json!(text(failed)))
    );
    // Exactly the acknowledged messages are stored, each once, in order.
    let mut want: Vec<(i64, String)> = acked
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, text(i)))
        .collect();
    want.push((id, text(failed)));
    assert_eq!(history(&s, &ta, "?limit=200"), want);
}

#[test]
fn second_server_on_same_db_refuses_to_start() {
    let s = Server::start(&[]);
    let token = s.user("alice");
    let db = s.dir.0.join("chat.db");
    let mut second = Command::new(env!("CARGO_BIN_EXE_piratchat"))
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run a second server");
    let exited = wait_for("the second server to exit", PATIENCE, || {
        second.try_wait().unwrap()
    });
    assert_eq!(exited.code(), Some(2));
    let mut err = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let want = format!(
        "piratchat: database {} is in use by another process\n",
        db.display()
    );
    assert_eq!(err, want);
    // The first one carries on, and once it is gone the file is free.
    assert_eq!(s.get("/api/user/@me", Some(&token)).status, 200);
    let s = restart(s, &[]);
    assert_eq!(s.get("/api/user/@me", Some(&token)).status, 200);
}

#[test]
fn register_on_failing_disk_is_503_not_201() {
    let args = ["--register-limit", "0"];
    let s = Server::start_on_small_disk(Arc::new(TempDir::new()), SMALL_DISK, &args);
    let mut keys = Vec::new();
    let refused = (0..500)
        .map(|i| format!("user{i}"))
        .find(|name| {
            let r = try_register(&s, name);
            if r.status != 201 {
                assert_storage_unavailable(&r);
                return true;
            }
            keys.push((name.clone(), r.json()["key"].as_str().unwrap().to_string()));
            false
        })
        .expect("the disk fills up");
    assert!(!keys.is_empty());
    assert_storage_unavailable(&try_register(&s, &refused));

    // Every key handed out works; the refused name was never taken.
    let s = restart(s, &[]);
    for (name, key) in &keys {
        let r = try_login(&s, key);
        assert_eq!(
            (r.status, r.json()["username"].as_str()),
            (200, Some(name.as_str()))
        );
    }
    s.register(&refused);
}

#[test]
fn login_on_failing_disk_is_503() {
    // The per-user session cap would end the oldest sessions on its own:
    // raise it past the number of logins the disk takes.
    let cap = ["--sessions-per-user", "1024"];
    let s = Server::start_on_small_disk(Arc::new(TempDir::new()), SMALL_DISK, &cap);
    let key = s.register("alice");
    let mut sessions = Vec::new();
    let refused = (0..1024)
        .map(|_| try_login(&s, &key))
        .find(|r| {
            if r.status != 200 {
                return true;
            }
            sessions.push(r.session_cookie().expect("a session cookie"));
            false
        })
        .expect("the disk fills up");
    assert_storage_unavailable(&refused);
    assert_storage_unavailable(&try_login(&s, &key));

    // Every session handed out survives the restart.
    let s = restart(s, &cap);
    assert!(!sessions.is_empty());
    for token in &sessions {
        let r = s.get("/api/user/@me", Some(token));
        assert_eq!(
            (r.status, r.json()["username"].as_str()),
            (200, Some("alice"))
        );
    }
    s.login(&key);
}
