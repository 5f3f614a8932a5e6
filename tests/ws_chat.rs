//! Black-box tests of the chat over `/ws` (SPEC §5.1–§5.4, §5.6): the
//! handshake checks, join and leave, broadcast-then-ack, the error acks,
//! logout, and sessions that outlive their TTL while a socket is open.
//!
//! Every test runs the real binary on `127.0.0.1:0` and talks to it through
//! real sockets; waits are polls with a deadline.

mod util;

use serde_json::json;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use util::ws::{Client, Got, ack, join, leave, masked, msg, nack, online, open, try_open};
use util::{PATIENCE, Resp, Server, closed_by_peer, read_response, wait_for};

/// Long enough for a frame that was going to arrive to have arrived.
const SHORT: Duration = Duration::from_millis(200);

/// The `online` flag of `/api/user/@me`.
fn me_online(server: &Server, token: &str) -> bool {
    let r = server.get("/api/user/@me", Some(token));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["online"].as_bool().unwrap()
}

/// `sender` says `text`; every client of `others` must get it as its very
/// next frame (so nothing else was queued before it) and the sender its
/// ack as its very next frame.
fn say_and_check(sender: &mut Client, name: &str, text: &str, others: &mut [&mut Client]) {
    sender.say(text);
    for other in others.iter_mut() {
        assert_eq!(other.json(), msg(text, name));
    }
    assert_eq!(sender.json(), ack());
}

/// Sends a client close, reads the server's close reply and waits for the
/// TCP connection to end: after this the server has forgotten the socket.
fn close_fully(mut c: Client) {
    c.ws.close(None).unwrap();
    loop {
        match c.next() {
            Got::Close(_) => break,
            Got::Gone => panic!("connection dropped before the close reply"),
            _ => {}
        }
    }
    let mut sock: TcpStream = c.ws.get_ref().try_clone().unwrap();
    assert!(
        closed_by_peer(&mut sock),
        "the server never closed the TCP connection"
    );
}

/// A raw request on a new connection, for the handshake refusals.
fn upgrade_status(server: &Server, path: &str, headers: &[(&str, &str)]) -> Resp {
    match try_open(server, path, headers) {
        Ok(_) => panic!("{path} {headers:?} was upgraded"),
        Err(r) => r,
    }
}

#[test]
fn three_users_join_and_leave() {
    let server = Server::start(&[]);
    let (ta, tb, tc) = (
        server.user("alice"),
        server.user("bob"),
        server.user("carol"),
    );
    assert!(online(&server, &ta).is_empty());
    assert!(!me_online(&server, &ta));

    let mut a = open(&server, &ta);
    assert_eq!(online(&server, &ta), ["alice"]);
    let mut b = open(&server, &tb);
    assert_eq!(a.json(), join("bob"));
    let mut c = open(&server, &tc);
    assert_eq!(a.json(), join("carol"));
    assert_eq!(b.json(), join("carol"));
    // The joining socket hears nothing about itself or the others.
    c.quiet(SHORT);
    b.quiet(Duration::from_millis(1));
    assert_eq!(online(&server, &tc), ["alice", "bob", "carol"]);
    assert!(me_online(&server, &tb));

    // Bob leaves with a proper close handshake.
    close_fully(b);
    assert_eq!(a.json(), leave("bob"));
    assert_eq!(c.json(), leave("bob"));
    // Exactly once: the next frame after the leave is a later message.
    say_and_check(&mut c, "carol", "still here", &mut [&mut a]);
    assert_eq!(online(&server, &ta), ["alice", "carol"]);
    // Bob's session outlives his socket.
    assert!(!me_online(&server, &tb));

    // Alice's TCP connection just drops (no close frame).
    drop(a);
    assert_eq!(c.json(), leave("alice"));
    assert_eq!(online(&server, &tc), ["carol"]);
    // Bob comes back: he is last in connection order now.
    let mut b = open(&server, &tb);
    assert_eq!(c.json(), join("bob"));
    assert_eq!(online(&server, &tc), ["carol", "bob"]);
    say_and_check(&mut b, "bob", "back", &mut [&mut c]);
    c.quiet(SHORT);
}

#[test]
fn broadcast_to_every_other_socket_then_ack_to_the_sender() {
    let server = Server::start(&["--chat-burst", "0"]);
    let names = ["ann", "ben", "cat", "dan"];
    let mut clients: Vec<Client> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let token = server.user(name);
        clients.push(open(&server, &token));
        for c in &mut clients[..i] {
            assert_eq!(c.json(), join(name));
        }
    }
    // A burst from one sender: every other socket gets every message in
    // order, the sender gets one ack per message and never its own text.
    let (sender, others) = clients.split_first_mut().unwrap();
    let texts: Vec<String> = (0..20).map(|i| format!("message {i} ✓")).collect();
    for t in &texts {
        sender.say(t);
    }
    for other in others.iter_mut() {
        for t in &texts {
            assert_eq!(other.json(), msg(t, "ann"));
        }
    }
    for _ in &texts {
        assert_eq!(sender.json(), ack());
    }
    // A burst in one write, more than the server handles for one socket in
    // one turn: still every message, in order, and one ack each.
    let many: Vec<String> = (0..150).map(|i| format!("burst {i}")).collect();
    for t in &many {
        let frame = json!({ "message": t }).to_string();
        sender
            .ws
            .write(tungstenite::Message::Text(frame.into()))
            .unwrap();
    }
    sender.ws.flush().unwrap();
    for other in others.iter_mut() {
        for t in &many {
            assert_eq!(other.json(), msg(t, "ann"));
        }
    }
    for _ in &many {
        assert_eq!(sender.json(), ack());
    }
    // Nothing else was queued for the sender.
    let (first, rest) = others.split_first_mut().unwrap();
    first.say("from ben");
    assert_eq!(sender.json(), msg("from ben", "ben"));
    for r in rest.iter_mut() {
        assert_eq!(r.json(), msg("from ben", "ben"));
    }
    assert_eq!(first.json(), ack());
    // Text is carried exactly, escapes and all.
    let tricky = "quote \" backslash \\ newline \n nul \u{0} emoji 🏴‍☠️";
    say_and_check(
        sender,
        "ann",
        tricky,
        &mut others.iter_mut().collect::<Vec<_>>(),
    );
}

/// Sends `frame` as text from `a`; `a` must get exactly `want` and the
/// watcher nothing, with both sockets still open.
fn expect_nack(a: &mut Client, watcher: &mut Client, frame: &str, code: &str) {
    a.send_text(frame);
    assert_eq!(a.json(), nack(code), "for {frame:?}");
    // Prove nothing reached the watcher (and the socket still works): the
    // watcher's next frame is the sender's next good message.
    say_and_check(a, "alice", "ok", &mut [watcher]);
}

#[test]
fn each_error_ack_keeps_the_socket_open() {
    let server = Server::start(&["--chat-burst", "0"]);
    let (ta, tb) = (server.user("alice"), server.user("bob"));
    let mut a = open(&server, &ta);
    let mut b = open(&server, &tb);
    assert_eq!(a.json(), join("bob"));

    let too_long = json!({ "message": "😀".repeat(301) }).to_string();
    let cases: &[(&str, &str)] = &[
        ("not json", "invalid_json"),
        ("", "invalid_json"),
        ("NaN", "invalid_json"),
        (r#"{"message": NaN}"#, "invalid_json"),
        (r#"{"message": "\ud800"}"#, "invalid_json"),
        (r#"{"message": "hi""#, "invalid_json"),
        (r#"{"message": "hi"} x"#, "invalid_json"),
        ("{}", "invalid_message"),
        (r#"{"message": ""}"#, "invalid_message"),
        (r#"{"message": " \t\n\r"}"#, "invalid_message"),
        (r#"{"message": "\u3000\u00a0\u2028"}"#, "invalid_message"),
        (r#"{"message": "hi", "extra": 1}"#, "invalid_message"),
        (r#"{"message": 5}"#, "invalid_message"),
        (r#"{"message": null}"#, "invalid_message"),
        (r#"{"message": ["hi"]}"#, "invalid_message"),
        (r#"{"msg": "hi"}"#, "invalid_message"),
        (r#"["hi"]"#, "invalid_message"),
        (r#""hi""#, "invalid_message"),
        ("null", "invalid_message"),
        (&too_long, "message_too_long"),
    ];
    for (frame, code) in cases {
        expect_nack(&mut a, &mut b, frame, code);
    }

    // 300 emoji (1200 bytes) are 300 scalar values: accepted.
    let longest = "😀".repeat(300);
    say_and_check(&mut a, "alice", &longest, &mut [&mut b]);
    // A lone surrogate pair written as escapes is one valid scalar value.
    a.send_text(r#"{"message": "\ud83d\ude00"}"#);
    assert_eq!(b.json(), msg("😀", "alice"));
    assert_eq!(a.json(), ack());

    // Binary frames are refused, the socket stays open.
    a.ws.send(tungstenite::Message::Binary(vec![1, 2, 3].into()))
        .unwrap();
    assert_eq!(a.json(), nack("binary_not_supported"));
    say_and_check(&mut a, "alice", "after binary", &mut [&mut b]);

    // A third user is still served after all of that.
    let tc = server.user("carol");
    let mut c = open(&server, &tc);
    assert_eq!(a.json(), join("carol"));
    assert_eq!(b.json(), join("carol"));
    say_and_check(&mut c, "carol", "hello", &mut [&mut a, &mut b]);
    say_and_check(&mut a, "alice", "hi carol", &mut [&mut b, &mut c]);
    assert_eq!(online(&server, &tc), ["alice", "bob", "carol"]);
}

#[test]
fn rate_limited_messages_are_not_broadcast() {
    let server = Server::start(&["--chat-burst", "2", "--chat-rate", "1"]);
    let (ta, tb) = (server.user("alice"), server.user("bob"));
    let mut a = open(&server, &ta);
    let mut b = open(&server, &tb);
    assert_eq!(a.json(), join("bob"));
    for text in ["one", "two", "three", "four"] {
        a.say(text);
    }
    assert_eq!(a.json(), ack());
    assert_eq!(a.json(), ack());
    assert_eq!(a.json(), nack("rate_limited"));
    assert_eq!(a.json(), nack("rate_limited"));
    assert_eq!(b.json(), msg("one", "alice"));
    assert_eq!(b.json(), msg("two", "alice"));
    // Refused messages are not broadcast (bob hears nothing for a second,
    // which is also the refill time of one token).
    let refill = Instant::now() + Duration::from_millis(1100);
    while Instant::now() < refill {
        b.quiet(
            refill
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        );
    }
    // A token came back: the socket was never closed.
    say_and_check(&mut a, "alice", "five", &mut [&mut b]);
    // The other user's bucket is their own.
    say_and_check(&mut b, "bob", "mine", &mut [&mut a]);
    let tc = server.user("carol");
    let mut c = open(&server, &tc);
    assert_eq!(a.json(), join("carol"));
    assert_eq!(b.json(), join("carol"));
    say_and_check(&mut c, "carol", "hello", &mut [&mut a, &mut b]);
}

#[test]
fn handshake_refusals_in_spec_order() {
    let server = Server::start(&["--allowed-origins", "https://app.example"]);
    let key = server.register("alice");
    let ta = server.login(&key);
    let cookie = format!("session={ta}");
    let tb = server.user("bob");
    let bob_cookie = format!("session={tb}");
    let evil = ("Origin", "http://evil.example");

    // 422 / 401 come first, even with a foreign origin.
    let r = upgrade_status(&server, "/ws", &[evil]);
    assert_eq!((r.status, r.error()), (422, "missing_session".into()));
    let r = upgrade_status(&server, "/ws", &[("Cookie", "session=")]);
    assert_eq!((r.status, r.error()), (422, "missing_session".into()));
    let r = upgrade_status(&server, "/ws", &[("Cookie", "session=nope"), evil]);
    assert_eq!((r.status, r.error()), (401, "invalid_session".into()));
    // 403 for a foreign origin.
    let r = upgrade_status(&server, "/ws", &[("Cookie", &cookie), evil]);
    assert_eq!((r.status, r.error()), (403, "origin_not_allowed".into()));
    let r = upgrade_status(&server, "/ws", &[("Cookie", &cookie), ("Origin", "null")]);
    assert_eq!((r.status, r.error()), (403, "origin_not_allowed".into()));
    let r = upgrade_status(
        &server,
        "/ws",
        &[("Cookie", &cookie), ("Origin", "https://app.example:444")],
    );
    assert_eq!((r.status, r.error()), (403, "origin_not_allowed".into()));
    // 400 for a valid session but no upgrade.
    let r = server.get("/ws", Some(&ta));
    assert_eq!((r.status, r.error()), (400, "bad_request".into()));
    assert!(!me_online(&server, &ta));

    // The request's own Host (either scheme) is allowed; so is the list.
    let own = try_open(
        &server,
        "/ws",
        &[("Cookie", &cookie), ("Origin", "http://LOCALHOST")],
    );
    let mut a = own.unwrap_or_else(|r| panic!("own origin refused: {r:?}"));
    assert!(me_online(&server, &ta));
    let listed = try_open(
        &server,
        "/ws",
        &[("Cookie", &bob_cookie), ("Origin", "https://app.example")],
    );
    let mut b = listed.unwrap_or_else(|r| panic!("allowed origin refused: {r:?}"));
    assert_eq!(a.json(), join("bob"));

    // 409 for a second socket of the same user, also with a new session
    // from a fresh login, and checked before the upgrade fields.
    let ta2 = server.login(&key);
    assert_ne!(ta, ta2);
    for token in [&ta, &ta2] {
        let c = format!("session={token}");
        let r = upgrade_status(&server, "/ws", &[("Cookie", &c)]);
        assert_eq!((r.status, r.error()), (409, "already_connected".into()));
        let r = upgrade_status(
            &server,
            "/ws",
            &[("Cookie", &c), ("Origin", "https://localhost")],
        );
        assert_eq!((r.status, r.error()), (409, "already_connected".into()));
        let r = server.get("/ws", Some(token));
        assert_eq!((r.status, r.error()), (409, "already_connected".into()));
    }
    // ...while 403 still comes before 409.
    let r = upgrade_status(
        &server,
        "/ws",
        &[("Cookie", &format!("session={ta2}")), evil],
    );
    assert_eq!((r.status, r.error()), (403, "origin_not_allowed".into()));

    // The refusals did not disturb the open sockets or announce anything.
    say_and_check(&mut a, "alice", "still one socket", &mut [&mut b]);
    b.quiet(SHORT);
    // Once alice's socket is gone, her second session may connect.
    close_fully(a);
    assert_eq!(b.json(), leave("alice"));
    let mut a2 = open(&server, &ta2);
    assert_eq!(b.json(), join("alice"));
    say_and_check(&mut a2, "alice", "second session", &mut [&mut b]);
}

#[test]
fn bytes_sent_with_the_upgrade_request_are_not_lost() {
    let server = Server::start(&[]);
    let (ta, tb) = (server.user("alice"), server.user("bob"));
    let mut b = open(&server, &tb);
    // The handshake and the first frame in one write.
    let mut s = server.connect();
    let cookie = format!("session={ta}");
    let mut bytes = util::ws::upgrade_request("/ws", &[("Cookie", &cookie)]).into_bytes();
    bytes.extend(masked(0x1, br#"{"message":"early"}"#));
    s.write_all(&bytes).unwrap();
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.status, 101);
    let mut a = Client {
        ws: tungstenite::WebSocket::from_raw_socket(s, tungstenite::protocol::Role::Client, None),
    };
    assert_eq!(b.json(), join("alice"));
    assert_eq!(b.json(), msg("early", "alice"));
    assert_eq!(a.json(), ack());
}

#[test]
fn logout_closes_the_socket_with_1000() {
    let server = Server::start(&[]);
    let (ta, tb, tc) = (
        server.user("alice"),
        server.user("bob"),
        server.user("carol"),
    );
    let mut a = open(&server, &ta);
    let mut b = open(&server, &tb);
    assert_eq!(a.json(), join("bob"));
    let mut c = open(&server, &tc);
    assert_eq!(a.json(), join("carol"));
    assert_eq!(b.json(), join("carol"));

    let r = server.get("/api/logout", Some(&ta));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(a.close_code(), (1000, "logged out".to_string()));
    assert_eq!(b.json(), leave("alice"));
    assert_eq!(c.json(), leave("alice"));
    // The session is over, the socket is gone from the online list.
    assert_eq!(server.get("/api/user/@me", Some(&ta)).status, 401);
    assert_eq!(online(&server, &tb), ["bob", "carol"]);
    // Alice's client answers the close; the TCP connection then ends.
    let _ = a.ws.flush();
    let mut sock = a.ws.get_ref().try_clone().unwrap();
    assert!(
        closed_by_peer(&mut sock),
        "the logged-out socket stayed open"
    );
    // The leave came exactly once: the next frame is a later message.
    say_and_check(&mut b, "bob", "after logout", &mut [&mut c]);
    say_and_check(&mut c, "carol", "me too", &mut [&mut b]);

    // Logging out another session of a connected user leaves the socket.
    let key_b = server.register("bobby");
    let tb1 = server.login(&key_b);
    let tb2 = server.login(&key_b);
    let mut b1 = open(&server, &tb1);
    assert_eq!(b.json(), join("bobby"));
    assert_eq!(c.json(), join("bobby"));
    assert_eq!(server.get("/api/logout", Some(&tb2)).status, 200);
    say_and_check(&mut b1, "bobby", "still connected", &mut [&mut b, &mut c]);

    // Logging out a session without a socket disturbs nobody.
    let key = server.register("dave");
    let td = server.login(&key);
    assert_eq!(server.get("/api/logout", Some(&td)).status, 200);
    b.quiet(SHORT);
    c.quiet(Duration::from_millis(1));
    drop(b1);
    assert_eq!(b.json(), leave("bobby"));
    assert_eq!(c.json(), leave("bobby"));
    // A logout of a dead socket's session: leave once, not twice.
    drop(c);
    assert_eq!(b.json(), leave("carol"));
    assert_eq!(server.get("/api/logout", Some(&tc)).status, 200);
    b.quiet(SHORT);
}

#[test]
fn logged_out_socket_closing_late_sends_no_leave_for_the_new_one() {
    let server = Server::start(&[]);
    let key = server.register("alice");
    let ta = server.login(&key);
    let tb = server.user("bob");
    let mut a = open(&server, &ta);
    let mut b = open(&server, &tb);
    assert_eq!(a.json(), join("bob"));
    assert_eq!(server.get("/api/logout", Some(&ta)).status, 200);
    // Alice's old client has the close frame but does not answer it yet.
    assert_eq!(a.close_code(), (1000, "logged out".to_string()));
    assert_eq!(b.json(), leave("alice"));
    // She logs in again and connects while the old socket still closes.
    let ta2 = server.login(&key);
    let mut a2 = open(&server, &ta2);
    assert_eq!(b.json(), join("alice"));
    // Now the old socket finishes its close handshake and goes.
    let _ = a.ws.flush();
    let mut sock = a.ws.get_ref().try_clone().unwrap();
    assert!(closed_by_peer(&mut sock));
    drop(a);
    // No `leave` for alice: she is online on her new socket.
    say_and_check(&mut a2, "alice", "new socket", &mut [&mut b]);
    b.quiet(SHORT);
    assert_eq!(online(&server, &tb), ["bob", "alice"]);
    assert!(me_online(&server, &ta2));
}

#[test]
fn open_socket_keeps_its_session_past_the_ttl() {
    let server = Server::start(&["--session-ttl", "1s"]);
    let (ta, tb, tidle) = (
        server.user("alice"),
        server.user("bob"),
        server.user("idle"),
    );
    let opened = Instant::now();
    let mut a = open(&server, &ta);
    let mut b = open(&server, &tb);
    assert_eq!(a.json(), join("bob"));
    // More than twice the TTL with no frame from alice and no request with
    // her session; bob keeps reading meanwhile.
    let until = opened + Duration::from_millis(2300);
    while Instant::now() < until {
        a.quiet(Duration::from_millis(50));
        b.quiet(Duration::from_millis(50));
    }
    // The control: a session without a socket did expire.
    assert_eq!(server.get("/api/user/@me", Some(&tidle)).status, 401);
    // Alice's socket works and her session still authenticates.
    say_and_check(&mut a, "alice", "still here", &mut [&mut b]);
    assert!(me_online(&server, &ta));

    // Once her socket is closed, the session lives one TTL of inactivity.
    close_fully(a);
    assert_eq!(b.json(), leave("alice"));
    assert!(
        !me_online(&server, &ta),
        "the session outlives its socket, offline"
    );
    let last_use = Instant::now();
    // Only ask after a full TTL of inactivity: asking is activity.
    wait_for("a TTL of inactivity", PATIENCE, || {
        (Instant::now() >= last_use + Duration::from_millis(1200)).then_some(())
    });
    let r = server.get("/api/user/@me", Some(&ta));
    assert_eq!((r.status, r.error()), (401, "invalid_session".into()));
    assert_eq!(
        try_open(&server, "/ws", &[("Cookie", &format!("session={ta}"))])
            .err()
            .map(|r| r.status),
        Some(401)
    );
    // Bob's socket kept his session too.
    assert!(me_online(&server, &tb));
}

#[test]
fn online_list_keeps_connection_order_through_churn() {
    let server = Server::start(&["--register-limit", "0"]);
    let names: Vec<String> = (0..24).map(|i| format!("user{i}")).collect();
    let tokens: Vec<String> = names.iter().map(|n| server.user(n)).collect();
    // Who is connected, in connection order, and their sockets.
    let mut model: Vec<usize> = Vec::new();
    let mut sockets: Vec<Option<Client>> = (0..names.len()).map(|_| None).collect();
    let observer = server.user("observer");
    let check = |model: &[usize], when: &str| {
        let want: Vec<&str> = model.iter().map(|&i| names[i].as_str()).collect();
        wait_for(when, PATIENCE, || {
            (online(&server, &observer) == want).then_some(())
        });
    };
    // Everyone joins; every other one leaves; some come back; repeat, so
    // that holes in the server's list are squeezed out on the way.
    for round in 0..3 {
        for i in 0..names.len() {
            if sockets[i].is_none() && (round == 0 || i % 3 == round) {
                sockets[i] = Some(open(&server, &tokens[i]));
                model.push(i);
            }
        }
        check(&model, &format!("joins of round {round}"));
        for i in (round..names.len()).step_by(2) {
            if sockets[i].take().is_some() {
                model.retain(|&m| m != i);
            }
        }
        check(&model, &format!("leaves of round {round}"));
    }
    assert!(!model.is_empty());
}
