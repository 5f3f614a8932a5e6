//! `piratchat admin ...` as an operator runs it: the real binary against
//! a real server, the key from `PIRATCHAT_KEY` or `--key-file`, the exit
//! codes (0 done, 2 usage, 3 refused, 4 unreachable) and one-line errors.

mod util;

use serde_json::json;
use std::process::{Command, Output};
use util::chat::{post, send};
use util::ws::open;
use util::{Server, TempDir};

/// Runs `piratchat admin ARGS` against `s` with `key` in `PIRATCHAT_KEY`.
fn admin(s: &Server, key: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_piratchat"));
    cmd.arg("admin")
        .args(["--server", &format!("http://{}", s.addr)])
        .args(args)
        .env_remove("PIRATCHAT_KEY");
    if let Some(key) = key {
        cmd.env("PIRATCHAT_KEY", key);
    }
    cmd.output().expect("run piratchat admin")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Asserts exit 0 and returns stdout.
fn ok(o: Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    stdout(&o)
}

/// Asserts exit `code` with exactly one line on stderr; returns it.
fn fails(o: Output, code: i32) -> String {
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("piratchat admin: "), "{err}");
    err
}

fn server() -> (Server, String) {
    let s = Server::start(&["--admins", "root"]);
    let key = s.register("root");
    (s, key)
}

#[test]
fn ban_mute_unban_from_the_command_line_take_effect_at_once() {
    let (s, key) = server();
    let ben_key = s.register("ben");
    let ben = s.login(&ben_key);
    let mut b = open(&s, &ben);
    assert_eq!(
        ok(admin(&s, Some(&key), &["ban", "ben", "--reason", "spam"])),
        "banned ben"
    );
    assert_eq!(b.close_code(), (1008, "banned".into()));
    let r = s.post("/api/login", &format!(r#"{{"key":"{ben_key}"}}"#));
    assert_eq!(r.status, 403);
    ok(admin(&s, Some(&key), &["unban", "ben"]));
    let ben = s.login(&ben_key);
    let out = ok(admin(&s, Some(&key), &["mute", "ben", "10m"]));
    assert!(out.starts_with("muted ben until "), "{out}");
    let mut b = open(&s, &ben);
    assert_eq!(send(&mut b, json!({"message": "x"}))["code"], "muted");
    ok(admin(&s, Some(&key), &["unmute", "ben"]));
    assert_eq!(send(&mut b, json!({"message": "x"}))["status"], true);
    let audit = ok(admin(&s, Some(&key), &["audit", "--limit", "4"]));
    let actions: Vec<&str> = audit
        .lines()
        .skip(1)
        .map(|l| l.split(' ').nth(3).unwrap())
        .collect();
    assert_eq!(actions, ["unmute", "mute", "unban", "ban"], "{audit}");
}

#[test]
fn reset_key_prints_the_new_key_alone() {
    let (s, key) = server();
    let old = s.register("ben");
    let new = ok(admin(&s, Some(&key), &["reset-key", "ben"]));
    assert_eq!(new.len(), 64, "{new:?}");
    assert_eq!(
        s.post("/api/login", &format!(r#"{{"key":"{old}"}}"#))
            .status,
        401
    );
    s.login(&new);
}

#[test]
fn the_key_file_users_role_purge_delete_and_invite() {
    let (s, key) = server();
    let dir = TempDir::new();
    let file = dir.0.join("key");
    std::fs::write(&file, format!("{key}\n")).unwrap();
    let kf = file.to_str().unwrap();
    let ben = s.user("ben");
    let mut b = open(&s, &ben);
    util::chat::send_ok(&mut b, json!({"message": "spam"}));
    let users = ok(admin(
        &s,
        None,
        &["--key-file", kf, "users", "--prefix", "b"],
    ));
    assert_eq!(users.lines().count(), 2, "{users}");
    assert!(
        users
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("ben user false - true"),
        "{users}"
    );
    let out = ok(admin(&s, None, &["--key-file", kf, "role", "ben", "admin"]));
    assert_eq!(out, "ben is now admin");
    ok(admin(&s, None, &["--key-file", kf, "role", "ben", "user"]));
    let out = ok(admin(&s, None, &["--key-file", kf, "purge", "ben"]));
    assert_eq!(out, "purged ben: 1 messages deleted");
    let out = ok(admin(&s, None, &["--key-file", kf, "delete", "ben"]));
    assert_eq!(out, "deleted ben: 0 messages deleted");
    assert_eq!(b.close_code(), (1008, "account deleted".into()));
    let code = ok(admin(
        &s,
        None,
        &["--key-file", kf, "invite", "--uses", "2"],
    ));
    assert_eq!(code.len(), 32, "{code:?}");
    let json = ok(admin(&s, None, &["--key-file", kf, "--json", "users"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["users"].as_array().unwrap().len(), 1, "only root is left");
}

#[test]
fn exit_codes_tell_usage_refusal_and_connection_failures_apart() {
    let (s, key) = server();
    let ben_key = s.register("ben");
    // Usage: nothing is sent.
    for args in [
        &["frobnicate"][..],
        &["ban"],
        &["mute", "ben"],
        &["role", "ben", "king"],
        &["ban", "ben", "--key", "abc"],
        &["--server", "https://x", "ban", "ben"],
    ] {
        fails(admin(&s, Some(&key), args), 2);
    }
    let err = fails(admin(&s, None, &["ban", "ben"]), 2);
    assert!(err.contains("PIRATCHAT_KEY"), "{err}");
    // Refused by the server.
    let err = fails(admin(&s, Some(&ben_key), &["ban", "root"]), 3);
    assert!(err.contains("403 forbidden"), "{err}");
    let err = fails(admin(&s, Some(&"0".repeat(64)), &["users"]), 3);
    assert!(err.contains("401 invalid_key"), "{err}");
    let err = fails(admin(&s, Some(&key), &["ban", "nobody"]), 3);
    assert!(err.contains("404 user_not_found"), "{err}");
    let err = fails(admin(&s, Some(&key), &["mute", "ben", "forever"]), 3);
    assert!(err.contains("400 invalid_duration"), "{err}");
    // Nobody listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_piratchat"));
    let o = cmd
        .args([
            "admin",
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "users",
        ])
        .env("PIRATCHAT_KEY", &key)
        .output()
        .unwrap();
    fails(o, 4);
    // The operator's sessions do not pile up: each call logs out.
    let r = post(&s, &s.login(&key), "/api/logout", "");
    assert_eq!(r.status, 200);
    assert_eq!(s.metric("piratchat_sessions"), 0);
}

#[test]
fn help_for_everything_and_the_server_still_starts_as_before() {
    let o = Command::new(env!("CARGO_BIN_EXE_piratchat"))
        .args(["admin", "--help"])
        .output()
        .unwrap();
    let text = ok(o);
    for command in [
        "users",
        "ban",
        "unban",
        "mute",
        "unmute",
        "reset-key",
        "purge",
        "delete",
        "role",
        "audit",
        "invite",
    ] {
        assert!(text.contains(&format!("\n  {command} ")), "{command}");
        let o = Command::new(env!("CARGO_BIN_EXE_piratchat"))
            .args(["admin", command, "--help"])
            .output()
            .unwrap();
        let one = ok(o);
        assert!(
            one.starts_with(&format!("Usage: piratchat admin {command}")),
            "{one}"
        );
    }
    // Not `admin`: the server's own flags, as always.
    let o = Command::new(env!("CARGO_BIN_EXE_piratchat"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(ok(o).contains("--registration"));
}
