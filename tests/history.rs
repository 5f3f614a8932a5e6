//! Nothing lost: stored messages, history paging, resume after reconnect,
//! duplicate suppression, retention, and sessions and messages that survive
//! restarts and a SIGKILL.

mod util;

use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use util::chat::history;
use util::ws::{Client, open, try_open};
use util::{PATIENCE, Server, TempDir, wait_for};

/// Sends `text` and returns the id its ack carries.
fn send(c: &mut Client, text: &str) -> i64 {
    c.say(text);
    ack_id(c)
}

/// The id of the next ack (skipping other frames).
fn ack_id(c: &mut Client) -> i64 {
    loop {
        let v = c.raw_json();
        if v.get("status").is_some() {
            assert_eq!(v["status"], true, "{v}");
            return v["id"].as_i64().unwrap();
        }
    }
}

/// The next chat message a client receives (skipping presence frames).
fn next_message(c: &mut Client) -> Value {
    loop {
        let v = c.raw_json();
        if v.get("message").is_some() || v.get("event") == Some(&"resync".into()) {
            return v;
        }
    }
}

#[test]
fn broadcast_and_ack_carry_the_stored_id() {
    let s = Server::start(&[]);
    let (ta, tb) = (s.user("ann"), s.user("ben"));
    let mut a = open(&s, &ta);
    let mut b = open(&s, &tb);
    let id = send(&mut a, "hello");
    let got = next_message(&mut b);
    assert_eq!(got["id"].as_i64(), Some(id));
    assert_eq!(got["author"], "ann");
    assert!(got["ts"].as_i64().unwrap() > 1_600_000_000_000);
    let page = s.get("/api/messages", Some(&ta)).json();
    assert_eq!(
        page["messages"][0], got,
        "history holds the same fields as the broadcast"
    );
    assert_eq!(send(&mut b, "second"), id + 1);
}

#[test]
fn history_paging() {
    let s = Server::start(&["--chat-burst", "0"]);
    let t = s.user("pat");
    let mut c = open(&s, &t);
    let ids: Vec<i64> = (1..=12).map(|i| send(&mut c, &format!("m{i}"))).collect();
    let all = history(&s, &t, "");
    assert_eq!(
        all.iter().map(|m| m.0).collect::<Vec<_>>(),
        ids,
        "oldest first"
    );
    let last3 = history(&s, &t, "?limit=3");
    assert_eq!(
        last3.iter().map(|m| m.1.as_str()).collect::<Vec<_>>(),
        ["m10", "m11", "m12"]
    );
    let before = history(&s, &t, &format!("?before={}&limit=3", ids[9]));
    assert_eq!(
        before.iter().map(|m| m.1.as_str()).collect::<Vec<_>>(),
        ["m7", "m8", "m9"]
    );
    assert_eq!(history(&s, &t, &format!("?before={}", ids[0])), []);
    assert_eq!(history(&s, &t, "?before=1&limit=200"), []);
    for bad in [
        "?limit=0",
        "?limit=201",
        "?limit=x",
        "?before=0",
        "?before=-5",
        "?before=",
        "?foo=1",
    ] {
        let r = s.get(&format!("/api/messages{bad}"), Some(&t));
        assert_eq!(
            (r.status, r.error()),
            (422, "invalid_request".to_string()),
            "{bad}"
        );
    }
    assert_eq!(s.get("/api/messages", None).status, 422);
    assert_eq!(
        s.get("/api/messages", Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
            .status,
        401
    );
    // The default page is 50 and the largest 200.
    for i in 0..60 {
        send(&mut c, &format!("n{i}"));
    }
    assert_eq!(history(&s, &t, "").len(), 50);
    assert_eq!(history(&s, &t, "?limit=200").len(), 72);
}

#[test]
fn resume_replays_exactly_the_missed_messages_then_live_ones() {
    let s = Server::start(&["--chat-burst", "0"]);
    let (ta, tb) = (s.user("ann"), s.user("ben"));
    let mut a = open(&s, &ta);
    let mut b = open(&s, &tb);
    let seen = send(&mut a, "before");
    assert_eq!(next_message(&mut b)["id"].as_i64(), Some(seen));
    drop(b);
    let missed: Vec<i64> = (0..5)
        .map(|i| send(&mut a, &format!("while away {i}")))
        .collect();
    let cookie = format!("session={tb}");
    let mut b = try_open(&s, &format!("/ws?since={seen}"), &[("Cookie", &cookie)]).unwrap();
    let replayed: Vec<i64> = (0..5)
        .map(|_| next_message(&mut b)["id"].as_i64().unwrap())
        .collect();
    assert_eq!(replayed, missed);
    let live = send(&mut a, "live");
    assert_eq!(
        next_message(&mut b)["id"].as_i64(),
        Some(live),
        "no gap, no duplicate"
    );
}

#[test]
fn resume_while_messages_keep_arriving_has_no_gap_and_no_duplicate() {
    let s = Server::start(&["--chat-burst", "0"]);
    let (ta, tb) = (s.user("ann"), s.user("ben"));
    let mut a = open(&s, &ta);
    // ann keeps talking from another thread while ben reconnects.
    let talker = std::thread::spawn(move || {
        let mut ids = Vec::new();
        for i in 0..300 {
            a.say(&format!("stream {i}"));
            if i % 10 == 9 {
                for _ in 0..10 {
                    ids.push(ack_id(&mut a));
                }
            }
        }
        ids
    });
    let cookie = format!("session={tb}");
    let mut b = wait_for("a resumed socket mid-stream", PATIENCE, || {
        try_open(&s, "/ws?since=0", &[("Cookie", &cookie)]).ok()
    });
    let sent = talker.join().unwrap();
    let mut got = Vec::new();
    while got.last() != sent.last() {
        got.push(next_message(&mut b)["id"].as_i64().unwrap());
    }
    assert_eq!(got, sent, "every message once, in order");
}

#[test]
fn too_much_to_replay_is_a_resync() {
    let s = Server::start(&["--chat-burst", "0", "--resume-max", "5"]);
    let (ta, tb) = (s.user("ann"), s.user("ben"));
    let mut a = open(&s, &ta);
    for i in 0..6 {
        send(&mut a, &format!("m{i}"));
    }
    let cookie = format!("session={tb}");
    let mut b = try_open(&s, "/ws?since=0", &[("Cookie", &cookie)]).unwrap();
    assert_eq!(next_message(&mut b), serde_json::json!({"event": "resync"}));
    let live = send(&mut a, "after");
    assert_eq!(next_message(&mut b)["id"].as_i64(), Some(live));
    // Exactly at the maximum, it replays.
    let mut b2 = try_open(
        &s,
        "/ws?since=2",
        &[("Cookie", &format!("session={}", s.user("cy")))],
    )
    .unwrap();
    let first = next_message(&mut b2);
    assert_eq!(first["id"], 3, "{first}");
    // A bad `since` is refused before the upgrade.
    let r = try_open(
        &s,
        "/ws?since=abc",
        &[("Cookie", &format!("session={}", s.user("di")))],
    );
    assert_eq!(r.err().unwrap().status, 422);
}

#[test]
fn a_repeated_client_id_is_acked_again_and_not_broadcast() {
    let s = Server::start(&[]);
    let (ta, tb) = (s.user("ann"), s.user("ben"));
    let mut a = open(&s, &ta);
    let mut b = open(&s, &tb);
    let frame = r#"{"message":"only once","client_id":"abc-1"}"#;
    a.send_text(frame);
    let first = ack_id(&mut a);
    a.send_text(frame);
    assert_eq!(ack_id(&mut a), first, "the same id again");
    assert_eq!(next_message(&mut b)["id"].as_i64(), Some(first));
    let other = send(&mut a, "next");
    assert_eq!(
        next_message(&mut b)["id"].as_i64(),
        Some(other),
        "the resend was not broadcast"
    );
    let texts: Vec<String> = history(&s, &ta, "").into_iter().map(|m| m.1).collect();
    assert_eq!(texts, ["only once", "next"]);
}

#[test]
fn retention_prunes_old_messages_in_batches() {
    let s = Server::start(&[
        "--chat-burst",
        "0",
        "--history-max-messages",
        "5",
        "--prune-interval",
        "100ms",
    ]);
    let t = s.user("ann");
    let mut c = open(&s, &t);
    let ids: Vec<i64> = (0..20).map(|i| send(&mut c, &format!("m{i}"))).collect();
    let kept = wait_for("pruning", PATIENCE, || {
        let h = history(&s, &t, "?limit=200");
        (h.len() == 5).then_some(h)
    });
    assert_eq!(kept.iter().map(|m| m.0).collect::<Vec<_>>(), ids[15..]);
}

#[test]
fn storage_can_be_turned_off() {
    let s = Server::start(&["--store-messages=off"]);
    let (ta, tb) = (s.user("ann"), s.user("ben"));
    let mut a = open(&s, &ta);
    let mut b = open(&s, &tb);
    let id = send(&mut a, "ephemeral");
    assert_eq!(next_message(&mut b)["id"].as_i64(), Some(id));
    assert_eq!(history(&s, &ta, ""), []);
}

#[test]
fn the_wal_is_checkpointed_off_the_loop() {
    let s = Server::start(&["--chat-burst", "0"]);
    let t = s.user("ann");
    let mut c = open(&s, &t);
    // Each message waits for its ack, so each is a commit of its own that
    // appends a few pages to the WAL; the checkpoint thread is asked to run
    // once the log holds 1,000 pages.
    let mut last = 0;
    wait_for("two WAL checkpoints", PATIENCE, || {
        for _ in 0..100 {
            last = send(&mut c, "filling the log");
        }
        (s.metric("piratchat_wal_checkpoints_total") >= 2).then_some(())
    });
    // Nothing was lost on the way.
    let page = history(&s, &t, "?limit=1");
    assert_eq!(page.iter().map(|m| m.0).collect::<Vec<_>>(), [last]);
    let log = s.log_lines().join("\n");
    assert!(!log.contains("checkpoint"), "{log}");
}

#[test]
fn sessions_and_client_ids_survive_a_graceful_restart() {
    let dir = Arc::new(TempDir::new());
    let mut s = Server::start_in(dir.clone(), &["--session-flush", "100ms"]);
    let t = s.user("ann");
    let mut c = open(&s, &t);
    c.send_text(r#"{"message":"m","client_id":"k1"}"#);
    let id = ack_id(&mut c);
    s.signal("-TERM");
    assert_eq!(s.wait_exit(), Some(0));
    let s = Server::start_in(dir, &[]);
    assert_eq!(
        s.get("/api/user/@me", Some(&t)).status,
        200,
        "the session is back"
    );
    let mut c = open(&s, &t);
    c.send_text(r#"{"message":"m","client_id":"k1"}"#);
    assert_eq!(
        ack_id(&mut c),
        id,
        "the resend after a restart is recognized"
    );
    assert_eq!(send(&mut c, "new"), id + 1, "ids continue");
}

#[test]
fn sigkill_mid_burst_loses_no_acknowledged_message() {
    let dir = Arc::new(TempDir::new());
    let mut s = Server::start_in(dir.clone(), &["--chat-burst", "0"]);
    let tokens: Vec<String> = (0..4).map(|i| s.user(&format!("u{i}"))).collect();
    let clients: Vec<Client> = tokens.iter().map(|t| open(&s, t)).collect();
    // Each client sends as fast as acks come back, recording what was acked.
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, mut c)| {
            std::thread::spawn(move || {
                let mut acked: HashMap<i64, String> = HashMap::new();
                for i in 0.. {
                    let text = format!("c{n} m{i}");
                    let frame =
                        serde_json::json!({"message": text, "client_id": format!("{n}-{i}")});
                    // The server dies under us: sending then fails, and that ends the burst.
                    if c.ws
                        .send(tungstenite::Message::text(frame.to_string()))
                        .is_err()
                    {
                        break;
                    }
                    // Broadcasts from the others come in between; wait for our ack.
                    let ack = loop {
                        match c.next_within(PATIENCE) {
                            Some(util::ws::Got::Json(v)) if v.get("status").is_some() => {
                                break Some(v);
                            }
                            Some(util::ws::Got::Json(_)) => continue,
                            _ => break None,
                        }
                    };
                    let Some(ack) = ack else { break };
                    assert_eq!(ack["status"], true, "{ack}");
                    acked.insert(ack["id"].as_i64().unwrap(), text);
                }
                acked
            })
        })
        .collect();
    wait_for("a burst under way", PATIENCE, || {
        let body = s.get("/metrics", None).body;
        let line = body
            .lines()
            .find(|l| l.starts_with("piratchat_acks_total{code=\"ok\"}"))?;
        (line.rsplit(' ').next()?.parse::<u64>().ok()? > 200).then_some(())
    });
    s.signal("-KILL");
    s.wait_exit();
    let acked: HashMap<i64, String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(acked.len() > 200, "{} acked", acked.len());
    let s = Server::start_in(dir.clone(), &[]);
    // Every session is still valid, and history holds every acked message
    // exactly once.
    for t in &tokens {
        assert_eq!(s.get("/api/user/@me", Some(t)).status, 200);
    }
    let mut stored: Vec<(i64, String)> = Vec::new();
    let mut before = i64::MAX;
    loop {
        let page = history(&s, &tokens[0], &format!("?before={before}&limit=200"));
        let Some(first) = page.first() else { break };
        before = first.0;
        stored.splice(0..0, page);
    }
    let mut texts: HashMap<&str, usize> = HashMap::new();
    for (_, text) in &stored {
        *texts.entry(text).or_default() += 1;
    }
    assert!(texts.values().all(|&n| n == 1), "a message stored twice");
    let by_id: HashMap<i64, &String> = stored.iter().map(|(id, t)| (*id, t)).collect();
    for (id, text) in &acked {
        assert_eq!(
            by_id.get(id),
            Some(&text),
            "acked message {id} is in history"
        );
    }
    drop(s);
    let conn = rusqlite::Connection::open(dir.0.join("chat.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// A 422 never said what was wrong: it now carries `detail` naming the
/// parameter and its rule, beside the unchanged `error` code and status.
#[test]
fn invalid_requests_say_what_was_wrong() {
    let s = Server::start(&[]);
    let t = s.user("dee");
    let cases = [
        (
            "/api/messages?limit=201",
            "limit must be an integer from 1 to 200",
        ),
        (
            "/api/messages?before=x",
            "before must be a message id, an integer from 1",
        ),
        (
            "/api/messages?limt=5",
            "unknown parameter \"limt\" (known: before, limit, room, with)",
        ),
    ];
    for (path, detail) in cases {
        let r = s.get(path, Some(&t));
        let want = serde_json::json!({"error": "invalid_request", "detail": detail});
        assert_eq!((r.status, r.json()), (422, want), "{path}");
    }
    let r = try_open(&s, "/ws?since=abc", &[("Cookie", &format!("session={t}"))]);
    let r = r.err().expect("refused");
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["detail"],
        "since must be a message id, an integer from 0"
    );
    for (path, field) in [("/api/register", "username"), ("/api/login", "key")] {
        let r = s.post(path, r#"{"name":"x"}"#);
        assert_eq!((r.status, r.error()), (422, "invalid_request".into()));
        let detail = r.json()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains(&format!("\"{field}\"")), "{detail}");
    }
}
