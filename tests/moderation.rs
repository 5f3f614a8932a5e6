//! Moderation and administration (SPEC §12) against the real server:
//! every admin endpoint and its role check (403 for everybody else, 404
//! for what stays hidden), the effect of each action on live sockets and
//! sessions, the audit row of each, the registration policy, room
//! moderation with its events, and a restart keeping bans, mutes, roles,
//! invites and the audit.
//!
//! "Never reaches" is shown without waiting, as in the room tests: after
//! the frame that must not arrive, a general message goes out, and the
//! next frame the socket sees must be that one.

mod util;

use serde_json::{Value, json};
use std::sync::Arc;
use util::chat::{history, next, post, send, send_ok};
use util::ws::{Client, open};
use util::{Resp, Server, TempDir};

/// A server whose `root` is an admin (`--admins root`), and root's session.
fn with_admin(extra: &[&str]) -> (Server, String) {
    let mut args = vec!["--admins", "root"];
    args.extend_from_slice(extra);
    let s = Server::start(&args);
    let root = s.user("root");
    (s, root)
}

fn get(s: &Server, token: &str, path: &str) -> Resp {
    s.get(path, Some(token))
}

/// `POST /api/admin/users/{name}/{action}` as `token`.
fn admin(s: &Server, token: &str, name: &str, action: &str, body: &str) -> Resp {
    post(s, token, &format!("/api/admin/users/{name}/{action}"), body)
}

/// The status and error code of a response.
fn err(r: Resp) -> (u16, String) {
    (r.status, r.error())
}

/// The newest audit rows, newest first.
fn audit(s: &Server, token: &str) -> Vec<Value> {
    let r = get(s, token, "/api/admin/audit");
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["audit"].as_array().unwrap().clone()
}

/// Asserts the newest audit row is `action` by `by` on `target`.
fn audited(s: &Server, token: &str, by: &str, action: &str, target: Option<&str>) -> Value {
    let row = audit(s, token).into_iter().next().expect("an audit row");
    assert_eq!(
        (&row["by"], &row["action"], &row["target"]),
        (&json!(by), &json!(action), &json!(target)),
        "{row}"
    );
    row
}

/// The line of `name` in the admin's user list.
fn user_line(s: &Server, token: &str, name: &str) -> Value {
    let r = get(s, token, &format!("/api/admin/users?prefix={name}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let users = r.json()["users"].as_array().unwrap().clone();
    users
        .into_iter()
        .find(|u| u["username"] == name)
        .unwrap_or_else(|| panic!("{name} not listed"))
}

/// Sends a general message from `c` and asserts that `others` see it
/// next: nothing else reached them before it.
fn marker(c: &mut Client, others: &mut [&mut Client], text: &str) {
    send_ok(c, json!({ "message": text }));
    for o in others.iter_mut() {
        assert_eq!(next(o)["message"], text);
    }
}

#[test]
fn every_admin_endpoint_is_403_for_a_non_admin() {
    let (s, _root) = with_admin(&[]);
    let ben = s.user("ben");
    s.register("cat");
    let cookie = format!("session={ben}");
    let cases = [
        ("GET", "/api/admin/users", ""),
        ("GET", "/api/admin/audit", ""),
        ("POST", "/api/admin/invites", "{}"),
        ("POST", "/api/admin/users/cat/ban", "{}"),
        ("POST", "/api/admin/users/cat/unban", "{}"),
        ("POST", "/api/admin/users/cat/mute", r#"{"duration":"1h"}"#),
        ("POST", "/api/admin/users/cat/unmute", "{}"),
        ("POST", "/api/admin/users/cat/reset-key", "{}"),
        ("POST", "/api/admin/users/cat/purge", "{}"),
        ("POST", "/api/admin/users/cat/role", r#"{"role":"admin"}"#),
        ("DELETE", "/api/admin/users/cat", ""),
        // Not even whether a user exists leaks.
        ("POST", "/api/admin/users/nobody/ban", "{}"),
    ];
    for (method, path, body) in cases {
        let r = s.request(method, path, &[("Cookie", &cookie)], body);
        assert_eq!(err(r), (403, "forbidden".into()), "{method} {path}");
    }
    // Without a session: the usual authentication errors, first.
    assert_eq!(
        err(s.get("/api/admin/users", None)),
        (422, "missing_session".into())
    );
    let r = s.get("/api/admin/users", Some("x"));
    assert_eq!(err(r), (401, "invalid_session".into()));
    let r = s.request("GET", "/api/admin/users/cat", &[("Cookie", &cookie)], "");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("DELETE"));
    // ben is still a plain user after all that.
    assert_eq!(get(&s, &ben, "/api/online").status, 200);
}

#[test]
fn the_admin_lists_users_with_their_state() {
    let (s, root) = with_admin(&[]);
    let ben = s.user("ben");
    for name in ["bea", "bob", "carl"] {
        s.register(name);
    }
    let _b = open(&s, &ben);
    let r = get(&s, &root, "/api/admin/users?prefix=b&limit=2");
    assert_eq!(r.status, 200, "{}", r.body);
    let names: Vec<Value> = r.json()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].clone())
        .collect();
    assert_eq!(names, [json!("bea"), json!("ben")]);
    let r = get(&s, &root, "/api/admin/users?prefix=b&after=ben");
    let page: Vec<Value> = r.json()["users"].as_array().unwrap().clone();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["username"], "bob");
    let line = user_line(&s, &root, "ben");
    assert_eq!(line["online"], true);
    assert_eq!(line["role"], "user");
    assert_eq!(line["banned"], false);
    assert_eq!(line["muted_until"], Value::Null);
    assert!(
        line["created"].as_i64().unwrap() > 1_600_000_000_000,
        "{line}"
    );
    assert_eq!(user_line(&s, &root, "root")["role"], "admin");
    let r = get(&s, &root, "/api/admin/users?limit=0");
    assert_eq!(err(r), (422, "invalid_request".into()));
    let r = get(&s, &root, "/api/admin/users?sort=name");
    assert_eq!(err(r), (422, "invalid_request".into()));
}

#[test]
fn a_ban_closes_the_sockets_with_1008_ends_sessions_and_refuses_login() {
    let (s, root) = with_admin(&[]);
    let ann = s.user("ann");
    let ben_key = s.register("ben");
    let (ben1, ben2) = (s.login(&ben_key), s.login(&ben_key));
    let mut a = open(&s, &ann);
    let mut b = open(&s, &ben1);
    assert_eq!(
        next_presence(&mut a),
        json!({"event": "join", "username": "ben"})
    );

    let r = admin(&s, &root, "ben", "ban", r#"{"reason":"spam"}"#);
    assert_eq!((r.status, r.json()), (200, json!({})));
    assert_eq!(b.close_code(), (1008, "banned".into()));
    assert_eq!(
        next_presence(&mut a),
        json!({"event": "leave", "username": "ben"})
    );
    for token in [&ben1, &ben2] {
        assert_eq!(
            err(get(&s, token, "/api/online")),
            (401, "invalid_session".into())
        );
    }
    let r = s.post("/api/login", &format!(r#"{{"key":"{ben_key}"}}"#));
    assert_eq!(err(r), (403, "banned".into()));
    // The key as a bearer credential is refused the same way.
    let bearer = format!("Bearer {ben_key}");
    let r = s.request("GET", "/api/online", &[("Authorization", &bearer)], "");
    assert_eq!(err(r), (403, "banned".into()));
    let row = audited(&s, &root, "root", "ban", Some("ben"));
    assert_eq!(row["reason"], "spam");
    assert_eq!(user_line(&s, &root, "ben")["banned"], true);

    let r = admin(&s, &root, "ben", "unban", "");
    assert_eq!(r.status, 200, "{}", r.body);
    audited(&s, &root, "root", "unban", Some("ben"));
    let again = s.login(&ben_key);
    let _b = open(&s, &again);
    assert_eq!(
        next_presence(&mut a),
        json!({"event": "join", "username": "ben"})
    );
    let r = admin(&s, &root, "nobody", "ban", "{}");
    assert_eq!(err(r), (404, "user_not_found".into()));
    let r = admin(&s, &root, "root", "ban", "{}");
    assert_eq!(err(r), (409, "target_is_admin".into()));
    let r = admin(&s, &root, "ben", "ban", r#"{"why":"x"}"#);
    assert_eq!(err(r), (422, "invalid_request".into()));
}

/// The next presence frame (`join`/`leave`).
fn next_presence(c: &mut Client) -> Value {
    loop {
        let v = c.raw_json();
        if matches!(v["event"].as_str(), Some("join" | "leave")) {
            return v;
        }
    }
}

#[test]
fn a_muted_user_gets_muted_acks_and_nothing_goes_out() {
    let (s, root) = with_admin(&[]);
    let (ann, ben) = (s.user("ann"), s.user("ben"));
    let mut a = open(&s, &ann);
    let mut b = open(&s, &ben);
    let r = admin(
        &s,
        &root,
        "ben",
        "mute",
        r#"{"duration":"10m","reason":"flood"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let until = r.json()["until"].as_i64().unwrap();
    assert!(until > 1_600_000_000_000);
    let ack = send(&mut b, json!({"message": "spam"}));
    assert_eq!(
        ack,
        json!({"status": false, "code": "muted", "until": until})
    );
    let ack = send(&mut b, json!({"message": "dm", "to": "ann"}));
    assert_eq!(ack["code"], "muted");
    // Over HTTP the same refusal, with the same end.
    let r = post(&s, &ben, "/api/messages", r#"{"message":"spam"}"#);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        (&r.json()["error"], &r.json()["until"]),
        (&json!("muted"), &json!(until))
    );
    let r = admin(&s, &root, "ben", "unmute", "");
    assert_eq!(r.status, 200, "{}", r.body);
    audited(&s, &root, "root", "unmute", Some("ben"));
    // ann's next frame is ben's first message after the unmute: nothing
    // of the muted ones went out.
    marker(&mut b, &mut [&mut a], "after");
    assert_eq!(audit(&s, &root)[1]["action"], "mute");
    assert_eq!(
        user_line(&s, &root, "ben")["muted_until"],
        Value::Null,
        "unmuted"
    );
    let bad = admin(&s, &root, "ben", "mute", r#"{"duration":"10 minutes"}"#);
    assert_eq!(err(bad), (400, "invalid_duration".into()));
    let bad = admin(&s, &root, "ben", "mute", "{}");
    assert_eq!(err(bad), (422, "invalid_request".into()));
}

#[test]
fn a_reset_key_stops_the_old_key_and_every_session() {
    let (s, root) = with_admin(&[]);
    let old = s.register("ben");
    let (t1, t2) = (s.login(&old), s.login(&old));
    let mut b = open(&s, &t1);
    let r = admin(&s, &root, "ben", "reset-key", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let new = r.json()["key"].as_str().unwrap().to_string();
    assert_eq!(new.len(), 64);
    assert_eq!(b.close_code(), (1000, "logged out".into()));
    for t in [&t1, &t2] {
        assert_eq!(get(&s, t, "/api/online").status, 401);
    }
    let r = s.post("/api/login", &format!(r#"{{"key":"{old}"}}"#));
    assert_eq!(err(r), (401, "invalid_key".into()));
    let fresh = s.login(&new);
    assert_eq!(get(&s, &fresh, "/api/user/@me").json()["username"], "ben");
    audited(&s, &root, "root", "reset_key", Some("ben"));
}

#[test]
fn a_user_rotates_their_own_key_and_keeps_only_the_calling_session() {
    let (s, root) = with_admin(&[]);
    let old = s.register("ben");
    let (here, there) = (s.login(&old), s.login(&old));
    let mut other = open(&s, &there);
    let r = post(&s, &here, "/api/user/@me/key", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let new = r.json()["key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(other.close_code(), (1000, "logged out".into()));
    assert_eq!(get(&s, &here, "/api/online").status, 200);
    assert_eq!(get(&s, &there, "/api/online").status, 401);
    let r = s.post("/api/login", &format!(r#"{{"key":"{old}"}}"#));
    assert_eq!(r.status, 401);
    s.login(&new);
    let r = post(&s, &here, "/api/user/%40me/key", "");
    assert_eq!(r.status, 200, "percent-encoded @me");
    let r = s.request("GET", "/api/user/@me/key", &[], "");
    assert_eq!(r.status, 405);
    audited(&s, &root, "ben", "rotate_key", Some("ben"));
}

#[test]
fn a_purge_sends_delete_events_and_erases_the_history() {
    let (s, root) = with_admin(&[]);
    let (ann, ben) = (s.user("ann"), s.user("ben"));
    let mut a = open(&s, &ann);
    let mut b = open(&s, &ben);
    let m1 = send_ok(&mut b, json!({"message": "buy pills"}));
    let m2 = send_ok(&mut b, json!({"message": "cheap pills"}));
    // ann's ack comes after ben's two messages, which `send_ok` skips.
    let keep = send_ok(&mut a, json!({"message": "ann stays"}));
    assert_eq!(next(&mut b)["id"], keep);
    let r = admin(&s, &root, "ben", "purge", r#"{"reason":"spam"}"#);
    assert_eq!((r.status, r.json()), (200, json!({"deleted": 2})));
    for target in [m1, m2] {
        let v = next(&mut a);
        assert_eq!(
            (&v["event"], &v["target"], &v["by"]),
            (&json!("delete"), &json!(target), &json!("root")),
            "{v}"
        );
    }
    let page = get(&s, &ann, "/api/messages").json()["messages"].clone();
    let page = page.as_array().unwrap();
    let deleted: Vec<bool> = page.iter().map(|m| m["deleted"] == true).collect();
    assert_eq!(deleted, [true, true, false]);
    assert_eq!(history(&s, &ann, "?limit=1"), [(keep, "ann stays".into())]);
    let row = audited(&s, &root, "root", "purge", Some("ben"));
    assert_eq!(row["detail"], "2 messages deleted");
}

#[test]
fn deleting_a_user_purges_closes_and_frees_the_name() {
    let (s, root) = with_admin(&[]);
    let ann = s.user("ann");
    let key = s.register("ben");
    let ben = s.login(&key);
    let mut a = open(&s, &ann);
    let mut b = open(&s, &ben);
    let m = send_ok(&mut b, json!({"message": "bye"}));
    assert_eq!(next(&mut a)["id"], m);
    let r = s.request(
        "DELETE",
        "/api/admin/users/ben",
        &[("Cookie", &format!("session={root}"))],
        "",
    );
    assert_eq!((r.status, r.json()), (200, json!({"deleted": 1})));
    assert_eq!(b.close_code(), (1008, "account deleted".into()));
    assert_eq!(next(&mut a)["event"], "delete");
    assert_eq!(get(&s, &ben, "/api/online").status, 401);
    let r = s.post("/api/login", &format!(r#"{{"key":"{key}"}}"#));
    assert_eq!(r.status, 401);
    assert_eq!(get(&s, &ann, "/api/user/ben").status, 404);
    let again = s.user("Ben");
    assert_eq!(get(&s, &again, "/api/user/@me").json()["username"], "Ben");
    audited(&s, &root, "root", "delete", Some("ben"));
    let listed = get(&s, &root, "/api/admin/users?prefix=b").json()["users"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}

#[test]
fn granted_admins_can_administer_and_configured_ones_stay() {
    let (s, root) = with_admin(&[]);
    let ben = s.user("ben");
    assert_eq!(get(&s, &ben, "/api/admin/users").status, 403);
    let r = admin(&s, &root, "ben", "role", r#"{"role":"admin"}"#);
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"username": "ben", "role": "admin"}))
    );
    assert_eq!(get(&s, &ben, "/api/admin/users").status, 200);
    // The web client learns it from @me (others never see it).
    assert_eq!(get(&s, &ben, "/api/user/@me").json()["admin"], true);
    assert_eq!(get(&s, &root, "/api/user/ben").json().get("admin"), None);
    let r = admin(&s, &ben, "root", "role", r#"{"role":"user"}"#);
    assert_eq!(err(r), (409, "configured_admin".into()));
    let r = admin(&s, &root, "ben", "role", r#"{"role":"user"}"#);
    assert_eq!(r.status, 200);
    assert_eq!(get(&s, &ben, "/api/admin/users").status, 403);
    assert_eq!(get(&s, &ben, "/api/user/@me").json().get("admin"), None);
    let r = admin(&s, &root, "ben", "role", r#"{"role":"god"}"#);
    assert_eq!(err(r), (422, "invalid_request".into()));
    let row = audited(&s, &root, "root", "role", Some("ben"));
    assert_eq!(row["detail"], "user");
}

#[test]
fn invite_registration_takes_a_live_code() {
    // The names in --admins register without one: the first admin needs
    // no invite from anybody.
    let (s, root) = with_admin(&["--registration", "invite"]);
    let r = s.post("/api/register", r#"{"username":"ben"}"#);
    assert_eq!(err(r), (400, "invalid_invite".into()));
    let r = s.post("/api/register", r#"{"username":"ben","invite":"nope"}"#);
    assert_eq!(err(r), (400, "invalid_invite".into()));
    let r = post(
        &s,
        &root,
        "/api/admin/invites",
        r#"{"uses":2,"expires":"1d"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let code = r.json()["code"].as_str().unwrap().to_string();
    let with = |name: &str| format!(r#"{{"username":"{name}","invite":"{code}"}}"#);
    assert_eq!(s.post("/api/register", &with("ben")).status, 201);
    // A taken name does not spend a use.
    let r = s.post("/api/register", &with("BEN"));
    assert_eq!(err(r), (409, "username_taken".into()));
    assert_eq!(s.post("/api/register", &with("cat")).status, 201);
    let r = s.post("/api/register", &with("dan"));
    assert_eq!(err(r), (400, "invalid_invite".into()), "spent");
    let r = post(&s, &root, "/api/admin/invites", r#"{"expires":"soon"}"#);
    assert_eq!(err(r), (400, "invalid_duration".into()));
    let r = post(&s, &root, "/api/admin/invites", r#"{"uses":0}"#);
    assert_eq!(err(r), (422, "invalid_request".into()));
    let row = audited(&s, &root, "root", "invite", None);
    assert_eq!(
        row["detail"].as_str().unwrap().split(',').next(),
        Some("2 uses")
    );
}

#[test]
fn closed_registration_refuses_everyone() {
    let s = Server::start(&["--registration", "closed"]);
    for body in [r#"{"username":"ben"}"#, "garbage"] {
        let r = s.post("/api/register", body);
        assert_eq!(err(r), (403, "registration_closed".into()), "{body}");
    }
}

/// Creates a room as `token`.
fn create(s: &Server, token: &str, name: &str, private: bool) {
    let body = json!({ "name": name, "private": private }).to_string();
    assert_eq!(post(s, token, "/api/rooms", &body).status, 201);
}

/// A room action as `token`; the response.
fn room(s: &Server, token: &str, name: &str, action: &str, body: Value) -> Resp {
    post(
        s,
        token,
        &format!("/api/rooms/{name}/{action}"),
        &body.to_string(),
    )
}

#[test]
fn a_kick_is_an_event_to_the_room_and_the_kicked_user_hears_no_more() {
    let (s, root) = with_admin(&[]);
    let (ann, ben, cat) = (s.user("ann"), s.user("ben"), s.user("cat"));
    create(&s, &ann, "rust", false);
    for t in [&ben, &cat] {
        assert_eq!(room(&s, t, "rust", "join", json!({})).status, 200);
    }
    let mut a = open(&s, &ann);
    let mut b = open(&s, &ben);
    let mut c = open(&s, &cat);
    // Only the owner (or a moderator, or an admin) kicks.
    let r = room(&s, &cat, "rust", "kick", json!({"username": "ben"}));
    assert_eq!(err(r), (403, "forbidden".into()));
    let r = room(
        &s,
        &ann,
        "rust",
        "kick",
        json!({"username": "ben", "reason": "rude"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json()["id"].as_i64().unwrap();
    for sock in [&mut a, &mut b, &mut c] {
        let v = next(sock);
        assert_eq!(
            v,
            json!({"event": "kick", "room": "rust", "username": "ben", "by": "ann",
                   "reason": "rude", "id": id, "ts": v["ts"]})
        );
    }
    send_ok(&mut a, json!({"message": "after", "room": "rust"}));
    assert_eq!(next(&mut c)["message"], "after");
    marker(&mut a, &mut [&mut b, &mut c], "general");
    let r = send(&mut b, json!({"message": "x", "room": "rust"}));
    assert_eq!(r["code"], "not_a_member");
    let r = room(&s, &ben, "rust", "join", json!({}));
    assert_eq!(err(r), (403, "kicked".into()));
    // An invitation brings them back.
    assert_eq!(
        room(&s, &ann, "rust", "invite", json!({"username": "ben"})).status,
        200
    );
    assert_eq!(next(&mut b)["event"], "room_join");
    let row = audited(&s, &root, "ann", "kick", Some("ben"));
    assert_eq!(
        (&row["room"], &row["reason"]),
        (&json!("rust"), &json!("rude"))
    );
    let r = room(&s, &root, "general", "kick", json!({"username": "ben"}));
    assert_eq!(err(r), (400, "cannot_kick".into()));
    let r = room(&s, &ann, "rust", "kick", json!({"username": "ann"}));
    assert_eq!(
        err(r),
        (403, "forbidden".into()),
        "not oneself, not the owner"
    );
}

#[test]
fn a_room_mute_stops_messages_to_that_room_only_and_moderators_are_the_owners_call() {
    let (s, root) = with_admin(&[]);
    let (ann, ben, cat) = (s.user("ann"), s.user("ben"), s.user("cat"));
    create(&s, &ann, "rust", false);
    create(&s, &ann, "secret", true);
    for t in [&ben, &cat] {
        room(&s, t, "rust", "join", json!({}));
    }
    let mut a = open(&s, &ann);
    let mut b = open(&s, &ben);
    let r = room(&s, &ben, "rust", "moderators", json!({"username": "cat"}));
    assert_eq!(err(r), (403, "forbidden".into()));
    let r = room(&s, &ann, "rust", "moderators", json!({"username": "cat"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let members = get(&s, &ann, "/api/rooms/rust/members").json();
    let cat_role = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["username"] == "cat")
        .map(|m| m["role"].clone());
    assert_eq!(cat_role, Some(json!("moderator")));
    // The moderator mutes ben in rust.
    let r = room(
        &s,
        &cat,
        "rust",
        "mute",
        json!({"username": "ben", "duration": "1h", "reason": "caps"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let until = r.json()["until"].as_i64().unwrap();
    for sock in [&mut a, &mut b] {
        let v = next(sock);
        assert_eq!(
            (&v["event"], &v["username"], &v["by"], &v["until"]),
            (&json!("mute"), &json!("ben"), &json!("cat"), &json!(until))
        );
    }
    let ack = send(&mut b, json!({"message": "LOUD", "room": "rust"}));
    assert_eq!(
        ack,
        json!({"status": false, "code": "muted", "until": until})
    );
    marker(&mut b, &mut [&mut a], "general is fine");
    // A private room stays hidden from those outside it.
    let r = room(&s, &ben, "secret", "kick", json!({"username": "ann"}));
    assert_eq!(err(r), (404, "room_not_found".into()));
    let r = room(
        &s,
        &cat,
        "rust",
        "mute",
        json!({"username": "ben", "duration": "x"}),
    );
    assert_eq!(err(r), (400, "invalid_duration".into()));
    let r = room(
        &s,
        &cat,
        "rust",
        "mute",
        json!({"username": "zed", "duration": "1m"}),
    );
    assert_eq!(err(r), (404, "user_not_found".into()));
    audited(&s, &root, "cat", "room_mute", Some("ben"));
}

#[test]
fn resume_replays_kick_and_mute_events() {
    let (s, _root) = with_admin(&[]);
    let (ann, ben) = (s.user("ann"), s.user("ben"));
    create(&s, &ann, "rust", false);
    room(&s, &ben, "rust", "join", json!({}));
    let mut a = open(&s, &ann);
    let since = send_ok(&mut a, json!({"message": "start", "room": "rust"}));
    drop(a);
    let r = room(
        &s,
        &ann,
        "rust",
        "mute",
        json!({"username": "ben", "duration": "1h"}),
    );
    assert_eq!(r.status, 200);
    let r = room(
        &s,
        &ann,
        "rust",
        "kick",
        json!({"username": "ben", "reason": "bye"}),
    );
    assert_eq!(r.status, 200);
    let cookie = format!("session={ann}");
    let path = format!("/ws?since={since}");
    let mut a = util::ws::try_open(&s, &path, &[("Cookie", &cookie)]).unwrap();
    let (v1, v2) = (next(&mut a), next(&mut a));
    assert_eq!((&v1["event"], &v1["by"]), (&json!("mute"), &json!("ann")));
    assert!(v1["until"].as_i64().is_some(), "{v1}");
    assert_eq!(
        (&v2["event"], &v2["reason"]),
        (&json!("kick"), &json!("bye"))
    );
    // ben sees his own kick on resume, and nothing of the room after it.
    let cookie = format!("session={ben}");
    let mut b = util::ws::try_open(&s, &path, &[("Cookie", &cookie)]).unwrap();
    assert_eq!(next(&mut b)["event"], "kick");
}

#[test]
fn an_admin_may_delete_any_message() {
    let (s, root) = with_admin(&[]);
    let ben = s.user("ben");
    let mut b = open(&s, &ben);
    let mut r = open(&s, &root);
    let m = send_ok(&mut b, json!({"message": "rude"}));
    assert_eq!(next(&mut r)["id"], m);
    let ack = send(&mut r, json!({ "delete": m }));
    assert_eq!(ack["status"], true, "{ack}");
    assert_eq!(next(&mut b)["event"], "delete");
}

#[test]
fn a_restart_keeps_bans_mutes_roles_invites_and_the_audit() {
    let dir = Arc::new(TempDir::new());
    let mut s = Server::start_in(dir.clone(), &["--admins", "root"]);
    let root = s.user("root");
    let ann = s.user("ann");
    let ben_key = s.register("ben");
    let dan = s.user("dan");
    create(&s, &ann, "rust", false);
    room(&s, &dan, "rust", "join", json!({}));
    let steps = [
        admin(&s, &root, "ben", "ban", r#"{"reason":"spam"}"#),
        admin(&s, &root, "ann", "mute", r#"{"duration":"1d"}"#),
        room(
            &s,
            &ann,
            "rust",
            "mute",
            json!({"username": "dan", "duration": "1d"}),
        ),
        admin(&s, &root, "dan", "role", r#"{"role":"admin"}"#),
        post(&s, &root, "/api/admin/invites", r#"{"uses":1}"#),
    ];
    assert!(steps.iter().all(|r| r.status < 300), "{steps:?}");
    let code = steps[4].json()["code"].as_str().unwrap().to_string();
    let before = audit(&s, &root);
    assert_eq!(before.len(), 5);
    s.signal("-TERM");
    assert_eq!(s.wait_exit(), Some(0));

    let s = Server::start_in(dir, &["--admins", "root", "--registration", "invite"]);
    let r = s.post("/api/login", &format!(r#"{{"key":"{ben_key}"}}"#));
    assert_eq!(err(r), (403, "banned".into()));
    // Sessions are stored: the same cookies work after the restart.
    let mut a = open(&s, &ann);
    assert_eq!(send(&mut a, json!({"message": "hi"}))["code"], "muted");
    let mut d = open(&s, &dan);
    let ack = send(&mut d, json!({"message": "hi", "room": "rust"}));
    assert_eq!(ack["code"], "muted");
    send_ok(&mut d, json!({"message": "general is fine"}));
    assert_eq!(
        get(&s, &dan, "/api/admin/users").status,
        200,
        "still an admin"
    );
    let body = format!(r#"{{"username":"eve","invite":"{code}"}}"#);
    assert_eq!(s.post("/api/register", &body).status, 201);
    assert_eq!(audit(&s, &root), before);
    let line = user_line(&s, &root, "ben");
    assert_eq!(line["banned"], true);
}
