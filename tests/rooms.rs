//! Rooms and direct messages (SPEC §8, §9): every endpoint and error code,
//! private rooms invisible to outsiders, room and direct frames reaching
//! exactly the right sockets, resume across conversations in id order, a
//! restart keeping rooms, members and history, and general unchanged for
//! a Part 1 client.
//!
//! "Never reaches a non-member" is shown without waiting: after the room
//! frame, a general message goes out, and the outsider's next frame must
//! be that one (a socket's frames arrive in order).

mod util;

use serde_json::{Value, json};
use std::sync::Arc;
use util::chat::{history, next, post, send, send_ok};
use util::ws::{Client, open, try_open};
use util::{Resp, Server, TempDir};
fn get(s: &Server, token: &str, path: &str) -> Resp {
    s.get(path, Some(token))
}

/// Creates a room; asserts 201.
fn create(s: &Server, token: &str, name: &str, private: bool) {
    let body = json!({ "name": name, "private": private }).to_string();
    let r = post(s, token, "/api/rooms", &body);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json(), json!({ "name": name.to_ascii_lowercase() }));
}

/// A room action; asserts 200 `{}`.
fn act(s: &Server, token: &str, room: &str, action: &str, body: &str) {
    let r = post(s, token, &format!("/api/rooms/{room}/{action}"), body);
    assert_eq!(r.status, 200, "{action} {room}: {}", r.body);
    assert_eq!(r.json(), json!({}));
}

/// The status and error code of a response.
fn err(r: Resp) -> (u16, String) {
    (r.status, r.error())
}

/// The `last_id` of `room` in `GET /api/rooms`.
fn last_id(s: &Server, token: &str, room: &str) -> i64 {
    let rooms = get(s, token, "/api/rooms").json();
    let list = rooms["rooms"].as_array().unwrap();
    let found = list.iter().find(|r| r["name"] == room).expect("listed");
    found["last_id"].as_i64().unwrap()
}

/// The room names of `GET /api/rooms`.
fn room_names(s: &Server, token: &str) -> Vec<String> {
    let r = get(s, token, "/api/rooms");
    assert_eq!(r.status, 200, "{}", r.body);
    let rooms = r.json()["rooms"].as_array().unwrap().clone();
    rooms
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

/// A barrier: `from` says `text` in general, and `to`'s next frame must
/// be exactly that message (nothing queued before it).
fn barrier(from: &mut Client, to: &mut Client, text: &str) {
    send_ok(from, json!({ "message": text }));
    let v = next(to);
    assert_eq!(v["message"], text, "expected the barrier, got {v}");
    assert!(v.get("room").is_none() && v.get("to").is_none(), "{v}");
}

#[test]
fn room_endpoints_answer_with_the_spec_shapes_and_codes() {
    let s = Server::start(&[]);
    let (ann, ben) = (s.user("ann"), s.user("ben"));
    create(&s, &ann, "Rust", false);
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        (
            "POST",
            "/api/rooms",
            r#"{"name":"rust"}"#,
            409,
            "room_exists",
        ),
        (
            "POST",
            "/api/rooms",
            r#"{"name":"GENERAL"}"#,
            409,
            "room_exists",
        ),
        (
            "POST",
            "/api/rooms",
            r#"{"name":"no space"}"#,
            400,
            "invalid_room_name",
        ),
        (
            "POST",
            "/api/rooms",
            r#"{"name":"ümlaut"}"#,
            400,
            "invalid_room_name",
        ),
        (
            "POST",
            "/api/rooms",
            &format!(r#"{{"name":"{}"}}"#, "a".repeat(33)),
            400,
            "invalid_room_name",
        ),
        (
            "POST",
            "/api/rooms",
            r#"{"name":""}"#,
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/api/rooms",
            r#"{"name":"x","private":"yes"}"#,
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/api/rooms",
            r#"{"name":"x","owner":"ben"}"#,
            422,
            "invalid_request",
        ),
        ("POST", "/api/rooms/nope/join", "", 404, "room_not_found"),
        (
            "POST",
            "/api/rooms/rust/join",
            r#"{"x":1}"#,
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/api/rooms/rust/leave",
            "nope",
            422,
            "invalid_request",
        ),
        ("POST", "/api/rooms/nope/leave", "", 404, "room_not_found"),
        ("POST", "/api/rooms/general/leave", "", 400, "cannot_leave"),
        (
            "POST",
            "/api/rooms/nope/invite",
            r#"{"username":"ann"}"#,
            404,
            "room_not_found",
        ),
        (
            "POST",
            "/api/rooms/rust/invite",
            r#"{"username":"nobody"}"#,
            404,
            "user_not_found",
        ),
        (
            "POST",
            "/api/rooms/rust/invite",
            r#"{"user":"ann"}"#,
            422,
            "invalid_request",
        ),
        ("GET", "/api/rooms/nope/members", "", 404, "room_not_found"),
        ("GET", "/api/rooms/rust/join", "", 405, "method_not_allowed"),
        (
            "POST",
            "/api/rooms/rust/members",
            "",
            405,
            "method_not_allowed",
        ),
        ("DELETE", "/api/rooms", "", 405, "method_not_allowed"),
        ("GET", "/api/rooms/rust/kick", "", 405, "method_not_allowed"),
        ("GET", "/api/rooms/rust/ban", "", 404, "not_found"),
    ];
    let cookie = format!("session={ben}");
    for &(method, path, body, status, code) in cases {
        let r = s.request(method, path, &[("Cookie", &cookie)], body);
        assert_eq!(
            (r.status, r.error().as_str()),
            (status, code),
            "{method} {path} {body}"
        );
    }
    let r = s.request("GET", "/api/rooms/rust/join", &[("Cookie", &cookie)], "");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = post(&s, &ben, "/api/rooms", r#"{"name":""}"#);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("\"name\""),
        "{}",
        r.body
    );
    // A plain member of a public room may not invite.
    act(&s, &ben, "rust", "join", "");
    let r = post(&s, &ben, "/api/rooms/rust/invite", r#"{"username":"ann"}"#);
    assert_eq!(err(r), (200, String::new()), "ann is a member already");
    let cy = s.user("cy");
    let r = post(&s, &ben, "/api/rooms/rust/invite", r#"{"username":"cy"}"#);
    assert_eq!(err(r), (403, "forbidden".into()));
    // Unauthenticated.
    assert_eq!(
        err(s.get("/api/rooms", None)),
        (422, "missing_session".into())
    );
    assert_eq!(
        err(s.post("/api/rooms/rust/join", "")),
        (422, "missing_session".into())
    );
    assert_eq!(
        err(s.get("/api/rooms", Some("bogus"))),
        (401, "invalid_session".into())
    );
    // Joining twice, inviting a member, joining general: 200 and no change.
    act(&s, &ben, "rust", "join", "{}");
    act(&s, &ben, "general", "join", "");
    act(&s, &ann, "rust", "invite", r#"{"username":"cy"}"#);
    act(&s, &cy, "rust", "leave", "");
    act(&s, &cy, "rust", "leave", "");

    let raw = get(&s, &ben, "/api/rooms").body;
    assert!(
        raw.contains(r#"{"name":"general","private":false,"members":3,"joined":true,"role":"member","unread":0,"last_id":0}"#),
        "the spec's field order: {raw}"
    );
    let rooms = get(&s, &ben, "/api/rooms").json();
    assert_eq!(
        rooms,
        json!({"rooms": [
            {"name": "general", "private": false, "members": 3, "joined": true,
             "role": "member", "unread": 0, "last_id": 0},
            {"name": "rust", "private": false, "members": 2, "joined": true,
             "role": "member", "unread": 0, "last_id": rooms["rooms"][1]["last_id"]},
        ]})
    );
    assert!(rooms["rooms"][1]["last_id"].as_i64().unwrap() > 0);
    let rooms = get(&s, &cy, "/api/rooms").json();
    assert_eq!(rooms["rooms"][1]["joined"], false);
    assert_eq!(rooms["rooms"][1]["role"], Value::Null);
    let _c = open(&s, &ann);
    let members = get(&s, &cy, "/api/rooms/RUST/members");
    assert_eq!(
        members.json(),
        json!({"members": [
            {"username": "ann", "role": "owner", "online": true},
            {"username": "ben", "role": "member", "online": false},
        ]})
    );
    let general = get(&s, &cy, "/api/rooms/general/members").json();
    assert_eq!(general["members"].as_array().unwrap().len(), 3);
    let mut conn = s.connect();
    let head = util::raw("HEAD", "/api/rooms", &[("Cookie", &cookie)], "");
    std::io::Write::write_all(&mut conn, head.as_bytes()).unwrap();
    let r = util::read_response_to(&mut conn, true).expect("a response");
    assert_eq!((r.status, r.body.as_str()), (200, ""));
}

#[test]
fn a_private_room_does_not_exist_for_outsiders() {
    let s = Server::start(&[]);
    let (ann, ben) = (s.user("ann"), s.user("ben"));
    create(&s, &ann, "secret", true);
    assert_eq!(room_names(&s, &ann), ["general", "secret"]);
    assert_eq!(room_names(&s, &ben), ["general"]);
    let not_found = (404, "room_not_found".to_string());
    for action in ["join", "leave"] {
        let r = post(&s, &ben, &format!("/api/rooms/secret/{action}"), "");
        assert_eq!(err(r), not_found, "{action}");
    }
    let r = post(
        &s,
        &ben,
        "/api/rooms/secret/invite",
        r#"{"username":"ben"}"#,
    );
    assert_eq!(err(r), not_found);
    assert_eq!(err(get(&s, &ben, "/api/rooms/secret/members")), not_found);
    assert_eq!(err(get(&s, &ben, "/api/messages?room=secret")), not_found);
    let mut b = open(&s, &ben);
    let ack = send(&mut b, json!({"message": "hi", "room": "secret"}));
    assert_eq!(ack, json!({"status": false, "code": "room_not_found"}));

    // The owner invites: now ben sees it and is in it.
    let mut a = open(&s, &ann);
    act(&s, &ann, "secret", "invite", r#"{"username":"Ben"}"#);
    for c in [&mut a, &mut b] {
        let v = next(c);
        assert_eq!(
            (&v["event"], &v["room"], &v["username"]),
            (&json!("room_join"), &json!("secret"), &json!("ben")),
            "{v}"
        );
    }
    assert_eq!(room_names(&s, &ben), ["general", "secret"]);
    send_ok(&mut a, json!({"message": "psst", "room": "secret"}));
    assert_eq!(next(&mut b)["message"], "psst");
    assert_eq!(history(&s, &ben, "?room=secret").len(), 1);
}

#[test]
fn room_frames_reach_the_members_and_nobody_else() {
    let s = Server::start(&[]);
    let (ann, ben, cy) = (s.user("ann"), s.user("ben"), s.user("cy"));
    let (mut a, mut b, mut c) = (open(&s, &ann), open(&s, &ben), open(&s, &cy));
    create(&s, &ann, "rust", false);
    let v = next(&mut a);
    assert_eq!(
        (&v["event"], &v["username"]),
        (&json!("room_join"), &json!("ann"))
    );
    act(&s, &ben, "rust", "join", "");
    let join_a = next(&mut a);
    let join_b = next(&mut b);
    assert_eq!(join_a, join_b);
    let keys: Vec<&String> = join_a.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["event", "id", "room", "ts", "username"]);

    let id = send_ok(&mut a, json!({"message": "hello rust", "room": "Rust"}));
    let got = next(&mut b);
    assert_eq!(got["id"], id);
    assert!(got["ts"].as_i64().unwrap() > 0);
    assert_eq!(
        got,
        json!({"message": "hello rust", "author": "ann", "id": id, "ts": got["ts"], "room": "rust"})
    );
    barrier(&mut a, &mut c, "sync1");
    assert_eq!(next(&mut b)["message"], "sync1");

    let codes = [
        (json!({"message": "x", "room": "rust"}), "not_a_member"),
        (json!({"message": "x", "room": "nope"}), "room_not_found"),
        (
            json!({"message": "x", "room": "bad name!"}),
            "room_not_found",
        ),
        (json!({"message": "x", "to": "nobody"}), "user_not_found"),
        (
            json!({"message": "x", "room": "rust", "to": "ann"}),
            "invalid_message",
        ),
    ];
    for (frame, code) in codes {
        assert_eq!(
            send(&mut c, frame.clone()),
            json!({"status": false, "code": code}),
            "{frame}"
        );
    }

    // Leaving: both of them hear it, then ben gets no more of the room.
    act(&s, &ben, "rust", "leave", "");
    for client in [&mut a, &mut b] {
        let v = next(client);
        assert_eq!(
            (&v["event"], &v["username"]),
            (&json!("room_leave"), &json!("ben"))
        );
    }
    send_ok(&mut a, json!({"message": "only me", "room": "rust"}));
    barrier(&mut a, &mut b, "sync2");
    assert_eq!(next(&mut c)["message"], "sync2");
    let ack = send(&mut b, json!({"message": "x", "room": "rust"}));
    assert_eq!(ack, json!({"status": false, "code": "not_a_member"}));
    // "general" spelled out is general: no room field, everyone gets it.
    send_ok(&mut b, json!({"message": "to all", "room": "general"}));
    for client in [&mut a, &mut c] {
        let v = next(client);
        assert_eq!(v["message"], "to all");
        assert!(v.get("room").is_none(), "{v}");
    }
}

#[test]
fn direct_messages_reach_the_two_sides_only() {
    let s = Server::start(&[]);
    let (ann, ben, cy) = (s.user("ann"), s.user("ben"), s.user("cy"));
    let (mut a, mut b, mut c) = (open(&s, &ann), open(&s, &ben), open(&s, &cy));
    let id = send_ok(&mut a, json!({"message": "psst", "to": "BEN"}));
    let got = next(&mut b);
    assert_eq!(
        got,
        json!({"message": "psst", "author": "ann", "id": id, "ts": got["ts"], "to": "ben"})
    );
    barrier(&mut a, &mut c, "sync");
    let reply = send_ok(&mut b, json!({"message": "yes?", "to": "ann"}));
    assert_eq!(next(&mut a)["to"], "ann");
    // Offline recipients find it in the history.
    drop(c);
    send_ok(&mut a, json!({"message": "later", "to": "cy"}));
    let ann_view = history(&s, &ann, "?with=ben");
    assert_eq!(ann_view, [(id, "psst".into()), (reply, "yes?".into())]);
    assert_eq!(history(&s, &ben, "?with=ANN"), ann_view);
    assert_eq!(history(&s, &cy, "?with=ann"), [(reply + 1, "later".into())]);
    assert_eq!(history(&s, &cy, "?with=ben"), []);
    let page = get(&s, &ben, "/api/messages?with=ann").json();
    assert_eq!(page["messages"][0]["to"], "ben");
    assert_eq!(page["messages"][1]["to"], "ann");
    let r = get(&s, &ann, "/api/messages?with=nobody");
    assert_eq!(err(r), (404, "user_not_found".into()));
    let r = get(&s, &ann, "/api/messages?with=ben&room=rust");
    assert_eq!(err(r), (422, "invalid_request".into()));
    // General's history holds none of it.
    assert_eq!(history(&s, &ann, ""), [(id + 1, "sync".into())]);
}

#[test]
fn a_part_1_client_sees_general_exactly_as_before() {
    let s = Server::start(&[]);
    let (ann, ben) = (s.user("ann"), s.user("ben"));
    let (mut a, mut b) = (open(&s, &ann), open(&s, &ben));
    assert_eq!(a.json(), util::ws::join("ben"));
    create(&s, &ann, "rust", false);
    assert_eq!(next(&mut a)["event"], "room_join");
    a.say("hi");
    assert_eq!(b.json(), util::ws::msg("hi", "ann"), "no room field");
    assert_eq!(a.json(), util::ws::ack());
    let page = get(&s, &ben, "/api/messages").json();
    let keys: Vec<&String> = page["messages"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["author", "id", "message", "ts"]);
}

#[test]
fn resume_replays_two_rooms_and_a_direct_conversation_in_id_order() {
    let s = Server::start(&[]);
    let (ann, ben, cy) = (s.user("ann"), s.user("ben"), s.user("cy"));
    let mut a = open(&s, &ann);
    create(&s, &ann, "one", false);
    create(&s, &ann, "two", true);
    create(&s, &ann, "other", false);
    act(&s, &ben, "one", "join", "");
    let mut b = open(&s, &ben);
    let since = send_ok(&mut b, json!({"message": "before"}));
    drop(b);
    let mut want = Vec::new();
    want.push(send_ok(&mut a, json!({"message": "g1"})));
    want.push(send_ok(&mut a, json!({"message": "r1", "room": "one"})));
    send_ok(&mut a, json!({"message": "not ben's", "room": "other"}));
    want.push(send_ok(&mut a, json!({"message": "d1", "to": "ben"})));
    send_ok(&mut a, json!({"message": "to cy", "to": "cy"}));
    act(&s, &ann, "two", "invite", r#"{"username":"ben"}"#);
    want.push(last_id(&s, &ben, "two"));
    want.push(send_ok(&mut a, json!({"message": "r2", "room": "two"})));
    let _ = &cy;

    let cookie = format!("session={ben}");
    let mut b = try_open(&s, &format!("/ws?since={since}"), &[("Cookie", &cookie)]).unwrap();
    let mut got = Vec::new();
    for _ in 0..want.len() {
        got.push(next(&mut b));
    }
    let ids: Vec<i64> = got.iter().map(|v| v["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, want, "{got:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(got[1]["room"], "one");
    assert_eq!(got[2]["to"], "ben");
    assert_eq!(
        (&got[3]["event"], &got[3]["room"]),
        (&json!("room_join"), &json!("two"))
    );
    assert_eq!(got[4]["room"], "two");
    // Then live, with no gap and no duplicate.
    let live = send_ok(&mut a, json!({"message": "live", "room": "two"}));
    let v = next(&mut b);
    assert_eq!(
        (v["id"].as_i64(), &v["message"]),
        (Some(live), &json!("live"))
    );
}

#[test]
fn a_restart_keeps_rooms_members_and_history() {
    let dir = Arc::new(TempDir::new());
    let mut s = Server::start_in(dir.clone(), &[]);
    let (ann, ben) = (s.user("ann"), s.user("ben"));
    create(&s, &ann, "rust", false);
    create(&s, &ann, "secret", true);
    act(&s, &ann, "secret", "invite", r#"{"username":"ben"}"#);
    let mut a = open(&s, &ann);
    let r1 = send_ok(&mut a, json!({"message": "r1", "room": "rust"}));
    let s1 = send_ok(&mut a, json!({"message": "s1", "room": "secret"}));
    let d1 = send_ok(&mut a, json!({"message": "d1", "to": "ben"}));
    drop(a);
    let before = get(&s, &ben, "/api/rooms").json();
    s.signal("-TERM");
    assert_eq!(s.wait_exit(), Some(0));

    // The sessions are stored too: the same cookies work.
    let s = Server::start_in(dir, &[]);
    assert_eq!(get(&s, &ben, "/api/rooms").json(), before);
    assert_eq!(history(&s, &ann, "?room=rust"), [(r1, "r1".into())]);
    assert_eq!(history(&s, &ben, "?room=secret"), [(s1, "s1".into())]);
    assert_eq!(history(&s, &ben, "?with=ann"), [(d1, "d1".into())]);
    let members = get(&s, &ben, "/api/rooms/secret/members").json();
    assert_eq!(members["members"][0]["role"], "owner");
    // The membership index is back: ben's socket gets the room's frames.
    let (mut a, mut b) = (open(&s, &ann), open(&s, &ben));
    let id = send_ok(&mut a, json!({"message": "again", "room": "secret"}));
    assert_eq!(id, d1 + 1, "ids continue");
    assert_eq!(next(&mut b)["message"], "again");
}

#[test]
fn resume_skips_what_the_user_may_not_see_and_resyncs_past_the_scan() {
    // At most 2 replayed, and at most 16 × 2 events of all rooms read.
    let s = Server::start(&["--resume-max", "2", "--chat-burst", "0"]);
    let (ann, ben) = (s.user("ann"), s.user("ben"));
    let mut a = open(&s, &ann);
    create(&s, &ann, "busy", false);
    create(&s, &ann, "left", false);
    act(&s, &ben, "left", "join", "");
    act(&s, &ben, "left", "leave", "");
    let since = last_id(&s, &ann, "left");
    // Ben left "left": what is said there now is not his to replay.
    send_ok(&mut a, json!({"message": "after", "room": "left"}));
    for i in 0..20 {
        send_ok(
            &mut a,
            json!({"message": format!("busy {i}"), "room": "busy"}),
        );
    }
    let d = send_ok(&mut a, json!({"message": "d", "to": "ben"}));
    let cookie = format!("session={ben}");
    let path = format!("/ws?since={since}");
    let mut b = try_open(&s, &path, &[("Cookie", &cookie)]).unwrap();
    let v = next(&mut b);
    assert_eq!(
        (v["id"].as_i64(), &v["to"]),
        (Some(d), &json!("ben")),
        "{v}"
    );
    drop(b);
    // Past 32 events of all conversations, a resync, even though none of
    // them is ben's.
    for i in 0..20 {
        send_ok(
            &mut a,
            json!({"message": format!("more {i}"), "room": "busy"}),
        );
    }
    let mut b = try_open(&s, &path, &[("Cookie", &cookie)]).unwrap();
    assert_eq!(next(&mut b), json!({"event": "resync"}));
}

/// A room made in a turn whose commit failed (a full disk) does not
/// exist: the creator got 503, nobody got its `room_join`, and the
/// chat's memory follows the rolled-back store.
#[test]
fn a_room_change_on_a_failing_disk_is_503_and_leaves_no_trace() {
    let s = Server::start_on_small_disk(Arc::new(TempDir::new()), 256 * 1024, &[]);
    let ann = s.user("ann");
    let mut a = open(&s, &ann);
    let refused = (0..5000)
        .map(|i| format!("room-{i:05}-{}", "x".repeat(20)))
        .find(|name| {
            let body = json!({ "name": name }).to_string();
            let r = post(&s, &ann, "/api/rooms", &body);
            if r.status == 201 {
                return false;
            }
            assert_eq!(err(r), (503, "storage_unavailable".into()));
            true
        })
        .expect("the disk fills up");
    let made = room_names(&s, &ann).len() - 1;
    assert!(made > 0, "no room made before the disk filled");
    assert!(!room_names(&s, &ann).contains(&refused));
    // Every room_join that reached the socket is of a room that exists.
    a.send_text(&json!({"message": "x", "room": refused}).to_string());
    loop {
        let v = a.raw_json();
        if v.get("status").is_some() {
            assert_eq!(v, json!({"status": false, "code": "room_not_found"}));
            break;
        }
        assert_ne!(v["room"], json!(refused), "{v}");
    }
}

/// Regression: the owner of a private room could leave it, after which
/// nobody could ever enter it again (invisible to all, nobody to invite)
/// and its name stayed taken for good. The owner stays; a member invited
/// in may leave, and a public room's owner may leave too (anyone can join).
#[test]
fn the_owner_of_a_private_room_cannot_strand_it_by_leaving() {
    let s = Server::start(&[]);
    let (ann, ben) = (s.user("ann"), s.user("ben"));
    create(&s, &ann, "secret", true);
    let r = post(&s, &ann, "/api/rooms/secret/leave", "");
    assert_eq!(err(r), (400, "cannot_leave".to_string()));
    assert_eq!(room_names(&s, &ann), ["general", "secret"]);
    act(&s, &ann, "secret", "invite", r#"{"username":"ben"}"#);
    act(&s, &ben, "secret", "leave", "");
    assert_eq!(room_names(&s, &ben), ["general"]);
    create(&s, &ann, "open", false);
    act(&s, &ann, "open", "leave", "");
    act(&s, &ben, "open", "join", "");
}
