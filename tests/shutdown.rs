//! Black-box tests of the graceful shutdown (SPEC §5.7): on SIGTERM or
//! SIGINT the server stops accepting, finishes the HTTP responses in
//! flight, closes every WebSocket with 1001, and exits 0 — at once when
//! everything has closed, after the grace period at the latest.

mod util;

use serde_json::json;
use std::io::{Cursor, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use util::ws::{Client, Got, open, raw_open};
#[allow(unused_imports)]
use util::{PATIENCE, Resp, Server, TempDir, closed_by_peer, read_response, wait_for};

/// Reads the server's close frame, answers it, and waits for the TCP
/// connection to end.
fn expect_going_away(c: &mut Client, who: &str) {
    // The close comes first: no `leave` of the others, who are going away
    // too (regression: each socket closed at shutdown told all the ones
    // not yet closed, O(n²) frames).
    loop {
        match c.next() {
            Got::Close(Some(f)) => {
                assert_eq!(
                    (u16::from(f.code), f.reason.as_str()),
                    (1001, "going away"),
                    "{who}"
                );
                break;
            }
            Got::Ping | Got::Pong => {}
            other => panic!("{who}: expected close 1001, got {other:?}"),
        }
    }
    // tungstenite queued the close reply; reading on sends it and then
    // sees the end of the connection.
    loop {
        match c.next() {
            Got::Gone => break,
            Got::Json(v) => panic!("{who}: a data frame after the close: {v}"),
            _ => {}
        }
    }
}

/// Log lines of served `GET /metrics` requests.
fn metrics_logged(server: &Server) -> usize {
    server
        .log_lines()
        .iter()
        .filter(|l| l.contains("GET \"/metrics\""))
        .count()
}

/// Parses `bytes` as back-to-back complete responses; fails on a partial
/// one at the end.
fn whole_responses(bytes: &[u8]) -> usize {
    let mut cur = Cursor::new(bytes);
    let mut n = 0;
    loop {
        let at = cur.position();
        match read_response(&mut cur) {
            Some(r) => {
                assert_eq!(r.status, 200, "{r:?}");
                n += 1;
            }
            None => {
                assert_eq!(
                    at as usize,
                    bytes.len(),
                    "a truncated response after {n} whole ones"
                );
                return n;
            }
        }
    }
}

#[test]
fn sigterm_closes_every_socket_with_1001_and_finishes_http_in_flight() {
    let dir = Arc::new(TempDir::new());
    // A grace far longer than the test's patience: exiting in time shows
    // the server does not wait once everything is closed.
    let mut server = Server::start_in(dir.clone(), &["--shutdown-grace", "60s"]);
    let key = server.register("alice");
    let ta = server.login(&key);
    let (tb, tc) = (server.user("bob"), server.user("carol"));
    let mut a = open(&server, &ta);
    let mut b = open(&server, &tb);
    let mut c = open(&server, &tc);
    assert_eq!(a.json(), json!({"event": "join", "username": "bob"}));
    for c in [&mut a, &mut b] {
        assert_eq!(c.json(), json!({"event": "join", "username": "carol"}));
    }

    // HTTP in flight: pipelined requests whose responses are not read,
    // until the server stops parsing because its output queue is full.
    let mut http = server.connect();
    let writer = {
        let mut w = http.try_clone().unwrap();
        std::thread::spawn(move || {
            let req = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(5000);
            // The server stops reading when it stops parsing; the rest of
            // the write may then fail once it closes, which is fine.
            let _ = w.write_all(req.as_bytes());
            let _ = w.shutdown(Shutdown::Write);
        })
    };
    let mut seen = (0, Instant::now());
    wait_for(
        "the server to pause the pipelined connection",
        PATIENCE,
        || {
            let n = metrics_logged(&server);
            if n != seen.0 {
                seen = (n, Instant::now());
            }
            (n > 0 && seen.1.elapsed() > Duration::from_millis(300)).then_some(())
        },
    );
    // An idle keep-alive connection.
    let mut idle = server.connect();
    idle.write_all(util::raw("GET", "/healthz", &[], "").as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut idle).map(|r| r.status), Some(200));

    server.signal("-TERM");
    for (c, who) in [(&mut a, "alice"), (&mut b, "bob"), (&mut c, "carol")] {
        expect_going_away(c, who);
    }
    // No longer accepting.
    server.wait_log("shutting down");
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "still accepting after SIGTERM"
    );

    // Every response the server produced arrives whole, then the end.
    let mut bytes = Vec::new();
    http.read_to_end(&mut bytes)
        .expect("a clean end of the HTTP connection");
    writer.join().unwrap();
    let got = whole_responses(&bytes);
    assert!(closed_by_peer(&mut idle), "the idle connection stayed open");
    assert_eq!(server.wait_exit(), Some(0));
    // The last line; every access line is in once it is.
    server.wait_log("stopped");
    let logged = metrics_logged(&server);
    assert!(got > 0);
    assert_eq!(got, logged, "responses delivered vs served");

    // The database is consistent: the next run knows alice's key.
    let server = Server::start_in(dir, &[]);
    let t = server.login(&key);
    assert_eq!(server.get("/api/user/@me", Some(&t)).status, 200);
}

#[test]
fn sigint_gives_up_on_unresponsive_peers_after_the_grace() {
    let mut server = Server::start(&["--shutdown-grace", "700ms"]);
    let (ta, tdead) = (server.user("alice"), server.user("dead"));
    let mut a = open(&server, &ta);
    // Never reads, never answers the close.
    let mut dead = raw_open(&server, &tdead);
    assert_eq!(a.json(), json!({"event": "join", "username": "dead"}));
    let signalled = Instant::now();
    server.signal("-INT");
    expect_going_away(&mut a, "alice");
    assert_eq!(server.wait_exit(), Some(0));
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(650),
        "exited after {took:?}, before the grace"
    );
    // The unresponsive peer's close frame was queued for it all along.
    let mut got = Vec::new();
    dead.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = dead.read_to_end(&mut got);
    let mut want = vec![0x88, 12, 0x03, 0xe9];
    want.extend_from_slice(b"going away");
    assert_eq!(got, want);
}

#[test]
fn regression_shutdown_sent_leave_to_the_sockets_not_closed_yet() {
    let mut server = Server::start(&[]);
    let names = ["u1", "u2", "u3", "u4", "u5"];
    let mut clients: Vec<Client> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let token = server.user(name);
        clients.push(open(&server, &token));
        for c in &mut clients[..i] {
            assert_eq!(c.json(), json!({"event": "join", "username": name}));
        }
    }
    server.signal("-TERM");
    // Each socket's first frame is its close: no `leave` of the others.
    for (c, name) in clients.iter_mut().zip(names) {
        expect_going_away(c, name);
    }
    assert_eq!(server.wait_exit(), Some(0));
}
