//! `GET /api/events` (SPEC §13): a Server-Sent Events stream of the
//! events its user may see, resumable with `Last-Event-ID`, pinged,
//! limited per user and per output queue, ended cleanly at logout and
//! shutdown, and never a sign that its user is online.

mod util;

use serde_json::{Value, json};
use std::io::Write;
use util::chat::{next, post, send_ok};
use util::sse::{self, Block, Stream};
use util::ws::{self, Client, join};
use util::{PATIENCE, Server, wait_for};

/// The next event of `stream` that is not in general (the test's own
/// noise, such as a marker message, is in general).
fn next_data(stream: &mut Stream) -> Value {
    stream.data()
}

/// A general message from `c`, sent for its ack; its id.
fn say(c: &mut Client, text: &str) -> i64 {
    send_ok(c, json!({ "message": text }))
}

/// `piratchat_open_connections{kind="stream"}`.
fn open_streams(s: &Server) -> u64 {
    s.metric(r#"piratchat_open_connections{kind="stream"}"#)
}

#[test]
fn a_stream_carries_the_websocket_frames_with_their_ids() {
    let s = Server::start(&[]);
    let (ta, tb, tc) = (s.user("ann"), s.user("ben"), s.user("cat"));
    let mut stream = sse::open(&s, &ta, None);
    assert_eq!(
        stream.head.header("content-type"),
        Some("text/event-stream")
    );
    assert_eq!(stream.head.header("cache-control"), Some("no-cache"));
    assert_eq!(stream.head.header("x-accel-buffering"), Some("no"));
    assert_eq!(stream.head.header("transfer-encoding"), Some("chunked"));
    assert_eq!(stream.head.header("content-length"), None);

    let mut ben = ws::open(&s, &tb);
    let mut cat = ws::open(&s, &tc);
    assert_eq!(ben.json(), join("cat"));
    let id = say(&mut ben, "hello");
    // Exactly the frame a WebSocket gets.
    let frame = next(&mut cat);
    let data = next_data(&mut stream);
    assert_eq!(data, frame);
    assert_eq!(data["id"], id);
    assert_eq!(data["message"], "hello");

    // A room: the membership event, then its messages.
    let r = post(&s, &ta, "/api/rooms", r#"{"name":"rust"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let joined = next_data(&mut stream);
    assert_eq!(
        (&joined["event"], &joined["room"], &joined["username"]),
        (&json!("room_join"), &json!("rust"), &json!("ann"))
    );
    assert_eq!(post(&s, &tb, "/api/rooms/rust/join", "").status, 200);
    assert_eq!(next_data(&mut stream)["username"], "ben");
    let id = send_ok(&mut ben, json!({"message": "in rust", "room": "rust"}));
    let data = next_data(&mut stream);
    assert_eq!(
        (data["id"].as_i64(), &data["room"]),
        (Some(id), &json!("rust"))
    );

    // Edits, reactions and deletions are events too, each with its id.
    let edit = send_ok(&mut ben, json!({"edit": id, "message": "edited"}));
    let data = next_data(&mut stream);
    assert_eq!(
        (data["event"].as_str(), data["id"].as_i64()),
        (Some("edit"), Some(edit))
    );
    send_ok(&mut ben, json!({"react": id, "emoji": "👍"}));
    assert_eq!(next_data(&mut stream)["event"], "react");
    send_ok(&mut ben, json!({"delete": id}));
    assert_eq!(next_data(&mut stream)["event"], "delete");
}

#[test]
fn direct_messages_reach_only_their_participants() {
    let s = Server::start(&[]);
    let (ta, tb, tc) = (s.user("ann"), s.user("ben"), s.user("cat"));
    let mut ann_stream = sse::open(&s, &ta, None);
    let mut ben_stream = sse::open(&s, &tb, None);
    let mut cat_stream = sse::open(&s, &tc, None);
    let mut ann = ws::open(&s, &ta);
    let id = send_ok(&mut ann, json!({"message": "psst", "to": "ben"}));
    for stream in [&mut ben_stream, &mut ann_stream] {
        let data = next_data(stream);
        assert_eq!(
            (data["id"].as_i64(), &data["to"]),
            (Some(id), &json!("ben"))
        );
    }
    // Cat's next event is the one after: the direct message passed her by.
    let after = say(&mut ann, "everyone");
    let data = next_data(&mut cat_stream);
    assert_eq!(data["id"].as_i64(), Some(after), "{data}");
}

#[test]
fn a_private_rooms_events_reach_only_its_members() {
    let s = Server::start(&[]);
    let (ta, tb, tc) = (s.user("ann"), s.user("ben"), s.user("cat"));
    let mut ben_stream = sse::open(&s, &tb, None);
    let mut cat_stream = sse::open(&s, &tc, None);
    let r = post(&s, &ta, "/api/rooms", r#"{"name":"den","private":true}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let r = post(&s, &ta, "/api/rooms/den/invite", r#"{"username":"ben"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    // Ben's open stream follows his new membership at once.
    assert_eq!(next_data(&mut ben_stream)["event"], "room_join");
    let mut ann = ws::open(&s, &ta);
    let id = send_ok(&mut ann, json!({"message": "secret", "room": "den"}));
    assert_eq!(next_data(&mut ben_stream)["id"].as_i64(), Some(id));
    let after = say(&mut ann, "public");
    assert_eq!(next_data(&mut cat_stream)["id"].as_i64(), Some(after));
    assert_eq!(next_data(&mut ben_stream)["id"].as_i64(), Some(after));

    // Leaving: the leave reaches the leaver's stream, then nothing more.
    assert_eq!(post(&s, &tb, "/api/rooms/den/leave", "").status, 200);
    assert_eq!(next_data(&mut ben_stream)["event"], "room_leave");
    send_ok(&mut ann, json!({"message": "gone", "room": "den"}));
    let after = say(&mut ann, "public again");
    assert_eq!(next_data(&mut ben_stream)["id"].as_i64(), Some(after));
}

#[test]
fn a_cut_stream_resumes_with_last_event_id_without_gap_or_duplicate() {
    let s = Server::start(&["--chat-burst", "0"]);
    let (ta, tb) = (s.user("ann"), s.user("ben"));
    const TOTAL: usize = 300;
    let writer = {
        let mut ben = ws::open(&s, &tb);
        std::thread::spawn(move || {
            (0..TOTAL)
                .map(|i| say(&mut ben, &format!("m{i}")))
                .collect::<Vec<i64>>()
        })
    };
    let mut stream = sse::open(&s, &ta, Some(0));
    let mut got: Vec<i64> = Vec::new();
    let mut cuts = 0;
    while got.len() < TOTAL {
        let data = stream.data();
        got.push(data["id"].as_i64().unwrap());
        assert_eq!(data["message"], format!("m{}", got.len() - 1), "in order");
        if got.len().is_multiple_of(70) {
            // Cut while the writer keeps going; resume after the last id.
            let last = got.last().unwrap().to_string();
            stream = sse::try_open(&s, "/api/events?since=0", &ta, &[("Last-Event-ID", &last)])
                .unwrap_or_else(|r| panic!("{r:?}"));
            cuts += 1;
        }
    }
    assert_eq!(cuts, TOTAL / 70);
    let sent = writer.join().unwrap();
    assert_eq!(got, sent, "every message once, in order");
}

#[test]
fn too_far_behind_is_told_to_resync() {
    let s = Server::start(&["--resume-max", "3", "--chat-burst", "0"]);
    let (ta, tb) = (s.user("ann"), s.user("ben"));
    let mut ben = ws::open(&s, &tb);
    let ids: Vec<i64> = (0..5).map(|i| say(&mut ben, &format!("m{i}"))).collect();

    let mut behind = sse::open(&s, &ta, Some(0));
    let (id, event, data) = behind.event();
    assert_eq!(
        (id, event.as_str(), data),
        (None, "resync", json!({"event": "resync"}))
    );
    // Then live, like a resynced socket.
    let live = say(&mut ben, "live");
    assert_eq!(behind.data()["id"].as_i64(), Some(live));

    // Within the limit: exactly what was missed.
    let mut near = sse::open(&s, &ta, Some(ids[2]));
    assert_eq!(near.data()["id"].as_i64(), Some(ids[3]));
    assert_eq!(near.data()["id"].as_i64(), Some(ids[4]));
    assert_eq!(near.data()["id"].as_i64(), Some(live));
}

#[test]
fn a_fifth_stream_is_refused_and_sockets_are_not_counted() {
    let s = Server::start(&[]);
    let ta = s.user("ann");
    let mut streams: Vec<Stream> = (0..4).map(|_| sse::open(&s, &ta, None)).collect();
    let refused = sse::try_open(&s, "/api/events", &ta, &[])
        .err()
        .expect("refused");
    assert_eq!(
        (refused.status, refused.error()),
        (409, "too_many_streams".into())
    );
    // The one-socket rule is the sockets' own: the WebSocket still opens.
    let _ws = ws::open(&s, &ta);
    // Closing one makes room for another.
    streams.pop();
    // Held (not dropped) while the gauge is read, or it could count 3.
    let _fifth = wait_for("a free stream slot", PATIENCE, || {
        sse::try_open(&s, "/api/events", &ta, &[]).ok()
    });
    assert_eq!(open_streams(&s), 4);
}

#[test]
fn errors_are_json_with_their_codes() {
    let s = Server::start(&[]);
    let ta = s.user("ann");
    let r = s.get("/api/events", None);
    assert_eq!((r.status, r.error()), (422, "missing_session".into()));
    let r = s.get("/api/events", Some("nope"));
    assert_eq!((r.status, r.error()), (401, "invalid_session".into()));
    for (target, extra) in [
        ("/api/events?since=-1", None),
        ("/api/events?since=x", None),
        ("/api/events", Some("12a")),
    ] {
        let headers: Vec<(&str, &str)> = extra.iter().map(|v| ("Last-Event-ID", *v)).collect();
        let r = sse::try_open(&s, target, &ta, &headers)
            .err()
            .expect("refused");
        assert_eq!(
            (r.status, r.error()),
            (422, "invalid_request".into()),
            "{target}"
        );
    }
    let cookie = format!("session={ta}");
    let mut conn = s.connect();
    let head = util::raw("HEAD", "/api/events", &[("Cookie", &cookie)], "");
    conn.write_all(head.as_bytes()).unwrap();
    let r = util::read_response_to(&mut conn, true).expect("a response");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    assert_eq!(open_streams(&s), 0);
}

#[test]
fn a_stream_over_its_output_limit_is_closed_while_the_others_keep_receiving() {
    let s = Server::start(&["--max-output-bytes", "64KiB", "--chat-burst", "0"]);
    let (ta, tb, tw, ts) = (s.user("ann"), s.user("ben"), s.user("wri"), s.user("slow"));
    let mut reader = sse::open(&s, &ta, None);
    let mut ben = ws::open(&s, &tb);
    let mut writer = ws::open(&s, &tw);
    assert_eq!(ben.json(), join("wri"));
    // Never read from: the kernel buffers fill, then its queue.
    let _slow = sse::open(&s, &ts, None);
    assert_eq!(open_streams(&s), 2);
    let body = "😀".repeat(290);
    let mut sent = 0usize;
    let check = |n: usize, reader: &mut Stream, ben: &mut Client| {
        let text = format!("{n:06}{body}");
        assert_eq!(reader.data()["message"], text, "the stream, in order");
        assert_eq!(next(ben)["message"], text, "the socket, in order");
    };
    let mut after_drop = 0;
    while after_drop < 20 {
        assert!(sent < 40_000, "the slow stream was never dropped");
        for _ in 0..16 {
            say(&mut writer, &format!("{sent:06}{body}"));
            check(sent, &mut reader, &mut ben);
            sent += 1;
        }
        if open_streams(&s) == 1 {
            after_drop += 1;
        }
    }
    let closed = s.metric(r#"piratchat_connections_closed_total{cause="slow_consumer"}"#);
    assert_eq!(closed, 1);
}

#[test]
fn a_quiet_stream_is_pinged() {
    let s = Server::start(&["--ping-interval", "200ms"]);
    let ta = s.user("ann");
    let mut stream = sse::open(&s, &ta, None);
    for _ in 0..2 {
        assert_eq!(stream.next_block(), Some(Block::Comment("ping".into())));
    }
}

#[test]
fn a_stream_does_not_make_its_user_online() {
    let s = Server::start(&[]);
    let (ta, tb) = (s.user("ann"), s.user("ben"));
    let mut ben = ws::open(&s, &tb);
    let _stream = sse::open(&s, &ta, None);
    assert_eq!(ws::online(&s, &tb), ["ben"]);
    let me = s.get("/api/user/@me", Some(&ta)).json();
    assert_eq!((&me["online"], &me["sockets"]), (&json!(false), &json!(0)));
    // No join went out for the stream: the first thing Ben hears of Ann is
    // her socket's.
    let _ann = ws::open(&s, &ta);
    assert_eq!(ben.json(), join("ann"));
    assert_eq!(ws::online(&s, &tb), ["ben", "ann"]);
}

#[test]
fn logout_ends_the_streams_of_its_session() {
    let s = Server::start(&[]);
    let ta = s.user("ann");
    let mut stream = sse::open(&s, &ta, None);
    let cookie = format!("session={ta}");
    assert_eq!(
        s.request("POST", "/api/logout", &[("Cookie", &cookie)], "")
            .status,
        200
    );
    assert!(stream.ends_cleanly(), "the last chunk before the close");
    wait_for("the stream gone", PATIENCE, || {
        (open_streams(&s) == 0).then_some(())
    });
}

#[test]
fn shutdown_ends_every_stream_cleanly() {
    let mut s = Server::start(&[]);
    let (ta, tb) = (s.user("ann"), s.user("ben"));
    let mut chunked = sse::open(&s, &ta, None);
    let mut plain = sse::open_with(&s, &sse::request("/api/events", &tb, &[], true))
        .unwrap_or_else(|r| panic!("{r:?}"));
    assert_eq!(plain.head.header("transfer-encoding"), None);
    assert_eq!(plain.head.header("connection"), Some("close"));
    wait_for("both streams", PATIENCE, || {
        (open_streams(&s) == 2).then_some(())
    });
    s.signal("-TERM");
    assert!(chunked.ends_cleanly(), "the last chunk, then the close");
    // HTTP/1.0 has no last chunk: the close is the end.
    assert!(!plain.ends_cleanly());
    assert_eq!(s.wait_exit(), Some(0));
}

#[test]
fn pipelined_bytes_after_the_request_are_ignored_and_its_close_ends_it() {
    let s = Server::start(&[]);
    let ta = s.user("ann");
    let req = sse::request("/api/events", &ta, &[], false);
    let mut stream = sse::open_with(&s, &format!("{req}GET /healthz HTTP/1.1\r\n\r\n"))
        .unwrap_or_else(|r| panic!("{r:?}"));
    wait_for("the stream", PATIENCE, || {
        (open_streams(&s) == 1).then_some(())
    });
    stream.sock.write_all(b"anything at all").unwrap();
    stream.sock.shutdown(std::net::Shutdown::Both).unwrap();
    wait_for("the stream gone", PATIENCE, || {
        (open_streams(&s) == 0).then_some(())
    });
}
