//! Sessions and users over time and restarts: the sliding TTL, users that
//! survive a restart, and logging in with a key from an original Piratchat
//! database.

mod util;

use std::sync::Arc;
use std::time::{Duration, Instant};
use util::{PATIENCE, Server, TempDir, wait_for};

#[test]
fn session_lives_on_with_activity_and_ends_when_idle() {
    let s = Server::start(&["--session-ttl", "1s"]);
    let token = s.user("kate");
    // Active for well over the TTL: every request slides the expiry.
    let start = Instant::now();
    let mut last = start;
    while start.elapsed() < Duration::from_millis(2500) {
        last = Instant::now();
        assert_eq!(
            s.get("/api/user/@me", Some(&token)).status,
            200,
            "at {:?}",
            start.elapsed()
        );
        let next = last + Duration::from_millis(300);
        wait_for("the next request time", PATIENCE, || {
            (Instant::now() >= next).then_some(())
        });
    }
    // Then idle: watch the session count (not an authenticated request,
    // so not activity) until the session ends, about a TTL later.
    wait_for("the session to end", PATIENCE, || {
        (s.metric("piratchat_sessions") == 0).then_some(())
    });
    assert!(
        last.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        last.elapsed()
    );
    let r = s.get("/api/user/@me", Some(&token));
    assert_eq!((r.status, r.error()), (401, "invalid_session".to_string()));
}

#[test]
fn an_idle_session_ends_without_a_request() {
    let s = Server::start(&["--session-ttl", "400ms"]);
    let _token = s.user("liam");
    assert_eq!(s.metric("piratchat_sessions"), 1);
    // The timer wheel ends it; nobody asks for it.
    wait_for("expiry by timer", PATIENCE, || {
        (s.metric("piratchat_sessions") == 0).then_some(())
    });
}

#[test]
fn users_survive_a_restart() {
    let dir = Arc::new(TempDir::new());
    let key = {
        let s = Server::start_in(dir.clone(), &[]);
        s.register("mia")
    };
    let s = Server::start_in(dir, &[]);
    let token = s.login(&key);
    assert_eq!(
        s.get("/api/user/@me", Some(&token)).json()["username"],
        "mia"
    );
    assert_eq!(s.post("/api/register", r#"{"username":"MIA"}"#).status, 409);
}

#[test]
fn login_with_a_key_from_an_original_database() {
    let dir = Arc::new(TempDir::new());
    let db = dir.0.join("chat.db");
    let original_key = "d3b07384d113edec49eaa6238ad5ff00d3b07384d113edec49eaa6238ad5ff00";
    {
        // Exactly what the original server creates and stores.
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS keys(id INTEGER PRIMARY KEY AUTOINCREMENT, \
             username TEXT NOT NULL, key TEXT NOT NULL)",
        )
        .unwrap();
        let hash = piratchat::secret::sha256_hex(original_key);
        conn.execute(
            "INSERT INTO keys (username, key) VALUES (?1, ?2)",
            ["Oldtimer", &hash],
        )
        .unwrap();
        let other = piratchat::secret::sha256_hex("other");
        conn.execute(
            "INSERT INTO keys (username, key) VALUES (?1, ?2)",
            ["oldtimer", &other],
        )
        .unwrap();
    }
    let s = Server::start_in(dir.clone(), &[]);
    s.wait_log("imported 2 users");
    let token = s.login(original_key);
    let me = s.get("/api/user/@me", Some(&token)).json();
    assert_eq!(me["username"], "Oldtimer");
    // The colliding imported name is kept, and its key works too.
    let token = s.login("other");
    assert_eq!(
        s.get("/api/user/@me", Some(&token)).json()["username"],
        "oldtimer"
    );
    // New registrations follow today's rules.
    assert_eq!(
        s.post("/api/register", r#"{"username":"OLDTIMER"}"#).status,
        409
    );
    drop(s);
    // The original table is left as it was, and nothing is imported twice.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    drop(conn);
    let s = Server::start_in(dir, &[]);
    s.wait_log("listening on");
    assert!(!s.log_lines().iter().any(|l| l.contains("imported")));
    s.login(original_key);
}

/// Issue 11 #10: an imported username (original databases allow any text)
/// reached the WebSocket log lines raw: a space forged fields, U+202E
/// reordered the line. Also pins the readable `conn=slot.generation`.
#[test]
fn imported_username_is_escaped_in_log_lines() {
    let dir = Arc::new(TempDir::new());
    let key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let name = "eve code=1000 user=root \u{202e}gnp";
    {
        let conn = rusqlite::Connection::open(dir.0.join("chat.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE keys(id INTEGER PRIMARY KEY AUTOINCREMENT, \
             username TEXT NOT NULL, key TEXT NOT NULL)",
        )
        .unwrap();
        let hash = piratchat::secret::sha256_hex(key);
        conn.execute(
            "INSERT INTO keys (username, key) VALUES (?1, ?2)",
            [name, &hash],
        )
        .unwrap();
    }
    let s = Server::start_in(dir, &[]);
    s.wait_log("imported 1 user from");
    let token = s.login(key);
    let mut ws = util::ws::open(&s, &token);
    let open = s.wait_log("ws open ");
    ws.ws.close(None).unwrap();
    let close = s.wait_log("ws close ");
    let shown = r#"user="eve code=1000 user=root \u{202e}gnp""#;
    for line in [&open, &close] {
        assert!(line.contains(shown), "{line}");
        assert!(!line.contains('\u{202e}'), "{line}");
        let conn = line.split(" conn=").nth(1).unwrap();
        let conn = conn.split(' ').next().unwrap();
        let (slot, generation) = conn.split_once('.').expect("slot.generation");
        assert!(slot.parse::<usize>().is_ok() && generation.parse::<u32>().is_ok());
    }
}

/// Issue 11 #5: past `--sessions-per-user`, a login ends the user's least
/// recently used session, and it stays ended across a restart (it was
/// deleted from the store, not only forgotten).
#[test]
fn sessions_per_user_cap_ends_the_least_recently_used() {
    let dir = Arc::new(TempDir::new());
    let args = ["--sessions-per-user", "2"];
    let (first, second, third) = {
        let s = Server::start_in(dir.clone(), &args);
        let key = s.register("nina");
        let first = s.login(&key);
        let second = s.login(&key);
        // Using the first makes the second the least recently used.
        assert_eq!(s.get("/api/user/@me", Some(&first)).status, 200);
        let third = s.login(&key);
        assert_eq!(s.get("/api/user/@me", Some(&second)).status, 401);
        assert_eq!(s.metric("piratchat_sessions"), 2);
        assert_eq!(s.metric("piratchat_sessions_evicted_total"), 1);
        (first, second, third)
    };
    let s = Server::start_in(dir, &args);
    assert_eq!(s.get("/api/user/@me", Some(&second)).status, 401);
    for token in [&first, &third] {
        assert_eq!(s.get("/api/user/@me", Some(token)).status, 200);
    }
}
