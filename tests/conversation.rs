//! Conversation features (SPEC §10, §11): edit, delete and react frames
//! with their events and error acks, one ack per frame in frame order with
//! every kind in one write, resume replaying edits, deletions and
//! reactions in order, a deleted text gone from the database file, typing
//! throttled and never stored, several sockets of one user sharing
//! presence and read markers, unread counts, and `last_seen`.
//!
//! "Nothing arrives" is shown without waiting where possible: a later
//! frame goes out, and the socket's next frame must be that one (a
//! socket's frames arrive in order).

mod util;

use serde_json::{Value, json};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use util::chat::{next, post, send, send_ok};
use util::ws::{Client, masked, open, try_open};
use util::{PATIENCE, Server, TempDir, wait_for};
/// Sends a frame and returns the code of its error ack.
fn send_err(c: &mut Client, frame: Value) -> String {
    let ack = send(c, frame.clone());
    assert_eq!(ack["status"], false, "{frame}: {ack}");
    ack["code"].as_str().unwrap().to_string()
}

/// `v` without its `ts` (checked to be a Unix ms time).
fn no_ts(mut v: Value) -> Value {
    let ts = v.as_object_mut().unwrap().remove("ts");
    assert!(
        ts.and_then(|t| t.as_i64())
            .is_some_and(|t| t > 1_600_000_000_000)
    );
    v
}

/// Three users in general, each with one socket; the first two see the
/// third's join before the test starts.
fn three(s: &Server) -> [(String, Client); 3] {
    let names = ["alice", "bob", "carol"];
    let tokens = names.map(|n| s.user(n));
    let mut clients: Vec<Client> = tokens.iter().map(|t| open(s, t)).collect();
    // Wait for the joins: everyone is online from here on.
    clients[0].raw_json();
    clients[0].raw_json();
    clients[1].raw_json();
    let mut it = tokens.into_iter().zip(clients);
    [it.next().unwrap(), it.next().unwrap(), it.next().unwrap()]
}

/// A page of history.
fn page(s: &Server, token: &str, query: &str) -> Vec<Value> {
    let r = s.get(&format!("/api/messages{query}"), Some(token));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["messages"].as_array().unwrap().clone()
}

#[test]
fn edit_delete_react_frames_events_and_error_acks() {
    let s = Server::start(&["--chat-burst", "0"]);
    let [(ta, mut a), (_, mut b), (_, mut c)] = three(&s);
    let m = send_ok(&mut a, json!({"message": "hi"}));
    assert_eq!(next(&mut b)["id"], m);
    assert_eq!(next(&mut c)["id"], m);

    let e = send_ok(&mut a, json!({"edit": m, "message": "hello"}));
    assert!(e > m);
    let want =
        json!({"event": "edit", "target": m, "message": "hello", "author": "alice", "id": e});
    assert_eq!(no_ts(next(&mut b)), want);
    assert_eq!(no_ts(next(&mut c)), want);

    let r = send_ok(&mut b, json!({"react": m, "emoji": "👍"}));
    let want = json!({"event": "react", "target": m, "emoji": "👍", "username": "bob", "on": true, "id": r});
    assert_eq!(no_ts(next(&mut a)), want);
    assert_eq!(no_ts(next(&mut c)), want);
    let r2 = send_ok(&mut c, json!({"react": m, "emoji": "👍"}));
    assert_eq!(next(&mut a)["id"], r2);
    let r3 = send_ok(&mut c, json!({"react": m, "emoji": "🎉"}));
    assert_eq!(next(&mut a)["id"], r3);

    let history = page(&s, &ta, "");
    let msg = history.iter().find(|v| v["id"] == m).unwrap();
    assert_eq!(msg["message"], "hello");
    assert!(msg["edited"].as_i64().is_some());
    assert_eq!(
        msg["reactions"],
        json!({"👍": ["bob", "carol"], "🎉": ["carol"]})
    );

    // Toggling off.
    let off = send_ok(&mut b, json!({"react": m, "emoji": "👍"}));
    let got = next(&mut a);
    assert_eq!((got["id"].as_i64(), &got["on"]), (Some(off), &json!(false)));

    let table = [
        (json!({"edit": m, "message": "mine now"}), "forbidden"),
        (json!({"edit": 999_999, "message": "x"}), "not_found"),
        (json!({"delete": m}), "forbidden"),
        (json!({"delete": 999_999}), "not_found"),
        (json!({"react": 999_999, "emoji": "👍"}), "not_found"),
        (json!({"react": m, "emoji": "a b"}), "invalid_emoji"),
        (json!({"react": m, "emoji": "123456789"}), "invalid_emoji"),
        (json!({"react": m, "emoji": ""}), "invalid_emoji"),
        (json!({"edit": m, "message": " "}), "invalid_message"),
        (
            json!({"edit": m, "message": "x".repeat(301)}),
            "message_too_long",
        ),
        (json!({"edit": "1", "message": "x"}), "invalid_message"),
        (json!({"edit": m}), "invalid_message"),
        (json!({"delete": m, "message": "x"}), "invalid_message"),
        (json!({"delete": m, "react": m}), "invalid_message"),
        (json!({"typing": true, "with": "alice"}), "invalid_message"),
        (json!({"typing": true, "room": "nope"}), "room_not_found"),
        (json!({"typing": true, "to": "nobody"}), "user_not_found"),
        (json!({"read": m, "to": "alice"}), "invalid_message"),
        (json!({"read": m, "with": "nobody"}), "user_not_found"),
        (json!({"read": -1}), "invalid_message"),
    ];
    for (frame, code) in table {
        assert_eq!(send_err(&mut b, frame.clone()), code, "{frame}");
    }

    let d = send_ok(&mut a, json!({"delete": m}));
    let want = json!({"event": "delete", "target": m, "by": "alice", "id": d});
    assert_eq!(no_ts(next(&mut b)), want);
    for frame in [
        json!({"edit": m, "message": "again"}),
        json!({"delete": m}),
        json!({"react": m, "emoji": "👍"}),
    ] {
        assert_eq!(send_err(&mut a, frame.clone()), "not_found", "{frame}");
    }
    let history = page(&s, &ta, "");
    let msg = history.iter().find(|v| v["id"] == m).unwrap();
    assert_eq!(
        no_ts(msg.clone()),
        json!({"author": "alice", "id": m, "deleted": true})
    );
}

#[test]
fn room_moderators_delete_others_messages_and_outsiders_see_nothing() {
    let s = Server::start(&[]);
    let [(ta, mut a), (tb, mut b), (_, mut c)] = three(&s);
    let r = post(&s, &tb, "/api/rooms", r#"{"name":"crew","private":true}"#);
    assert_eq!(r.status, 201);
    let r = post(&s, &tb, "/api/rooms/crew/invite", r#"{"username":"alice"}"#);
    assert_eq!(r.status, 200);
    assert_eq!(next(&mut a)["event"], "room_join");
    assert_eq!(next(&mut b)["username"], "bob");
    assert_eq!(next(&mut b)["username"], "alice");
    let m = send_ok(&mut a, json!({"message": "in crew", "room": "crew"}));
    assert_eq!(next(&mut b)["id"], m);
    // An outsider cannot find it (not forbidden: it does not exist for them).
    assert_eq!(send_err(&mut c, json!({"delete": m})), "not_found");
    assert_eq!(
        send_err(&mut c, json!({"react": m, "emoji": "x"})),
        "not_found"
    );
    assert_eq!(
        send_err(&mut c, json!({"typing": true, "room": "crew"})),
        "room_not_found"
    );
    // The owner edits nothing of others, but deletes.
    assert_eq!(
        send_err(&mut b, json!({"edit": m, "message": "x"})),
        "forbidden"
    );
    let e = send_ok(&mut a, json!({"edit": m, "message": "edited"}));
    assert_eq!(next(&mut b)["room"], "crew");
    let d = send_ok(&mut b, json!({"delete": m}));
    let want = json!({"event": "delete", "target": m, "by": "bob", "id": d, "room": "crew"});
    assert_eq!(no_ts(next(&mut a)), want);
    assert!(d > e);
    // A direct message: only its two sides see it.
    let dm = send_ok(&mut a, json!({"message": "psst", "to": "bob"}));
    assert_eq!(next(&mut b)["id"], dm);
    assert_eq!(
        send_err(&mut c, json!({"react": dm, "emoji": "👀"})),
        "not_found"
    );
    let r = send_ok(&mut b, json!({"react": dm, "emoji": "👀"}));
    let got = no_ts(next(&mut a));
    assert_eq!(
        got,
        json!({"event": "react", "target": dm, "emoji": "👀", "username": "bob", "on": true, "id": r, "to": "alice"})
    );
    let history = page(&s, &ta, "?with=bob");
    assert_eq!(history[0]["reactions"], json!({"👀": ["bob"]}));
    // Carol saw none of it: her next frame is this general message.
    let g = send_ok(&mut a, json!({"message": "general"}));
    assert_eq!(next(&mut c)["id"], g);
}

#[test]
fn one_ack_per_frame_in_frame_order_with_every_kind_in_one_write() {
    let s = Server::start(&[]);
    let [(_, mut a), (_, mut b), _] = three(&s);
    let m = send_ok(&mut a, json!({"message": "first"}));
    next(&mut b);
    // Ids to come: m+1 message, m+2 edit, m+3 react, m+4 delete.
    let frames: Vec<(Vec<u8>, Value)> = [
        (
            json!({"message": "x"}),
            json!({"status": true, "id": m + 1}),
        ),
        (
            json!({"edit": m + 1, "message": "y"}),
            json!({"status": true, "id": m + 2}),
        ),
        (
            json!({"react": m + 1, "emoji": "👍"}),
            json!({"status": true, "id": m + 3}),
        ),
        (json!({"typing": true}), json!({"status": true})),
        (json!({"typing": true}), json!({"status": true})),
        (json!({"read": m + 3}), json!({"status": true})),
        (
            json!({"edit": m, "message": "z", "x": 1}),
            nack("invalid_message"),
        ),
        (json!({"delete": 999_999}), nack("not_found")),
        (
            json!({"delete": m + 1}),
            json!({"status": true, "id": m + 4}),
        ),
        (
            json!({"message": "hi", "room": "nope"}),
            nack("room_not_found"),
        ),
    ]
    .into_iter()
    .map(|(f, ack)| (masked(0x1, f.to_string().as_bytes()), ack))
    .collect();
    let mut wire: Vec<u8> = frames.iter().flat_map(|f| f.0.clone()).collect();
    wire.extend(masked(0x1, b"{not json"));
    wire.extend(masked(0x2, b"\x00"));
    a.ws.get_mut().write_all(&wire).unwrap();
    let mut want: Vec<Value> = frames.into_iter().map(|f| f.1).collect();
    want.push(nack("invalid_json"));
    want.push(nack("binary_not_supported"));
    let got: Vec<Value> = want.iter().map(|_| a.raw_json()).collect();
    assert_eq!(got, want);
    // Bob saw the message, the edit, the reaction, one typing notice (the
    // second was throttled), and the deletion: in order.
    let kinds: Vec<String> = (0..5)
        .map(|_| {
            let v = next(&mut b);
            v["event"].as_str().unwrap_or("message").to_string()
        })
        .collect();
    assert_eq!(kinds, ["message", "edit", "react", "typing", "delete"]);
}

fn nack(code: &str) -> Value {
    json!({"status": false, "code": code})
}

#[test]
fn resume_replays_edits_deletes_and_reactions_in_order() {
    let s = Server::start(&[]);
    let [(_, mut a), (tb, mut b), _] = three(&s);
    let m0 = send_ok(&mut a, json!({"message": "before"}));
    assert_eq!(next(&mut b)["id"], m0);
    b.ws.close(None).unwrap();
    let m1 = send_ok(&mut a, json!({"message": "one"}));
    let m2 = send_ok(&mut a, json!({"message": "two"}));
    let e1 = send_ok(&mut a, json!({"edit": m1, "message": "uno"}));
    let r2 = send_ok(&mut a, json!({"react": m2, "emoji": "🔥"}));
    let r1 = send_ok(&mut a, json!({"react": m1, "emoji": "🔥"}));
    let d2 = send_ok(&mut a, json!({"delete": m2}));
    send(&mut a, json!({"typing": true}));
    let cookie = format!("session={tb}");
    let mut b = try_open(&s, &format!("/ws?since={m0}"), &[("Cookie", &cookie)]).unwrap();
    let got: Vec<Value> = (0..5).map(|_| no_ts(next(&mut b))).collect();
    assert_eq!(
        got,
        [
            // The message as it is now; the deleted one and nothing of
            // its text come back, its deletion does.
            json!({"message": "uno", "author": "alice", "id": m1}),
            json!({"event": "edit", "target": m1, "message": "uno", "author": "alice", "id": e1}),
            json!({"event": "react", "target": m2, "emoji": "🔥", "username": "alice", "on": true, "id": r2}),
            json!({"event": "react", "target": m1, "emoji": "🔥", "username": "alice", "on": true, "id": r1}),
            json!({"event": "delete", "target": m2, "by": "alice", "id": d2}),
        ]
    );
    // Live from here, and no typing notice was stored to replay.
    let m3 = send_ok(&mut a, json!({"message": "live"}));
    assert_eq!(next(&mut b)["id"], m3);
}

/// Whether `needle` occurs in the file at `path` (absent file: no).
fn file_has(path: &std::path::Path, needle: &str) -> bool {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_deleted_text_is_gone_from_the_database_file() {
    let dir = Arc::new(TempDir::new());
    let mut s = Server::start_in(dir.clone(), &[]);
    let [(_, mut a), _, _] = three(&s);
    let kept = send_ok(&mut a, json!({"message": "kept-FROTZ-text"}));
    let m = send_ok(&mut a, json!({"message": "secret-XYZZY-text"}));
    send_ok(&mut a, json!({"edit": m, "message": "edited-PLUGH-text"}));
    send_ok(&mut a, json!({"react": kept, "emoji": "👍"}));
    send_ok(&mut a, json!({"delete": m}));
    // A clean shutdown checkpoints the log into the file and truncates it.
    s.signal("-TERM");
    assert_eq!(s.wait_exit(), Some(0));
    let db = dir.0.join("chat.db");
    let wal = dir.0.join("chat.db-wal");
    assert!(file_has(&db, "kept-FROTZ-text"), "the check reads the file");
    for gone in ["secret-XYZZY-text", "edited-PLUGH-text"] {
        assert!(!file_has(&db, gone), "{gone} in the database file");
        assert!(!file_has(&wal, gone), "{gone} in the WAL");
    }
}

#[test]
fn typing_is_relayed_to_the_others_throttled_and_never_stored() {
    let s = Server::start(&[]);
    let [(ta, mut a), (tb, mut b), (_, mut c)] = three(&s);
    let before = s.get("/api/rooms", Some(&ta)).json();
    assert_eq!(
        send(&mut a, json!({"typing": true})),
        json!({"status": true})
    );
    assert_eq!(
        next(&mut b),
        json!({"event": "typing", "username": "alice"})
    );
    assert_eq!(
        next(&mut c),
        json!({"event": "typing", "username": "alice"})
    );
    // Again at once: acked, dropped.
    assert_eq!(
        send(&mut a, json!({"typing": true})),
        json!({"status": true})
    );
    // To one user: only they hear it, with `to` naming them.
    send(&mut a, json!({"typing": true, "to": "bob"}));
    assert_eq!(
        next(&mut b),
        json!({"event": "typing", "username": "alice", "to": "bob"})
    );
    // In a room: its members only.
    assert_eq!(post(&s, &tb, "/api/rooms", r#"{"name":"den"}"#).status, 201);
    send(&mut b, json!({"typing": true, "room": "den"}));
    assert_eq!(
        send_err(&mut a, json!({"typing": true, "room": "den"})),
        "not_a_member"
    );
    let g = send_ok(&mut a, json!({"message": "now"}));
    assert_eq!(next(&mut c)["id"], g, "carol heard no second notice");
    assert_eq!(next(&mut b)["id"], g);
    // Nothing was stored: no id, no event, general's last id is the message's.
    let after = s.get("/api/rooms", Some(&ta)).json();
    let general = |v: &Value| v["rooms"][0]["last_id"].as_i64().unwrap();
    assert_eq!(general(&after), g);
    assert!(general(&before) < g);
    // Three seconds on, alice's notice goes out again (polled, no sleep).
    wait_for("a second notice", PATIENCE, || {
        send(&mut a, json!({"typing": true}));
        match b.next_within(Duration::from_millis(200)) {
            Some(util::ws::Got::Json(v)) => Some(v),
            _ => None,
        }
    });
}

#[test]
fn two_sockets_of_one_user_share_presence_messages_and_read_markers() {
    let s = Server::start(&["--sockets-per-user", "2"]);
    let (ta, tb) = (s.user("alice"), s.user("bob"));
    let mut b = open(&s, &tb);
    let mut a1 = open(&s, &ta);
    assert_eq!(b.raw_json(), util::ws::join("alice"));
    let mut a2 = open(&s, &ta);
    let cookie = format!("session={ta}");
    let third = try_open(&s, "/ws", &[("Cookie", &cookie)]).err().unwrap();
    assert_eq!(
        (third.status, third.error()),
        (409, "already_connected".into())
    );
    assert_eq!(util::ws::online(&s, &tb), ["bob", "alice"]);
    let me = s.get("/api/user/@me", Some(&ta)).json();
    assert_eq!(
        (me["sockets"].as_u64(), me["sockets_per_user"].as_u64()),
        (Some(2), Some(2))
    );
    // One's own messages reach one's other socket; bob heard no second join.
    let m = send_ok(&mut a1, json!({"message": "from a1"}));
    assert_eq!(b.raw_json()["id"], m);
    assert_eq!(a2.raw_json()["id"], m);
    let dm = send_ok(&mut b, json!({"message": "to alice", "to": "alice"}));
    assert_eq!(a1.raw_json()["id"], dm);
    assert_eq!(a2.raw_json()["id"], dm);
    let dm2 = send_ok(&mut a2, json!({"message": "back", "to": "bob"}));
    assert_eq!(a1.raw_json()["id"], dm2);
    assert_eq!(b.raw_json()["id"], dm2);
    // Read markers: the other socket follows; never back.
    let unread = |t: &str| s.get("/api/rooms", Some(t)).json()["rooms"][0]["unread"].clone();
    assert_eq!(unread(&ta), 1);
    assert_eq!(send(&mut a1, json!({"read": m})), json!({"status": true}));
    assert_eq!(a2.raw_json(), json!({"event": "read", "id": m}));
    assert_eq!(unread(&ta), 0);
    assert_eq!(unread(&tb), 1);
    send(&mut a2, json!({"read": dm, "with": "bob"}));
    assert_eq!(
        a1.raw_json(),
        json!({"event": "read", "id": dm, "with": "bob"})
    );
    send(&mut a2, json!({"read": m - 1}));
    let m2 = send_ok(&mut b, json!({"message": "later"}));
    assert_eq!(
        a1.raw_json()["id"],
        m2,
        "no read event for a marker going back"
    );
    // Leave after the last socket only.
    a1.ws.close(None).unwrap();
    let m3 = send_ok(&mut a2, json!({"message": "still here"}));
    assert_eq!(b.raw_json()["id"], m3, "no leave while a2 is open");
    assert_eq!(util::ws::online(&s, &tb), ["bob", "alice"]);
    a2.ws.close(None).unwrap();
    assert_eq!(b.raw_json(), util::ws::leave("alice"));
}

#[test]
fn unread_counts_follow_read_markers_across_a_restart() {
    let dir = Arc::new(TempDir::new());
    let s = Server::start_in(dir.clone(), &[]);
    let (ta, tb) = (s.user("alice"), s.user("bob"));
    let mut a = open(&s, &ta);
    assert_eq!(post(&s, &ta, "/api/rooms", r#"{"name":"den"}"#).status, 201);
    assert_eq!(post(&s, &tb, "/api/rooms/den/join", "").status, 200);
    let ids: Vec<i64> = (0..5)
        .map(|i| send_ok(&mut a, json!({"message": format!("m{i}"), "room": "den"})))
        .collect();
    send_ok(&mut a, json!({"message": "general"}));
    let unread = |s: &Server, t: &str| {
        let v = s.get("/api/rooms", Some(t)).json();
        let rooms = v["rooms"].as_array().unwrap().clone();
        rooms
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_string(),
                    r["unread"].as_i64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(unread(&s, &tb), [("general".into(), 1), ("den".into(), 5)]);
    // A newcomer's marker starts at their join: nothing before is unread.
    let tc = s.user("carol");
    assert_eq!(post(&s, &tc, "/api/rooms/den/join", "").status, 200);
    assert_eq!(unread(&s, &tc), [("general".into(), 1), ("den".into(), 0)]);
    let mut b = open(&s, &tb);
    send(&mut b, json!({"read": ids[1], "room": "den"}));
    assert_eq!(unread(&s, &tb), [("general".into(), 1), ("den".into(), 3)]);
    drop((a, b));
    drop(s);
    let s = Server::start_in(dir, &[]);
    assert_eq!(unread(&s, &tb), [("general".into(), 1), ("den".into(), 3)]);
    assert_eq!(unread(&s, &tc), [("general".into(), 1), ("den".into(), 0)]);
}

#[test]
fn last_seen_is_absent_while_online_then_kept_across_a_restart() {
    let dir = Arc::new(TempDir::new());
    let mut s = Server::start_in(dir.clone(), &[]);
    let (ta, tb) = (s.user("alice"), s.user("bob"));
    let info = |s: &Server| s.get("/api/user/alice", Some(&tb)).json();
    assert_eq!(info(&s), json!({"username": "alice", "online": false}));
    let mut a = open(&s, &ta);
    wait_for("online", PATIENCE, || {
        (info(&s)["online"] == true).then_some(())
    });
    assert_eq!(info(&s), json!({"username": "alice", "online": true}));
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    a.ws.close(None).unwrap();
    let seen = wait_for("offline", PATIENCE, || info(&s)["last_seen"].as_i64());
    assert!(seen >= before - 1000, "{seen} vs {before}");
    assert_eq!(info(&s)["online"], false);
    s.signal("-TERM");
    assert_eq!(s.wait_exit(), Some(0));
    let s = Server::start_in(dir, &[]);
    assert_eq!(info(&s)["last_seen"], seen);
}
