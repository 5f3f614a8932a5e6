//! HTTP framing and the limits of SPEC §2 and §6 over real sockets:
//! keep-alive, pipelining, HTTP/1.0, chunked bodies, 100-continue, request
//! smuggling, oversized heads and bodies, deadlines and the connection cap.

mod util;

use std::io::Write;
use std::time::{Duration, Instant};
use util::{PATIENCE, Server, closed_by_peer, read_response, wait_for};

/// Writes `bytes`, reads one response, and asserts the server then closes.
fn answer_then_close(s: &Server, bytes: &[u8]) -> util::Resp {
    let mut c = s.connect();
    c.write_all(bytes).unwrap();
    let r = read_response(&mut c).expect("a response");
    assert!(
        closed_by_peer(&mut c),
        "the connection should close after {}",
        r.status
    );
    r
}

#[test]
fn keep_alive_and_pipelining_answer_in_order() {
    let s = Server::start(&["--register-limit", "0"]);
    let mut c = s.connect();
    let mut batch = String::new();
    for name in ["pipe1", "pipe2", "pipe1"] {
        batch += &util::raw(
            "POST",
            "/api/register",
            &[],
            &format!(r#"{{"username":"{name}"}}"#),
        );
    }
    batch += &util::raw("GET", "/healthz", &[], "");
    c.write_all(batch.as_bytes()).unwrap();
    let statuses: Vec<u16> = (0..4)
        .map(|_| read_response(&mut c).unwrap().status)
        .collect();
    assert_eq!(statuses, [201, 201, 409, 200]);
    // Still open for the next request.
    c.write_all(util::raw("GET", "/healthz", &[], "").as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut c).unwrap().status, 200);
}

#[test]
fn connection_close_and_http10_close_after_the_response() {
    let s = Server::start(&[]);
    let r = answer_then_close(
        &s,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    let r = answer_then_close(&s, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    // HTTP/1.0 may ask to keep the connection.
    let mut c = s.connect();
    for _ in 0..2 {
        c.write_all(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let r = read_response(&mut c).unwrap();
        assert_eq!(
            (r.status, r.header("connection")),
            (200, Some("keep-alive"))
        );
    }
}

#[test]
fn chunked_body() {
    let s = Server::start(&[]);
    let body = r#"{"username":"chunky"}"#;
    let (a, b) = body.split_at(7);
    let req = format!(
        "POST /api/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    let mut c = s.connect();
    c.write_all(req.as_bytes()).unwrap();
    let r = read_response(&mut c).unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn expect_100_continue() {
    let s = Server::start(&[]);
    let body = r#"{"username":"patient"}"#;
    let mut c = s.connect();
    let head = format!(
        "POST /api/register HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    let interim = read_response(&mut c).unwrap();
    assert_eq!(interim.status, 100);
    c.write_all(body.as_bytes()).unwrap();
    assert_eq!(read_response(&mut c).unwrap().status, 201);
}

#[test]
fn smuggling_attempts_get_400_and_close() {
    let s = Server::start(&[]);
    let cases = [
        "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef",
        "POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "POST /api/login HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ];
    for req in cases {
        let r = answer_then_close(&s, req.as_bytes());
        assert_eq!(
            (r.status, r.error()),
            (400, "bad_request".to_string()),
            "{req:?}"
        );
    }
}

#[test]
fn malformed_requests_get_400_and_close() {
    let s = Server::start(&[]);
    for req in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
    ] {
        let r = answer_then_close(&s, req);
        assert_eq!(
            (r.status, r.error()),
            (400, "bad_request".to_string()),
            "{req:?}"
        );
    }
}

#[test]
fn oversized_head_and_body() {
    let s = Server::start(&[]);
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9000)
    );
    let r = answer_then_close(&s, big.as_bytes());
    assert_eq!(
        (r.status, r.error()),
        (431, "headers_too_large".to_string())
    );
    let mut many = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..64 {
        many += &format!("X-H{i}: 1\r\n");
    }
    let r = answer_then_close(&s, format!("{many}\r\n").as_bytes());
    assert_eq!(r.status, 431, "65 headers");
    let r = answer_then_close(
        &s,
        b"POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n",
    );
    assert_eq!(
        (r.status, r.error()),
        (413, "payload_too_large".to_string())
    );
    // The 413 comes while the client is still sending: it must not be lost.
    let mut c = s.connect();
    c.write_all(b"POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Length: 17000\r\n\r\n")
        .unwrap();
    let _ = c.write_all(&vec![b'x'; 17000]);
    assert_eq!(read_response(&mut c).unwrap().status, 413);
    // Limits are settings.
    let s = Server::start(&["--max-body-bytes", "10"]);
    let r = answer_then_close(
        &s,
        util::raw("POST", "/api/register", &[], r#"{"username":"x"}"#).as_bytes(),
    );
    assert_eq!(r.status, 413);
}

/// Opens a connection, writes `partial`, and measures how long until the
/// server closes it.
fn closed_after(s: &Server, partial: &[u8]) -> Duration {
    let mut c = s.connect();
    let t = Instant::now();
    c.write_all(partial).unwrap();
    assert!(closed_by_peer(&mut c), "closed by the server");
    t.elapsed()
}

#[test]
fn slow_head_slow_body_and_idle_connections_are_closed() {
    let s = Server::start(&[
        "--head-timeout",
        "300ms",
        "--body-timeout",
        "400ms",
        "--idle-timeout",
        "500ms",
    ]);
    let slow_head = closed_after(&s, b"GET /healthz HTTP/1.1\r\nHost:");
    assert!(
        slow_head >= Duration::from_millis(250) && slow_head < PATIENCE,
        "{slow_head:?}"
    );
    let slow_body = closed_after(
        &s,
        b"POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{",
    );
    assert!(slow_body >= Duration::from_millis(350), "{slow_body:?}");
    let idle = closed_after(&s, b"");
    // A fresh connection waits for its first head under the head deadline.
    assert!(idle >= Duration::from_millis(250), "{idle:?}");
    // After a response, the idle deadline applies.
    let mut c = s.connect();
    c.write_all(util::raw("GET", "/healthz", &[], "").as_bytes())
        .unwrap();
    read_response(&mut c).unwrap();
    let t = Instant::now();
    assert!(closed_by_peer(&mut c));
    assert!(
        t.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn a_trickling_head_does_not_reset_its_deadline() {
    let s = Server::start(&["--head-timeout", "500ms"]);
    let mut c = s.connect();
    let t = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    c.write_all(head).unwrap();
    c.set_nonblocking(true).unwrap();
    let mut closed = false;
    // Keep dripping one byte at a time; the server must still cut it off.
    wait_for("the slowloris cut-off", PATIENCE, || {
        if c.write_all(b"a").is_err() {
            closed = true;
        }
        let mut b = [0u8; 64];
        match std::io::Read::read(&mut c, &mut b) {
            Ok(0) | Err(_) if closed => Some(()),
            Ok(0) => Some(()),
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => Some(()),
            _ => None,
        }
    });
    assert!(t.elapsed() >= Duration::from_millis(450));
}

#[test]
fn connection_cap_answers_503() {
    let s = Server::start(&["--max-connections", "2"]);
    let mut held: Vec<_> = (0..2).map(|_| s.connect()).collect();
    for c in &mut held {
        // Make sure the server has accepted each one.
        c.write_all(util::raw("GET", "/healthz", &[], "").as_bytes())
            .unwrap();
        assert_eq!(read_response(c).unwrap().status, 200);
    }
    let r = answer_then_close(&s, util::raw("GET", "/healthz", &[], "").as_bytes());
    assert_eq!((r.status, r.error()), (503, "server_busy".to_string()));
    drop(held);
    // Once they are gone, new connections are served again.
    wait_for("a free place", PATIENCE, || {
        let mut c = s.connect();
        c.write_all(util::raw("GET", "/healthz", &[], "").as_bytes())
            .ok()?;
        (read_response(&mut c)?.status == 200).then_some(())
    });
}

#[test]
fn every_response_has_content_length() {
    let s = Server::start(&[]);
    for (m, p) in [
        ("GET", "/healthz"),
        ("GET", "/nope"),
        ("PUT", "/api/login"),
        ("GET", "/api/online"),
    ] {
        let r = s.request(m, p, &[], "");
        assert!(r.header("content-length").is_some(), "{m} {p}");
    }
}

/// Sends `n` requests from distinct forwarded addresses (the test is a
/// trusted loopback proxy) over one keep-alive connection, in pipelined
/// batches, and returns how many got each status.
fn flood(s: &Server, path: &str, body: &str, n: u32) -> std::collections::BTreeMap<u16, u32> {
    let conn = s.connect();
    let mut reader = std::io::BufReader::new(&conn);
    let mut statuses = std::collections::BTreeMap::new();
    let mut sent = 0;
    while sent < n {
        let batch: Vec<u32> = (sent..n.min(sent + 256)).collect();
        let mut bytes = String::new();
        for &i in &batch {
            // Even: one IPv4 address each; odd: a new /64 of one /48 (a
            // /48 alone used to fill the table).
            let addr = if i % 2 == 0 {
                std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string()
            } else {
                format!("2001:db8:77:{:x}::1", i / 2)
            };
            bytes.push_str(&util::raw(
                "POST",
                path,
                &[("X-Forwarded-For", &addr)],
                body,
            ));
        }
        (&conn).write_all(bytes.as_bytes()).unwrap();
        for _ in &batch {
            let r = read_response(&mut reader).expect("a response");
            *statuses.entry(r.status).or_default() += 1;
        }
        sent += batch.len() as u32;
    }
    statuses
}

/// Issue 11 #6: after 65,536 distinct addresses every new address got 429,
/// even a login with a valid key. 70,000 addresses (IPv4, and /64s of one
/// /48) fail logins and register; then a fresh address registers and a
/// valid key logs in from another fresh address.
#[test]
fn a_full_address_table_still_lets_new_addresses_and_valid_keys_in() {
    let s = Server::start(&[]);
    let failed = flood(
        &s,
        "/api/login",
        &format!(r#"{{"key":"{}"}}"#, "0".repeat(64)),
        70_000,
    );
    assert_eq!(failed.get(&401), Some(&70_000), "{failed:?}");
    let registered = flood(&s, "/api/register", "{}", 70_000);
    // The /48's new /64s share one allowance once the table is half full;
    // every IPv4 address is new, so never refused.
    assert!(registered[&422] >= 35_000 + 32_768 / 2, "{registered:?}");
    let fresh = [("X-Forwarded-For", "192.0.2.200")];
    let r = s.request("POST", "/api/register", &fresh, r#"{"username":"fresh"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let key = r.json()["key"].as_str().unwrap().to_string();
    let body = format!(r#"{{"key":"{key}"}}"#);
    for addr in ["198.51.100.200", "2001:db8:99::1"] {
        let r = s.request("POST", "/api/login", &[("X-Forwarded-For", addr)], &body);
        assert_eq!(r.status, 200, "{addr}: {}", r.body);
    }
}
