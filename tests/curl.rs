//! curl without a WebSocket (SPEC §12 bearer keys, §13): the user's key in
//! `Authorization: Bearer`, `POST /api/messages`, and `GET /api/search`.

mod util;

use serde_json::{Value, json};
use util::chat::next;
use util::ws::{self, Client};
use util::{Resp, Server};

/// `Authorization: Bearer <key>`.
fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// `GET path` with the bearer `key`.
fn get_as(s: &Server, key: &str, path: &str) -> Resp {
    s.request("GET", path, &[("Authorization", &bearer(key))], "")
}

/// `POST path` with `body` and the bearer `key`.
fn post_as(s: &Server, key: &str, path: &str, body: &str) -> Resp {
    s.request("POST", path, &[("Authorization", &bearer(key))], body)
}

/// Opens `/ws` with the bearer `key`.
fn open_as(s: &Server, key: &str) -> Client {
    ws::try_open(s, "/ws", &[("Authorization", &bearer(key))])
        .unwrap_or_else(|r| panic!("refused: {r:?}"))
}

/// A key that belongs to nobody.
const WRONG_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn bearer_key_works_on_every_kind_of_authenticated_endpoint() {
    let s = Server::start(&[]);
    let key = s.register("alice");
    let me = get_as(&s, &key, "/api/user/@me");
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["username"], "alice");
    // No cookie is set: there is no session to name.
    assert_eq!(me.header("set-cookie"), None);
    let online = get_as(&s, &key, "/api/online");
    assert_eq!(online.json(), json!({"online_clients": []}));
    let created = post_as(&s, &key, "/api/rooms", r#"{"name":"rust"}"#);
    assert_eq!(created.status, 201, "{}", created.body);
    let rooms = get_as(&s, &key, "/api/rooms").json();
    let rust = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "rust");
    assert_eq!(rust.unwrap()["role"], "owner", "{rooms}");
    let history = get_as(&s, &key, "/api/messages?room=rust");
    assert_eq!(history.json(), json!({"messages": []}));
    // The scheme is matched without regard to case; spaces around the key
    // are not part of it.
    let lower = s.request(
        "GET",
        "/api/user/@me",
        &[("Authorization", &format!("bearer   {key} "))],
        "",
    );
    assert_eq!(lower.status, 200, "{}", lower.body);
}

#[test]
fn a_wrong_bearer_key_is_401_invalid_key_whatever_cookie_comes_with_it() {
    let s = Server::start(&[]);
    let token = s.user("alice");
    let cookie = format!("session={token}");
    for value in [
        bearer(WRONG_KEY),
        "Bearer".into(),
        "Bearer not-a-key".into(),
    ] {
        let r = s.request(
            "GET",
            "/api/online",
            &[("Authorization", &value), ("Cookie", &cookie)],
            "",
        );
        assert_eq!(r.status, 401, "{value}: {}", r.body);
        assert_eq!(r.error(), "invalid_key", "{value}");
        assert!(r.json()["detail"].as_str().unwrap().contains("Bearer"));
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
        // The cookie session is not the bearer's to end.
        assert_eq!(r.header("set-cookie"), None);
    }
    // Another scheme (a proxy's Basic) leaves the request to the cookie.
    let basic = s.request(
        "GET",
        "/api/online",
        &[("Authorization", "Basic YTpi"), ("Cookie", &cookie)],
        "",
    );
    assert_eq!(basic.status, 200, "{}", basic.body);
    assert_eq!(s.get("/api/online", Some(&token)).status, 200);
}

#[test]
fn wrong_bearer_keys_count_toward_the_failed_login_limit() {
    let s = Server::start(&["--login-fail-limit", "3"]);
    let key = s.register("alice");
    // One failed login and two wrong bearer keys: the limit is shared.
    let login = s.post("/api/login", &format!(r#"{{"key":"{WRONG_KEY}"}}"#));
    assert_eq!(login.status, 401);
    for _ in 0..2 {
        assert_eq!(get_as(&s, WRONG_KEY, "/api/online").status, 401);
    }
    // Over the limit: refused before the key is looked at, a right one too.
    for k in [WRONG_KEY, key.as_str()] {
        let r = get_as(&s, k, "/api/user/@me");
        assert_eq!(r.status, 429, "{}", r.body);
        assert_eq!(r.error(), "rate_limited");
        let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=600).contains(&secs), "{secs}");
    }
    let r = ws::try_open(&s, "/ws", &[("Authorization", &bearer(&key))]).err();
    assert_eq!(r.map(|r| r.status), Some(429));
    let login = s.post("/api/login", &format!(r#"{{"key":"{key}"}}"#));
    assert_eq!(login.status, 429);
}

#[test]
fn right_bearer_keys_do_not_count_toward_the_limit() {
    let s = Server::start(&["--login-fail-limit", "2"]);
    let key = s.register("alice");
    for _ in 0..10 {
        assert_eq!(get_as(&s, &key, "/api/online").status, 200);
    }
    assert_eq!(get_as(&s, WRONG_KEY, "/api/online").status, 401);
    assert_eq!(get_as(&s, &key, "/api/online").status, 200);
}

#[test]
fn a_bearer_socket_chats_like_a_cookie_socket() {
    let s = Server::start(&[]);
    let ann = s.user("ann");
    let ben_key = s.register("ben");
    let mut a = ws::open(&s, &ann);
    let mut b = open_as(&s, &ben_key);
    assert_eq!(a.json(), ws::join("ben"));
    assert_eq!(ws::online(&s, &ann), ["ann", "ben"]);
    b.say("hi from a bot");
    assert_eq!(b.json(), ws::ack());
    assert_eq!(a.json(), ws::msg("hi from a bot", "ben"));
    // The one-socket rule counts it.
    let again = ws::try_open(&s, "/ws", &[("Authorization", &bearer(&ben_key))]).err();
    assert_eq!(again.map(|r| r.error()), Some("already_connected".into()));
    drop(b);
    assert_eq!(next_presence(&mut a), ws::leave("ben"));
    // Its session ended with it: a new bearer socket opens.
    let mut b = open_as(&s, &ben_key);
    assert_eq!(a.json(), ws::join("ben"));
    b.say("back");
    assert_eq!(b.json(), ws::ack());
}

/// The next frame, which must be presence.
fn next_presence(c: &mut Client) -> Value {
    let v = c.raw_json();
    assert!(v["event"] == "join" || v["event"] == "leave", "{v}");
    v
}

#[test]
fn bearer_requests_and_sockets_never_end_cookie_sessions() {
    // One session per user: any session a bearer request started would
    // end the cookie's.
    let s = Server::start(&["--sessions-per-user", "1", "--sockets-per-user", "2"]);
    let key = s.register("alice");
    let token = s.login(&key);
    for _ in 0..3 {
        assert_eq!(get_as(&s, &key, "/api/user/@me").status, 200);
        let mut sock = open_as(&s, &key);
        sock.say("x");
        assert_eq!(sock.json(), ws::ack());
    }
    assert_eq!(s.get("/api/user/@me", Some(&token)).status, 200);
    let mut c = ws::open(&s, &token);
    let mut b = open_as(&s, &key);
    b.say("from the bearer socket");
    assert_eq!(b.json(), ws::ack());
    assert_eq!(next(&mut c)["message"], "from the bearer socket");
    // A new login ends the idle cookie session (the cap), not the sockets.
    drop(c);
    let b_token = s.login(&key);
    assert_eq!(s.get("/api/user/@me", Some(&b_token)).status, 200);
    b.say("still here");
    assert_eq!(b.json(), ws::ack());
}

/// `POST /api/messages` with `body` as the holder of `key`.
fn post_message(s: &Server, key: &str, body: Value) -> Resp {
    post_as(s, key, "/api/messages", &body.to_string())
}

/// Posts `body` and returns the id of its 201.
fn posted(s: &Server, key: &str, body: Value) -> i64 {
    let r = post_message(s, key, body);
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_i64().expect("an id");
    assert_eq!(r.json(), json!({ "id": id }));
    id
}

/// The frame without `id` and `ts`, which differ between messages.
fn shape(mut v: Value) -> Value {
    let obj = v.as_object_mut().unwrap();
    assert!(obj.remove("id").unwrap().as_i64().unwrap() > 0);
    assert!(obj.remove("ts").unwrap().as_i64().unwrap() > 1_600_000_000_000);
    v
}

#[test]
fn a_posted_message_reaches_every_socket_as_the_same_frame_a_socket_sends() {
    let s = Server::start(&[]);
    let ann = s.user("ann");
    let ben_key = s.register("ben");
    let ben = s.login(&ben_key);
    let mut a = ws::open(&s, &ann);
    let mut b = ws::open(&s, &ben);
    assert_eq!(a.json(), ws::join("ben"));
    // From ben's socket, as a reference.
    b.say("same");
    let acked = b.raw_json()["id"].as_i64().unwrap();
    let by_socket = a.raw_json();
    assert_eq!(by_socket["id"].as_i64(), Some(acked));
    // Over HTTP: the same frame, and ben's own socket gets it too (it did
    // not come on that socket).
    let id = posted(&s, &ben_key, json!({"message": "same"}));
    assert_eq!(id, acked + 1);
    let by_post = a.raw_json();
    assert_eq!(by_post["id"].as_i64(), Some(id));
    assert_eq!(shape(by_post.clone()), shape(by_socket));
    assert_eq!(b.raw_json(), by_post);
    // Stored: in the history page, in order.
    assert_eq!(
        util::chat::history(&s, &ann, ""),
        [(acked, "same".to_string()), (id, "same".to_string())]
    );
    // With a cookie as well as a bearer key.
    let r = util::chat::post(&s, &ann, "/api/messages", r#"{"message":"by cookie"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(a.json(), ws::msg("by cookie", "ann"));
    assert_eq!(b.json(), ws::msg("by cookie", "ann"));
}

#[test]
fn posted_messages_go_to_rooms_and_direct_conversations() {
    let s = Server::start(&[]);
    let (ann_key, ben_key, cy_key) = (s.register("ann"), s.register("ben"), s.register("cy"));
    let mut b = open_as(&s, &ben_key);
    let mut c = open_as(&s, &cy_key);
    assert_eq!(b.json(), ws::join("cy"));
    assert_eq!(
        post_as(&s, &ann_key, "/api/rooms", r#"{"name":"rust"}"#).status,
        201
    );
    assert_eq!(
        post_as(&s, &ben_key, "/api/rooms/rust/join", "").status,
        200
    );
    let private = r#"{"name":"attic","private":true}"#;
    assert_eq!(post_as(&s, &ann_key, "/api/rooms", private).status, 201);
    // The membership events first.
    assert_eq!(next(&mut b)["event"], "room_join");
    let id = posted(&s, &ann_key, json!({"message": "in rust", "room": "rust"}));
    let got = next(&mut b);
    assert_eq!(
        (got["id"].as_i64(), &got["room"]),
        (Some(id), &json!("rust"))
    );
    let id = posted(&s, &ann_key, json!({"message": "psst", "to": "cy"}));
    let got = next(&mut c);
    assert_eq!(
        (got["id"].as_i64(), &got["to"], &got["author"]),
        (Some(id), &json!("cy"), &json!("ann"))
    );
    // Not for the room's outsiders; the direct message not for ben.
    let got = b.next_within(std::time::Duration::from_millis(200));
    assert!(got.is_none(), "{got:?}");
    let refusals = [
        (
            json!({"message": "x", "room": "rust"}),
            &cy_key,
            403,
            "not_a_member",
        ),
        (
            json!({"message": "x", "room": "attic"}),
            &cy_key,
            404,
            "room_not_found",
        ),
        (
            json!({"message": "x", "room": "nope"}),
            &cy_key,
            404,
            "room_not_found",
        ),
        (
            json!({"message": "x", "to": "nobody"}),
            &cy_key,
            404,
            "user_not_found",
        ),
    ];
    for (body, key, status, code) in refusals {
        let r = post_message(&s, key, body.clone());
        assert_eq!((r.status, r.error()), (status, code.to_string()), "{body}");
    }
}

#[test]
fn a_post_that_is_not_a_message_gets_the_error_ack_code() {
    let s = Server::start(&[]);
    let key = s.register("ann");
    let long = "é".repeat(301);
    let cases: &[(&str, u16, &str)] = &[
        ("", 400, "invalid_json"),
        ("{", 400, "invalid_json"),
        ("{\"message\": NaN}", 400, "invalid_json"),
        ("[\"hi\"]", 400, "invalid_message"),
        ("{\"message\": \"\"}", 400, "invalid_message"),
        ("{\"message\": \" \\n\"}", 400, "invalid_message"),
        ("{\"message\": 5}", 400, "invalid_message"),
        ("{\"message\": \"x\", \"extra\": 1}", 400, "invalid_message"),
        (
            "{\"message\": \"x\", \"room\": \"a\", \"to\": \"b\"}",
            400,
            "invalid_message",
        ),
        ("{\"edit\": 1, \"message\": \"x\"}", 400, "invalid_message"),
        ("{\"typing\": true}", 400, "invalid_message"),
    ];
    for (body, status, code) in cases {
        let r = post_as(&s, &key, "/api/messages", body);
        assert_eq!((r.status, r.error()), (*status, code.to_string()), "{body}");
        assert!(r.json()["detail"].is_string(), "{body}");
    }
    let r = post_message(&s, &key, json!({ "message": long }));
    assert_eq!((r.status, r.error()), (400, "message_too_long".into()));
    // 300 scalar values pass whatever their bytes.
    posted(&s, &key, json!({ "message": "😀".repeat(300) }));
    // Not JSON at all: bytes that are not UTF-8.
    let mut raw = s.connect();
    let head = format!(
        "POST /api/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Length: 2\r\n\r\n"
    );
    std::io::Write::write_all(&mut raw, head.as_bytes()).unwrap();
    std::io::Write::write_all(&mut raw, b"\xff\xfe").unwrap();
    let r = util::read_response(&mut raw).unwrap();
    assert_eq!((r.status, r.error()), (400, "invalid_json".into()));
    // Authentication first, as everywhere.
    let r = s.post("/api/messages", r#"{"message":"x"}"#);
    assert_eq!((r.status, r.error()), (422, "missing_session".into()));
    let r = post_message(&s, WRONG_KEY, json!({"message": "x"}));
    assert_eq!((r.status, r.error()), (401, "invalid_key".into()));
    // Other methods.
    let r = s.request("DELETE", "/api/messages", &[], "");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
}

#[test]
fn posted_messages_are_rate_limited_per_user() {
    let s = Server::start(&["--chat-burst", "3", "--chat-rate", "1"]);
    let key = s.register("ann");
    let token = s.login(&key);
    for i in 0..3 {
        posted(&s, &key, json!({ "message": format!("m{i}") }));
    }
    let r = post_message(&s, &key, json!({"message": "one too many"}));
    assert_eq!((r.status, r.error()), (429, "rate_limited".into()));
    assert_eq!(r.header("retry-after"), Some("1"));
    // The bucket is the user's, whatever the credentials.
    let r = util::chat::post(&s, &token, "/api/messages", r#"{"message":"x"}"#);
    assert_eq!(r.status, 429);
    // A socket has its own.
    let mut c = ws::open(&s, &token);
    c.say("from the socket");
    assert_eq!(c.json(), ws::ack());
    // The refused ones were not stored.
    let texts: Vec<String> = util::chat::history(&s, &token, "")
        .into_iter()
        .map(|m| m.1)
        .collect();
    assert_eq!(texts, ["m0", "m1", "m2", "from the socket"]);
    // It refills.
    util::wait_for("a token", util::PATIENCE, || {
        (post_message(&s, &key, json!({"message": "later"})).status == 201).then_some(())
    });
}

#[test]
fn a_resent_client_id_gets_the_first_id_and_is_not_sent_again() {
    let s = Server::start(&[]);
    let ann = s.user("ann");
    let ben_key = s.register("ben");
    let ben = s.login(&ben_key);
    let mut a = ws::open(&s, &ann);
    let mut b = ws::open(&s, &ben);
    assert_eq!(a.json(), ws::join("ben"));
    let body = json!({"message": "once", "client_id": "c-1"});
    let id = posted(&s, &ben_key, body.clone());
    assert_eq!(posted(&s, &ben_key, body.clone()), id);
    // The same client_id from ben's socket: the same message.
    b.send_text(&body.to_string());
    assert_eq!(b.raw_json()["message"], "once");
    assert_eq!(b.raw_json(), json!({"status": true, "id": id}));
    // And the other way round: a socket's message, resent over HTTP.
    b.send_text(&json!({"message": "twice", "client_id": "c-2"}).to_string());
    assert_eq!(b.raw_json()["status"], true);
    let second = posted(
        &s,
        &ben_key,
        json!({"message": "twice", "client_id": "c-2"}),
    );
    assert_eq!(second, id + 1);
    // Ann saw each once; the next thing she sees is a new message.
    assert_eq!(a.raw_json()["id"].as_i64(), Some(id));
    assert_eq!(a.raw_json()["id"].as_i64(), Some(second));
    let third = posted(&s, &ben_key, json!({"message": "new", "client_id": "c-3"}));
    assert_eq!(a.raw_json()["id"].as_i64(), Some(third));
    // Client ids are per user.
    let cy_id = posted(&s, &s.register("cy"), body);
    assert_eq!(cy_id, third + 1);
}

#[test]
fn a_post_is_answered_only_after_its_commit() {
    // A disk that fills up (see tests/storage.rs): every 201 must name a
    // stored message, and a message whose commit failed reaches nobody.
    let small = 256 * 1024;
    let dir = std::sync::Arc::new(util::TempDir::new());
    let s = Server::start_on_small_disk(dir, small, &["--chat-burst", "0"]);
    let key = s.register("ann");
    let ben = s.user("ben");
    let mut b = ws::open(&s, &ben);
    let text = |i: usize| format!("{i:04} {}", "x".repeat(280));
    let mut stored = Vec::new();
    let failed = (0..2000)
        .find(|&i| {
            let r = post_message(
                &s,
                &key,
                json!({"message": text(i), "client_id": format!("c{i}")}),
            );
            if r.status == 503 {
                assert_eq!(r.json(), json!({"error": "storage_unavailable"}));
                return true;
            }
            assert_eq!(r.status, 201, "{}", r.body);
            let id = r.json()["id"].as_i64().unwrap();
            let got = b.raw_json();
            assert_eq!(
                (got["id"].as_i64(), &got["message"]),
                (Some(id), &json!(text(i)))
            );
            stored.push((id, text(i)));
            false
        })
        .expect("the disk fills up");
    assert!(failed > 0, "nothing was stored at all");
    // Nothing of the refused message went out.
    b.quiet(std::time::Duration::from_millis(200));
    // Its client_id was forgotten: the resend is not acked with an id
    // that does not exist (it fails again on the full disk).
    let again = json!({"message": text(failed), "client_id": format!("c{failed}")});
    assert_eq!(post_message(&s, &key, again).status, 503);
    // Exactly the acknowledged messages are there.
    let mut s = s;
    s.signal("-TERM");
    assert_eq!(s.wait_exit(), Some(0));
    let s = Server::start_in(s.dir.clone(), &[]);
    let token = s.login(&key);
    assert_eq!(util::chat::history(&s, &token, "?limit=200"), stored);
}

/// `GET /api/search{query}` as the holder of `key`: the body.
fn search(s: &Server, key: &str, query: &str) -> Value {
    let r = get_as(s, key, &format!("/api/search{query}"));
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    r.json()
}

/// The ids of a search's hits, newest first.
fn found(s: &Server, key: &str, query: &str) -> Vec<i64> {
    let body = search(s, key, query);
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn search_finds_only_what_the_user_may_see() {
    let s = Server::start(&[]);
    let (ann, ben, cy) = (s.register("ann"), s.register("ben"), s.register("cy"));
    let made = |key: &str, body: &str| assert_eq!(post_as(&s, key, "/api/rooms", body).status, 201);
    made(&ann, r#"{"name":"attic","private":true}"#);
    made(&ann, r#"{"name":"open"}"#);
    let general = posted(&s, &ann, json!({"message": "zebra in general"}));
    let attic = posted(
        &s,
        &ann,
        json!({"message": "zebra in the attic", "room": "attic"}),
    );
    let open = posted(
        &s,
        &ann,
        json!({"message": "zebra in the open", "room": "open"}),
    );
    let dm = posted(&s, &ann, json!({"message": "zebra for ben", "to": "ben"}));
    let own_dm = posted(&s, &cy, json!({"message": "zebra from cy", "to": "ann"}));
    // Ann sees all of it, newest first, as history entries.
    assert_eq!(
        found(&s, &ann, "?q=zebra"),
        [own_dm, dm, open, attic, general]
    );
    // Ben: general and his DM; not the private room, not a public room he
    // has not joined, not a DM between others.
    assert_eq!(found(&s, &ben, "?q=zebra"), [dm, general]);
    assert_eq!(found(&s, &cy, "?q=zebra"), [own_dm, general]);
    // Naming a private room he is not in: it does not exist for him.
    let r = get_as(&s, &ben, "/api/search?q=zebra&room=attic");
    assert_eq!((r.status, r.error()), (404, "room_not_found".into()));
    // A public room may be searched by name, as its history may be read.
    assert_eq!(found(&s, &ben, "?q=zebra&room=open"), [open]);
    assert_eq!(found(&s, &ben, "?q=zebra&room=general"), [general]);
    // Joined, it is part of his searches.
    assert_eq!(post_as(&s, &ben, "/api/rooms/open/join", "").status, 200);
    assert_eq!(found(&s, &ben, "?q=zebra"), [dm, open, general]);
    // A direct conversation, from either side.
    assert_eq!(found(&s, &ben, "?q=zebra&with=ann"), [dm]);
    assert_eq!(found(&s, &ann, "?q=zebra&with=ben"), [dm]);
    assert_eq!(found(&s, &cy, "?q=zebra&with=ben"), Vec::<i64>::new());
    let r = get_as(&s, &ben, "/api/search?q=zebra&with=nobody");
    assert_eq!((r.status, r.error()), (404, "user_not_found".into()));
    // The entries have the shape of a history page's.
    let body = search(&s, &ann, "?q=zebra&limit=5");
    let entries = body["messages"].as_array().unwrap();
    assert_eq!(
        entries[0],
        json!({"message": "zebra from cy", "author": "cy", "id": own_dm, "ts": entries[0]["ts"], "to": "ann"})
    );
    assert_eq!(entries[1]["to"], "ben");
    assert_eq!(entries[2]["room"], "open");
    assert!(entries[4].get("room").is_none() && entries[4].get("to").is_none());
    let history = get_as(&s, &ann, "/api/messages?with=ben").json();
    assert_eq!(history["messages"][0], entries[1]);
}

#[test]
fn search_pages_newest_first_with_before_and_limit() {
    let s = Server::start(&[]);
    let key = s.register("ann");
    let ids: Vec<i64> = (0..7)
        .map(|i| posted(&s, &key, json!({"message": format!("page {i} marker")})))
        .collect();
    posted(&s, &key, json!({"message": "unrelated"}));
    let first = search(&s, &key, "?q=marker&limit=3");
    let got: Vec<i64> = first["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, [ids[6], ids[5], ids[4]]);
    let next = first["next_before"].as_i64().unwrap();
    assert_eq!(
        found(&s, &key, &format!("?q=marker&limit=3&before={next}")),
        [ids[3], ids[2], ids[1]]
    );
    let last = search(&s, &key, &format!("?q=marker&limit=3&before={}", ids[1]));
    assert_eq!(last["messages"].as_array().unwrap().len(), 1);
    assert!(last.get("next_before").is_none(), "{last}");
    // Every word must occur; prefixes of three letters or more; case,
    // accents and punctuation do not matter.
    posted(
        &s,
        &key,
        json!({"message": "Crème brûlée, s'il vous plaît!"}),
    );
    assert_eq!(found(&s, &key, "?q=creme+BRULEE").len(), 1);
    assert_eq!(found(&s, &key, "?q=bru*").len(), 1);
    assert_eq!(found(&s, &key, "?q=br*").len(), 0);
    assert_eq!(found(&s, &key, "?q=creme%20marker").len(), 0);
    assert_eq!(found(&s, &key, "?q=s%27il").len(), 1);
}

#[test]
fn search_never_shows_a_deleted_message_and_finds_an_edit_by_its_new_text() {
    let s = Server::start(&[]);
    let key = s.register("ann");
    let token = s.login(&key);
    let mut c = ws::open(&s, &token);
    let id = util::chat::send_ok(&mut c, json!({"message": "original quokka"}));
    let other = util::chat::send_ok(&mut c, json!({"message": "another quokka"}));
    assert_eq!(found(&s, &key, "?q=quokka"), [other, id]);
    util::chat::send_ok(&mut c, json!({"edit": id, "message": "edited wombat"}));
    assert_eq!(found(&s, &key, "?q=quokka"), [other]);
    assert_eq!(found(&s, &key, "?q=original"), Vec::<i64>::new());
    let hit = search(&s, &key, "?q=wombat");
    assert_eq!(hit["messages"][0]["id"].as_i64(), Some(id));
    assert_eq!(hit["messages"][0]["message"], "edited wombat");
    assert!(hit["messages"][0]["edited"].as_i64().is_some());
    util::chat::send_ok(&mut c, json!({"delete": id}));
    assert_eq!(found(&s, &key, "?q=wombat"), Vec::<i64>::new());
    assert_eq!(found(&s, &key, "?q=quokka"), [other]);
    // Reactions come with a hit, as on a history page.
    util::chat::send_ok(&mut c, json!({"react": other, "emoji": "👍"}));
    let hit = search(&s, &key, "?q=quokka");
    assert_eq!(hit["messages"][0]["reactions"], json!({"👍": ["ann"]}));
    // And after a restart (the index is stored with the database).
    drop(c);
    let mut s = s;
    s.signal("-TERM");
    assert_eq!(s.wait_exit(), Some(0));
    let s = Server::start_in(s.dir.clone(), &[]);
    assert_eq!(found(&s, &key, "?q=quokka"), [other]);
    assert_eq!(found(&s, &key, "?q=wombat"), Vec::<i64>::new());
}

/// The index is updated off the loop, a few milliseconds after the
/// commit; a search must not show that: a message deleted is gone from the
/// very next search, one posted is found by it.
#[test]
fn search_right_after_a_change_never_sees_the_index_lag() {
    let s = Server::start(&["--chat-burst", "100"]);
    let key = s.register("ann");
    let token = s.login(&key);
    let mut c = ws::open(&s, &token);
    for round in 0..20 {
        let id = util::chat::send_ok(&mut c, json!({"message": format!("lynx{round}")}));
        assert_eq!(found(&s, &key, &format!("?q=lynx{round}")), [id]);
        util::chat::send_ok(&mut c, json!({"delete": id}));
        assert_eq!(
            found(&s, &key, &format!("?q=lynx{round}")),
            Vec::<i64>::new()
        );
    }
}

/// Messages stored while the index was behind (here: the index emptied
/// while the server was stopped) are found after a restart.
#[test]
fn the_index_catches_up_after_a_restart() {
    let s = Server::start(&["--chat-burst", "100"]);
    let key = s.register("ann");
    let token = s.login(&key);
    let mut c = ws::open(&s, &token);
    let mut ids: Vec<i64> = (0..30)
        .map(|_| util::chat::send_ok(&mut c, json!({"message": "ibex"})))
        .collect();
    drop(c);
    let mut s = s;
    s.signal("-TERM");
    assert_eq!(s.wait_exit(), Some(0));
    let db = rusqlite::Connection::open(s.dir.0.join("chat.db")).unwrap();
    db.execute_batch("DELETE FROM search_fts; UPDATE search_state SET indexed_to = 0")
        .unwrap();
    drop(db);
    let s = Server::start_in(s.dir.clone(), &[]);
    ids.reverse();
    assert_eq!(found(&s, &key, "?q=ibex&limit=100"), ids);
}

#[test]
fn search_refuses_what_it_cannot_search() {
    let s = Server::start(&[]);
    let key = s.register("ann");
    posted(&s, &key, json!({"message": "x"}));
    let cases: &[(&str, u16, &str)] = &[
        ("", 400, "empty_query"),
        ("?q=", 400, "empty_query"),
        ("?q=%22%28*", 400, "empty_query"),
        ("?q=a&limit=0", 422, "invalid_request"),
        ("?q=a&before=x", 422, "invalid_request"),
        ("?q=a&sort=new", 422, "invalid_request"),
        ("?q=a&room=a&with=b", 422, "invalid_request"),
    ];
    for (query, status, code) in cases {
        let r = get_as(&s, &key, &format!("/api/search{query}"));
        assert_eq!(
            (r.status, r.error()),
            (*status, code.to_string()),
            "{query}"
        );
        assert!(r.json()["detail"].is_string(), "{query}");
    }
    let many = "w+".repeat(17);
    let r = get_as(&s, &key, &format!("/api/search?q={many}"));
    assert_eq!((r.status, r.error()), (400, "query_too_long".into()));
    // What looks like FTS5 syntax is only words.
    for q in [
        "%22", "NEAR%28x", "x+OR+y", "-x", "x%3Ay", "%5Ex", "x*y*", "%00",
    ] {
        let r = get_as(&s, &key, &format!("/api/search?q={q}"));
        assert!(
            r.status == 200 || r.error() == "empty_query",
            "{q}: {}",
            r.body
        );
    }
    let r = s.get("/api/search?q=x", None);
    assert_eq!((r.status, r.error()), (422, "missing_session".into()));
    let r = get_as(&s, WRONG_KEY, "/api/search?q=x");
    assert_eq!(r.status, 401);
    let r = s.request(
        "POST",
        "/api/search?q=x",
        &[("Authorization", &bearer(&key))],
        "",
    );
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
}
