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
