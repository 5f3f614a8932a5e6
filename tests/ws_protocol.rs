//! Black-box tests of the WebSocket layer under the chat (SPEC §5.3–§5.5,
//! §5.8, §6): protocol-violation close codes, ping and pong, keep-alive and
//! dead peers, the slow-consumer limit (after redis's `obuf-limits` test),
//! and the `/echo` endpoint.
//!
//! Peers that misbehave are raw `TcpStream`s that completed the handshake:
//! they write hand-made frames, or never read at all.

mod util;

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};
use util::ws::{
    Client, Got, ack, join, leave, masked, masked_raw, msg, online, open, raw_open, try_open,
};
#[allow(unused_imports)]
use util::{PATIENCE, Resp, Server, closed_by_peer, read_response, wait_for};

/// Long enough for a frame that was going to arrive to have arrived.
const SHORT: Duration = Duration::from_millis(200);

/// `sender` says `text`; each of `others` must get it as its very next
/// frame, and the sender its ack.
fn say_and_check(sender: &mut Client, name: &str, text: &str, others: &mut [&mut Client]) {
    sender.say(text);
    for other in others.iter_mut() {
        assert_eq!(other.json(), msg(text, name));
    }
    assert_eq!(sender.json(), ack());
}

/// A chat frame of exactly `len` bytes.
fn chat_json(len: usize) -> Vec<u8> {
    let frame = format!(r#"{{"message":"{}"}}"#, "x".repeat(len - 14));
    assert_eq!(frame.len(), len);
    frame.into_bytes()
}

/// VmRSS of process `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn protocol_violations_close_with_their_code_and_send_leave() {
    let server = Server::start(&["--ws-max-message-bytes", "1KiB"]);
    let tw = server.user("watcher");
    let mut watcher = open(&server, &tw);
    let half = chat_json(600);
    let mut fragmented = masked_raw(0x01, &half[..300]); // text, no FIN
    fragmented.extend(masked_raw(0x00, &half[300..])); // continuation, no FIN
    fragmented.extend(masked_raw(0x80, &[b'x'; 700])); // continuation, FIN
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("reservedOpcode", masked(0x3, b"hi"), 1002),
        ("rsvBit", masked_raw(0x80 | 0x40 | 0x1, b"hi"), 1002),
        ("badUtf8", masked(0x1, &[b'"', 0xff, 0xfe, b'"']), 1007),
        ("oversized", masked(0x1, &chat_json(2000)), 1009),
        ("oversizedFragments", fragmented, 1009),
    ];
    for (name, bytes, code) in cases {
        let token = server.user(name);
        let mut s = raw_open(&server, &token);
        assert_eq!(watcher.json(), join(name));
        s.write_all(&bytes).unwrap();
        let mut c = Client {
            ws: WebSocket::from_raw_socket(s, Role::Client, None),
        };
        let (got, _reason) = c.close_code();
        assert_eq!(got, code, "close code for {name}");
        assert_eq!(watcher.json(), leave(name), "after {name}");
        // The server does not wait for a close reply after a violation.
        let mut sock = c.ws.get_ref().try_clone().unwrap();
        assert!(
            closed_by_peer(&mut sock),
            "{name}: the connection stayed open"
        );
        assert_eq!(online(&server, &tw), ["watcher"], "after {name}");
        // The user is free to connect again at once.
        let again = open(&server, &token);
        assert_eq!(watcher.json(), join(name));
        drop(again);
        assert_eq!(watcher.json(), leave(name));
    }
    // Every leave came exactly once: the next frame is a later join.
    let tz = server.user("zed");
    let mut z = open(&server, &tz);
    assert_eq!(watcher.json(), join("zed"));
    say_and_check(&mut z, "zed", "all fine", &mut [&mut watcher]);
    // A message of exactly the limit is fine (252 emoji: under 300 chars).
    let text = format!("xx{}", "😀".repeat(252));
    let frame = json!({ "message": text }).to_string();
    assert_eq!(frame.len(), 1024);
    z.send_text(&frame);
    assert_eq!(watcher.json(), msg(&text, "zed"));
    assert_eq!(z.json(), ack());
}

#[test]
fn client_ping_gets_pong_with_its_payload() {
    let server = Server::start(&[]);
    let (ta, tb) = (server.user("alice"), server.user("bob"));
    let mut a = open(&server, &ta);
    let mut b = open(&server, &tb);
    assert_eq!(a.json(), join("bob"));
    a.ws.send(Message::Ping(b"are you there"[..].into()))
        .unwrap();
    a.ws.get_ref().set_read_timeout(Some(PATIENCE)).unwrap();
    match a.ws.read().unwrap() {
        Message::Pong(p) => assert_eq!(&p[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    // A ping is not a chat message: nothing reaches bob.
    say_and_check(&mut a, "alice", "after ping", &mut [&mut b]);
    // An unsolicited pong is simply ignored.
    a.ws.send(Message::Pong(b"x"[..].into())).unwrap();
    say_and_check(&mut a, "alice", "after pong", &mut [&mut b]);
}

#[test]
fn server_pings_and_closes_a_peer_that_never_answers() {
    let server = Server::start(&["--ping-interval", "300ms", "--ping-timeout", "300ms"]);
    let (ta, td) = (server.user("alive"), server.user("dead"));
    let mut alive = open(&server, &ta);
    let opened = Instant::now();
    // A peer that completes the handshake and then never reads or writes.
    let mut dead = raw_open(&server, &td);
    assert_eq!(alive.json(), join("dead"));

    // The client that answers (tungstenite replies to pings while reading)
    // is pinged again and again and stays; the dead one is closed.
    let mut pings = 0;
    let mut left_after = None;
    wait_for("four pings and the dead peer's leave", PATIENCE, || {
        match alive.next_within(Duration::from_millis(50)) {
            Some(Got::Ping) => pings += 1,
            Some(Got::Json(v)) => {
                assert_eq!(v, leave("dead"));
                assert!(left_after.is_none(), "a second leave");
                left_after = Some(opened.elapsed());
            }
            Some(other) => panic!("the answering client got {other:?}"),
            None => {}
        }
        (pings >= 4 && left_after.is_some()).then_some(())
    });
    // Not before a ping interval and a ping timeout have passed (less the
    // server clock's whole milliseconds, rounded down at each step).
    let left_after = left_after.unwrap();
    assert!(
        left_after >= Duration::from_millis(595),
        "closed after {left_after:?}"
    );
    assert_eq!(online(&server, &ta), ["alive"]);
    say_and_check(&mut alive, "alive", "still here", &mut []);

    // The dead peer got a ping, then the connection ended.
    let mut got = Vec::new();
    dead.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = dead.read_to_end(&mut got);
    assert!(
        got.starts_with(&[0x89, 0x00]),
        "expected a ping first, got {got:?}"
    );

    // The dead user may come back: the old socket is entirely gone.
    let mut back = open(&server, &td);
    assert_eq!(alive.json(), join("dead"));
    say_and_check(&mut back, "dead", "back", &mut [&mut alive]);
}

#[test]
fn regression_bytes_of_an_unfinished_frame_count_as_life() {
    // SPEC §5.5: a pinged socket is closed when nothing *at all* arrives in
    // time; a frame still arriving byte by byte is something.
    let server = Server::start(&["--ping-interval", "300ms", "--ping-timeout", "300ms"]);
    let (tw, ts) = (server.user("watcher"), server.user("slow"));
    let mut watcher = open(&server, &tw);
    // Never reads (so never answers a ping), but keeps sending.
    let mut s = raw_open(&server, &ts);
    assert_eq!(watcher.json(), join("slow"));
    let frame = masked(0x1, br#"{"message":"dribbled"}"#);
    let started = Instant::now();
    for (i, b) in frame.iter().enumerate() {
        if i > 0 {
            // 60 ms a byte: 29 bytes take far longer than ping + timeout.
            // Pacing by reading: nothing (no leave) may arrive meanwhile.
            let next = Instant::now() + Duration::from_millis(60);
            while Instant::now() < next {
                let left = next.saturating_duration_since(Instant::now());
                watcher.quiet(left.max(Duration::from_millis(1)));
            }
        }
        s.write_all(std::slice::from_ref(b)).unwrap();
    }
    assert!(started.elapsed() > Duration::from_millis(1500));
    assert_eq!(watcher.json(), msg("dribbled", "slow"));
}

#[test]
fn slow_consumer_is_dropped_and_the_others_get_every_message() {
    let server = Server::start(&["--max-output-bytes", "64KiB", "--chat-burst", "0"]);
    let (ta, tb, ts) = (server.user("a"), server.user("b"), server.user("slow"));
    let mut a = open(&server, &ta);
    let mut b = open(&server, &tb);
    assert_eq!(a.json(), join("b"));
    // Never read from: the kernel buffers fill, then its queue.
    let slow = raw_open(&server, &ts);
    assert_eq!(a.json(), join("slow"));
    assert_eq!(b.json(), join("slow"));
    let pid = server.child.id();
    let rss_before = rss_kib(pid);

    let dropped = Arc::new(AtomicBool::new(false));
    let pump = |mut c: Client, me: &'static str, other: &'static str| {
        let dropped = dropped.clone();
        std::thread::spawn(move || {
            // 300 scalar values of 4 bytes: the biggest frame the chat allows.
            let body = "😀".repeat(294);
            const BATCH: usize = 16;
            let (mut sent, mut from_other, mut leaves) = (0usize, 0usize, 0usize);
            let mut extra_batches = 5;
            let check = |v: Value, from_other: &mut usize, leaves: &mut usize| {
                if v == leave("slow") {
                    *leaves += 1;
                    dropped.store(true, Ordering::SeqCst);
                } else {
                    assert_eq!(v["author"], other, "{me} got {v}");
                    let n: usize = v["message"].as_str().unwrap()[..6].parse().unwrap();
                    assert_eq!(n, *from_other, "{me}: messages from {other} in order");
                    *from_other += 1;
                }
            };
            while extra_batches > 0 {
                assert!(sent < 40_000, "{me}: the slow consumer was never dropped");
                for _ in 0..BATCH {
                    c.say(&format!("{sent:06}{body}"));
                    sent += 1;
                }
                let mut acks = 0;
                while acks < BATCH {
                    let v = c.json();
                    if v == ack() {
                        acks += 1;
                    } else {
                        check(v, &mut from_other, &mut leaves);
                    }
                }
                if dropped.load(Ordering::SeqCst) {
                    extra_batches -= 1;
                }
            }
            (c, sent, from_other, leaves)
        })
    };
    let ha = pump(a, "a", "b");
    let hb = pump(b, "b", "a");
    let (mut a, sent_a, mut a_got, mut a_leaves) = ha.join().unwrap();
    let (mut b, sent_b, mut b_got, mut b_leaves) = hb.join().unwrap();
    // Drain what is still on its way: every message, exactly once each.
    for (c, got, leaves, want, other) in [
        (&mut a, &mut a_got, &mut a_leaves, sent_b, "b"),
        (&mut b, &mut b_got, &mut b_leaves, sent_a, "a"),
    ] {
        while *got < want || *leaves == 0 {
            let v = c.json();
            if v == leave("slow") {
                *leaves += 1;
            } else {
                assert_eq!(v["author"], other);
                let n: usize = v["message"].as_str().unwrap()[..6].parse().unwrap();
                assert_eq!(n, *got);
                *got += 1;
            }
        }
        assert_eq!(*leaves, 1);
        c.quiet(SHORT);
    }
    assert_eq!(online(&server, &ta), ["a", "b"]);
    let bytes_each = (sent_a + sent_b) * 1200;
    let rss_after = rss_kib(pid);
    let grew = rss_after.saturating_sub(rss_before);
    eprintln!(
        "sent {} + {} messages (~{} MiB to the slow consumer), rss {rss_before} -> {rss_after} KiB",
        sent_a,
        sent_b,
        bytes_each >> 20
    );
    assert!(grew < 64 * 1024, "rss grew by {grew} KiB");

    // The slow consumer's connection ends once it drains what the kernel holds.
    let mut slow = slow;
    slow.set_read_timeout(Some(PATIENCE)).unwrap();
    assert!(
        closed_by_peer(&mut slow),
        "the slow consumer is still connected"
    );
}

#[test]
fn echo_endpoint_echoes_text_and_binary_without_a_session() {
    let server = Server::start(&["--echo-endpoint"]);
    let mut c = try_open(&server, "/echo", &[]).unwrap_or_else(|r| panic!("refused: {r:?}"));
    c.ws.get_ref().set_read_timeout(Some(PATIENCE)).unwrap();
    let big_text = "é".repeat(50_000);
    let messages = [
        Message::Text("héllo ✓ not json".into()),
        Message::Text("".into()),
        Message::Binary(vec![0, 1, 2, 0xff].into()),
        Message::Binary(Vec::new().into()),
        Message::Text(big_text.into()),
        Message::Binary(vec![7; 300_000].into()),
    ];
    for m in messages {
        c.ws.send(m.clone()).unwrap();
        let got = c.ws.read().unwrap();
        assert_eq!(got, m);
    }
    c.ws.send(Message::Ping(b"p"[..].into())).unwrap();
    assert_eq!(c.ws.read().unwrap(), Message::Pong(b"p"[..].into()));
    // An echo socket is not a chat user.
    let t = server.user("alice");
    assert!(online(&server, &t).is_empty());
    c.ws.close(Some(tungstenite::protocol::CloseFrame {
        code: 1000.into(),
        reason: "bye".into(),
    }))
    .unwrap();
    match c.ws.read() {
        Ok(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 1000),
        other => panic!("expected the close reply, got {other:?}"),
    }

    let plain = Server::start(&[]);
    let r = try_open(&plain, "/echo", &[])
        .err()
        .expect("no /echo without the flag");
    assert_eq!((r.status, r.error()), (404, "not_found".into()));
}

#[test]
fn a_full_size_frame_is_read_whole_through_the_small_read_buffer() {
    // 16 KiB is the default message limit, sixteen times the read buffer.
    let server = Server::start(&[]);
    let (ta, tb) = (server.user("alice"), server.user("bob"));
    let mut a = open(&server, &ta);
    let mut b = open(&server, &tb);
    assert_eq!(a.json(), join("bob"));
    let text = "é".repeat(300);
    let mut frame = serde_json::json!({ "message": text }).to_string();
    // Padding whitespace is valid JSON: the frame grows, the text does not.
    frame.insert_str(1, &" ".repeat(16 * 1024 - frame.len()));
    assert_eq!(frame.len(), 16 * 1024);
    a.send_text(&frame);
    assert_eq!(a.json(), ack());
    assert_eq!(b.json(), msg(&text, "alice"));
    // One byte more is over the limit.
    a.send_text(&format!(" {frame}"));
    assert_eq!(a.close_code().0, 1009);
}
