//! Chat rules, step by step, against a recording outbox.

use super::*;

/// Records what the chat asked for, as (recipient, json) and closes.
#[derive(Default)]
struct Rec {
    sent: Vec<(u64, String)>,
    closed: Vec<(u64, u16, &'static str)>,
}

impl Outbox for Rec {
    fn deliver(&mut self, to: impl Iterator<Item = ConnId>, json: &[u8]) {
        let json = String::from_utf8(json.to_vec()).unwrap();
        self.sent.extend(to.map(|c| (c.0, json.clone())));
    }
    fn close(&mut self, conn: ConnId, code: u16, reason: &'static str) {
        self.closed.push((conn.0, code, reason));
    }
}

impl Rec {
    fn take(&mut self) -> Vec<(u64, String)> {
        std::mem::take(&mut self.sent)
    }
}

fn cfg() -> ChatConfig {
    ChatConfig {
        session_ttl: Millis(1000),
        sessions_per_user: 3,
        max_chars: 300,
        burst: 3,
        rate_per_sec: 1,
        register_limit: 2,
        register_window: Millis(10_000),
        login_fail_limit: 2,
        login_window: Millis(10_000),
        dedupe_window: Millis(60_000),
    }
}

fn token(n: u64) -> String {
    format!("{n:032}")
}

/// A chat with users 1..=n logged in (session token(i)), none connected.
fn logged_in(n: u64) -> Chat {
    let mut chat = Chat::new(cfg(), Millis(0), 1_000_000);
    for i in 1..=n {
        chat.login(
            SessionKey::of(&token(i)),
            UserId(i as i64),
            &format!("u{i}"),
            Millis(0),
        );
    }
    chat.check();
    chat
}

/// Users 1..=n logged in and connected on ConnId(i), in order.
fn ws_open(n: u64) -> (Chat, Rec) {
    let mut chat = logged_in(n);
    let mut out = Rec::default();
    for i in 1..=n {
        chat.ws_open(ConnId(i), &SessionKey::of(&token(i)), Millis(0));
        chat.flush_presence(&mut out);
        chat.check();
    }
    out.take();
    (chat, out)
}

#[test]
fn join_goes_to_the_others_only() {
    let mut chat = logged_in(3);
    let mut out = Rec::default();
    chat.ws_open(ConnId(1), &SessionKey::of(&token(1)), Millis(0));
    chat.flush_presence(&mut out);
    assert_eq!(out.take(), []);
    chat.ws_open(ConnId(2), &SessionKey::of(&token(2)), Millis(0));
    assert_eq!(out.take(), [], "presence waits for the end of the turn");
    chat.flush_presence(&mut out);
    assert_eq!(
        out.take(),
        [(1, r#"{"event":"join","username":"u2"}"#.to_string())]
    );
    chat.ws_open(ConnId(3), &SessionKey::of(&token(3)), Millis(0));
    chat.flush_presence(&mut out);
    let to: Vec<u64> = out.take().iter().map(|s| s.0).collect();
    assert_eq!(to, [1, 2]);
    assert_eq!(chat.online_names().collect::<Vec<_>>(), ["u1", "u2", "u3"]);
}

/// Several opens in one turn go out as one batch: a socket open before
/// them gets every `join`, a socket opened in the turn only the ones after
/// its own, in order; a socket opened and closed in the same turn is
/// announced and left, to the others only.
#[test]
fn the_joins_of_one_turn_go_out_together() {
    let mut chat = logged_in(5);
    let mut out = Rec::default();
    let open = |chat: &mut Chat, i: u64| {
        chat.ws_open(ConnId(i), &SessionKey::of(&token(i)), Millis(0));
    };
    open(&mut chat, 1);
    chat.flush_presence(&mut out);
    for i in 2..=5 {
        open(&mut chat, i);
    }
    chat.ws_closed(ConnId(4), Millis(0));
    chat.check();
    assert_eq!(out.take(), []);
    chat.flush_presence(&mut out);
    let frame = |e: &str, u: u64| format!(r#"{{"event":"{e}","username":"u{u}"}}"#);
    let got = out.take();
    let to = |c: u64| -> Vec<String> {
        got.iter()
            .filter(|d| d.0 == c)
            .map(|d| d.1.clone())
            .collect()
    };
    let all = [
        frame("join", 2),
        frame("join", 3),
        frame("join", 4),
        frame("join", 5),
        frame("leave", 4),
    ];
    assert_eq!(to(1), all);
    assert_eq!(to(2), all[1..]);
    assert_eq!(to(3), all[2..]);
    assert_eq!(to(4), [] as [String; 0], "closed in the turn");
    assert_eq!(to(5), all[4..]);
    chat.flush_presence(&mut out);
    assert_eq!(out.take(), [], "delivered once");
}

#[test]
fn message_is_broadcast_then_acked() {
    let (mut chat, mut out) = ws_open(3);
    let accepted = chat.ws_text(ConnId(2), r#"{"message":"hi"}"#, Millis(1), &mut out);
    let accepted = accepted.expect("accepted");
    assert_eq!(
        (accepted.id, accepted.ts, accepted.text.as_str()),
        (1, 1_000_001, "hi")
    );
    let msg = r#"{"message":"hi","author":"u2","id":1,"ts":1000001}"#.to_string();
    let ack = r#"{"status":true,"id":1}"#.to_string();
    assert_eq!(out.take(), [(1, msg.clone()), (3, msg), (2, ack)]);
    assert_eq!(chat.stats.messages_delivered, 2);
    // The turn's end names the sockets acked in it (for a failed commit).
    assert_eq!(chat.end_turn(true), [ConnId(2)]);
    assert_eq!(chat.end_turn(true), []);
    assert_eq!(chat.stored_id(), 1);
}

#[test]
fn failed_commit_forgets_the_turns_client_ids_but_not_its_ids() {
    let (mut chat, mut out) = ws_open(2);
    let frame = r#"{"message":"x","client_id":"c-1"}"#;
    let first = chat
        .ws_text(ConnId(1), frame, Millis(1_000), &mut out)
        .unwrap();
    assert_eq!(chat.end_turn(true), [ConnId(1)]);
    let lost = r#"{"message":"y","client_id":"c-2"}"#;
    let unstored = chat
        .ws_text(ConnId(1), lost, Millis(2_000), &mut out)
        .unwrap();
    // A resend of a stored message in the failed turn: its ack stands.
    assert!(
        chat.ws_text(ConnId(2), frame, Millis(2_000), &mut out)
            .is_some()
    );
    assert!(
        chat.ws_text(ConnId(1), frame, Millis(2_000), &mut out)
            .is_none()
    );
    out.take();
    assert_eq!(chat.end_turn(false), [ConnId(1), ConnId(2)]);
    assert_eq!(chat.stored_id(), first.id);
    // The resend of the unstored one is a new message with a new id; the
    // stored one is still recognized.
    let again = chat
        .ws_text(ConnId(1), lost, Millis(3_000), &mut out)
        .unwrap();
    assert!(again.id > unstored.id + 1, "{again:?} after {unstored:?}");
    assert!(
        chat.ws_text(ConnId(1), frame, Millis(3_000), &mut out)
            .is_none()
    );
    assert_eq!(chat.end_turn(true), [ConnId(1)]);
    // The failed entry's timer does not forget the new entry early.
    let resend =
        |chat: &mut Chat, out: &mut Rec| chat.ws_text(ConnId(1), lost, Millis(62_000), out);
    chat.handle_timeouts(Millis(62_000));
    assert!(resend(&mut chat, &mut out).is_none(), "still remembered");
    chat.handle_timeouts(Millis(63_000));
    assert!(
        resend(&mut chat, &mut out).is_some(),
        "forgotten after its window"
    );
}

#[test]
fn error_acks_go_to_the_sender_only() {
    let cases = [
        ("nope", "invalid_json"),
        (r#"{"message":""}"#, "invalid_message"),
        (r#"{"message":"   "}"#, "invalid_message"),
    ];
    for (frame, code) in cases {
        let (mut chat, mut out) = ws_open(2);
        chat.ws_text(ConnId(1), frame, Millis(1), &mut out);
        let want = format!(r#"{{"status":false,"code":"{code}"}}"#);
        assert_eq!(out.take(), [(1, want)], "{frame}");
        chat.check();
    }
    let (mut chat, mut out) = ws_open(2);
    chat.ws_binary(ConnId(1), Millis(1), &mut out);
    assert_eq!(
        out.take(),
        [(
            1,
            r#"{"status":false,"code":"binary_not_supported"}"#.into()
        )]
    );
    let long = format!(r#"{{"message":"{}"}}"#, "é".repeat(301));
    chat.ws_text(ConnId(1), &long, Millis(1), &mut out);
    assert_eq!(
        out.take(),
        [(1, r#"{"status":false,"code":"message_too_long"}"#.into())]
    );
}

#[test]
fn rate_limit_acks_and_recovers() {
    let (mut chat, mut out) = ws_open(2);
    for _ in 0..3 {
        chat.ws_text(ConnId(1), r#"{"message":"x"}"#, Millis(0), &mut out);
    }
    assert_eq!(out.take().len(), 6, "three broadcasts and three acks");
    chat.ws_text(ConnId(1), r#"{"message":"x"}"#, Millis(0), &mut out);
    assert_eq!(
        out.take(),
        [(1, r#"{"status":false,"code":"rate_limited"}"#.into())]
    );
    chat.ws_text(ConnId(1), r#"{"message":"x"}"#, Millis(1000), &mut out);
    assert_eq!(out.take().len(), 2, "one token a second");
}

#[test]
fn leave_once_whatever_ends_the_socket() {
    let (mut chat, mut out) = ws_open(3);
    chat.ws_closed(ConnId(2), Millis(5));
    chat.flush_presence(&mut out);
    let leave = r#"{"event":"leave","username":"u2"}"#.to_string();
    assert_eq!(out.take(), [(1, leave.clone()), (3, leave)]);
    chat.ws_closed(ConnId(2), Millis(6));
    chat.flush_presence(&mut out);
    assert_eq!(out.take(), []);
    chat.check();
    assert_eq!(chat.online_names().collect::<Vec<_>>(), ["u1", "u3"]);
}

/// Issue 11, defect 4: sockets closing in one turn each told every other
/// socket still listed, also the ones closing in the same turn (n²/2
/// frames). Now a socket closed in the turn is never sent a `leave`, and
/// each survivor gets the turn's leaves once each, as one batch.
#[test]
fn mass_disconnect_leaves_only_reach_the_survivors() {
    let (mut chat, mut out) = ws_open(100);
    for c in 1..=90 {
        chat.ws_closed(ConnId(c), Millis(5));
    }
    chat.check();
    assert_eq!(out.take(), [], "nothing before the turn ends");
    chat.flush_presence(&mut out);
    let sent = out.take();
    assert!(sent.iter().all(|&(to, _)| to > 90), "only survivors hear");
    assert_eq!(sent.len(), 10 * 90, "each survivor hears each leave once");
    let to_91: Vec<String> = sent
        .iter()
        .filter(|(to, _)| *to == 91)
        .map(|(_, json)| json.clone())
        .collect();
    let want: Vec<String> = (1..=90)
        .map(|c| format!(r#"{{"event":"leave","username":"u{c}"}}"#))
        .collect();
    assert_eq!(to_91, want, "in the order they closed");
    chat.flush_presence(&mut out);
    assert_eq!(out.take(), [], "delivered once");
}

/// A `leave` of this turn reaches the others before anything that happens
/// after it: the same user's `join` when they reconnect, a message. The
/// new socket itself hears nothing of it.
#[test]
fn a_pending_leave_goes_out_before_later_frames() {
    let (mut chat, mut out) = ws_open(3);
    chat.ws_closed(ConnId(1), Millis(5));
    chat.ws_open(ConnId(4), &SessionKey::of(&token(1)), Millis(5));
    chat.flush_presence(&mut out);
    let leave = r#"{"event":"leave","username":"u1"}"#.to_string();
    let join = r#"{"event":"join","username":"u1"}"#.to_string();
    assert_eq!(
        out.take(),
        [
            (2, leave.clone()),
            (3, leave.clone()),
            (2, join.clone()),
            (3, join)
        ]
    );
    chat.ws_closed(ConnId(2), Millis(6));
    chat.ws_text(ConnId(3), r#"{"message":"hi"}"#, Millis(6), &mut out);
    let sent = out.take();
    let leave = r#"{"event":"leave","username":"u2"}"#.to_string();
    assert_eq!(sent[..2], [(3, leave.clone()), (4, leave)]);
    assert!(sent[2].1.contains(r#""message":"hi""#), "{sent:?}");
}

#[test]
fn going_away_at_shutdown_tells_nobody() {
    let (mut chat, mut out) = ws_open(3);
    for c in 1..=3 {
        chat.ws_going_away(ConnId(c), Millis(5));
        chat.check();
    }
    assert_eq!(out.take(), []);
    assert_eq!(chat.online_names().count(), 0);
    // The sessions stay, offline, their idle time counting from the close.
    let me = chat.authenticate(Some(&token(2)), Millis(5)).unwrap();
    assert!(!chat.is_online(me.user));
    // Whatever else ends the socket afterwards sends nothing either.
    chat.ws_closed(ConnId(1), Millis(6));
    chat.flush_presence(&mut out);
    assert_eq!(out.take(), []);
}

#[test]
fn logout_closes_the_socket_and_sends_leave_once() {
    let (mut chat, mut out) = ws_open(2);
    chat.logout(&token(1), &mut out);
    assert_eq!(out.closed, [(1, 1000, "logged out")]);
    chat.flush_presence(&mut out);
    assert_eq!(
        out.take(),
        [(2, r#"{"event":"leave","username":"u1"}"#.into())]
    );
    chat.ws_closed(ConnId(1), Millis(1));
    chat.flush_presence(&mut out);
    assert_eq!(out.take(), []);
    assert_eq!(
        chat.authenticate(Some(&token(1)), Millis(1)),
        Err(AuthError::Invalid)
    );
    chat.check();
}

#[test]
fn authenticate_table() {
    let mut chat = logged_in(1);
    assert_eq!(chat.authenticate(None, Millis(0)), Err(AuthError::Missing));
    assert_eq!(
        chat.authenticate(Some(""), Millis(0)),
        Err(AuthError::Missing)
    );
    assert_eq!(
        chat.authenticate(Some("x"), Millis(0)),
        Err(AuthError::Invalid)
    );
    let ok = chat.authenticate(Some(&token(1)), Millis(0)).unwrap();
    assert_eq!((ok.user, &*ok.name), (UserId(1), "u1"));
}

#[test]
fn session_slides_with_activity_and_ends_when_idle() {
    let mut chat = logged_in(1);
    for t in (500..5000).step_by(500) {
        chat.handle_timeouts(Millis(t));
        assert!(
            chat.authenticate(Some(&token(1)), Millis(t)).is_ok(),
            "at {t}"
        );
        chat.check();
    }
    // Last activity at 4500, so the session ends at 5500.
    chat.handle_timeouts(Millis(5499));
    assert_eq!(chat.session_count(), 1);
    chat.handle_timeouts(Millis(5500));
    assert_eq!(
        chat.session_count(),
        0,
        "ended by the timer, without a request"
    );
}

#[test]
fn an_idle_session_is_invalid_even_before_its_timer_runs() {
    let mut chat = logged_in(1);
    assert_eq!(
        chat.authenticate(Some(&token(1)), Millis(1000)),
        Err(AuthError::Invalid)
    );
}

#[test]
fn an_open_socket_keeps_its_session() {
    let (mut chat, _) = ws_open(1);
    for t in (1000..20_000).step_by(1000) {
        chat.handle_timeouts(Millis(t));
    }
    assert_eq!(chat.session_count(), 1);
    chat.ws_closed(ConnId(1), Millis(20_000));
    chat.handle_timeouts(Millis(20_999));
    assert!(chat.authenticate(Some(&token(1)), Millis(20_500)).is_ok());
    chat.handle_timeouts(Millis(21_500));
    assert_eq!(chat.session_count(), 0);
}

#[test]
fn address_limits_through_the_chat() {
    let mut chat = logged_in(0);
    let ip: IpAddr = "198.51.100.7".parse().unwrap();
    for t in 0..2 {
        assert_eq!(
            chat.check_limit(AddressLimit::Register, ip, Millis(t)),
            Ok(())
        );
        chat.record_limit(AddressLimit::Register, ip, Millis(t));
    }
    assert_eq!(
        chat.check_limit(AddressLimit::Register, ip, Millis(2)),
        Err(10)
    );
    assert_eq!(
        chat.check_limit(AddressLimit::LoginFailure, ip, Millis(2)),
        Ok(())
    );
    chat.handle_timeouts(Millis(10_001));
    assert_eq!(
        chat.check_limit(AddressLimit::Register, ip, Millis(10_001)),
        Ok(())
    );
    chat.handle_timeouts(Millis(20_000));
    assert_eq!(
        chat.register_limiter.tracked(),
        0,
        "forgotten after the window"
    );
}

#[test]
fn a_repeated_client_id_is_acked_with_the_first_id_and_not_sent_again() {
    let (mut chat, mut out) = ws_open(2);
    let frame = r#"{"message":"once","client_id":"c-1"}"#;
    let first = chat
        .ws_text(ConnId(1), frame, Millis(10), &mut out)
        .unwrap();
    assert_eq!(out.take().len(), 2);
    // The same user resends (a lost ack): acked again, not broadcast.
    assert!(
        chat.ws_text(ConnId(1), frame, Millis(20), &mut out)
            .is_none()
    );
    let ack = format!(r#"{{"status":true,"id":{}}}"#, first.id);
    assert_eq!(out.take(), [(1, ack)]);
    // Another user's identical client_id is another message.
    assert!(
        chat.ws_text(ConnId(2), frame, Millis(30), &mut out)
            .is_some()
    );
    // After the window it is new again.
    chat.handle_timeouts(Millis(60_010));
    assert!(
        chat.ws_text(ConnId(1), frame, Millis(60_010), &mut out)
            .is_some()
    );
}

#[test]
fn restored_client_ids_and_ids_continue() {
    let (mut chat, mut out) = ws_open(1);
    chat.continue_after(41, i64::MAX - 5);
    chat.restore_client_id(UserId(1), "old", 7, Millis(0));
    assert!(
        chat.ws_text(
            ConnId(1),
            r#"{"message":"x","client_id":"old"}"#,
            Millis(1),
            &mut out
        )
        .is_none()
    );
    let next = chat
        .ws_text(ConnId(1), r#"{"message":"x"}"#, Millis(1), &mut out)
        .unwrap();
    assert_eq!(
        (next.id, next.ts),
        (42, i64::MAX - 5),
        "time never goes back"
    );
    let acks: Vec<String> = out.take().into_iter().map(|(_, j)| j).collect();
    assert_eq!(
        acks,
        [r#"{"status":true,"id":7}"#, r#"{"status":true,"id":42}"#]
    );
}

#[test]
fn the_journal_records_session_changes() {
    let mut chat = logged_in(2);
    let j = chat.journal();
    assert_eq!(j.created.len(), 2);
    j.created.clear();
    chat.authenticate(Some(&token(1)), Millis(5)).unwrap();
    assert!(chat.journal().touched.contains(&SessionKey::of(&token(1))));
    let mut out = Rec::default();
    chat.logout(&token(2), &mut out);
    assert_eq!(chat.journal().ended, [SessionKey::of(&token(2))]);
    chat.handle_timeouts(Millis(2000));
    assert_eq!(chat.journal().ended.len(), 2, "expiry is recorded too");
    assert!(
        chat.journal().touched.is_empty(),
        "an ended session is not touched"
    );
}

#[test]
fn acks_keep_the_order_of_the_frames() {
    let (mut chat, mut out) = ws_open(2);
    // A second apart: the test burst is 3, refilled at one a second.
    let frames = [
        r#"{"message":"a"}"#,
        "nope",
        r#"{"message":"b"}"#,
        r#"{"message":""}"#,
    ];
    for (t, frame) in frames.into_iter().enumerate() {
        chat.ws_text(ConnId(1), frame, Millis(t as u64 * 1000), &mut out);
    }
    chat.ws_binary(ConnId(1), Millis(5000), &mut out);
    let acks: Vec<String> = out
        .take()
        .into_iter()
        .filter(|(c, _)| *c == 1)
        .map(|(_, j)| j)
        .collect();
    assert_eq!(
        acks,
        [
            r#"{"status":true,"id":1}"#,
            r#"{"status":false,"code":"invalid_json"}"#,
            r#"{"status":true,"id":2}"#,
            r#"{"status":false,"code":"invalid_message"}"#,
            r#"{"status":false,"code":"binary_not_supported"}"#,
        ]
    );
}

/// Users 1..=n connected, with names known to the directory, and user 1
/// owner of public room `rust` that users in `members` joined.
fn with_room(n: u64, members: &[u64]) -> (Chat, Rec) {
    let (mut chat, mut out) = ws_open(n);
    for i in 1..=n {
        chat.add_user(UserId(i as i64), &format!("u{i}"));
    }
    chat.create_room(UserId(1), "Rust", false, Millis(0), &mut out)
        .unwrap();
    for &m in members {
        chat.join_room(UserId(m as i64), "rust", Millis(0), &mut out)
            .unwrap();
    }
    chat.check();
    out.take();
    (chat, out)
}

#[test]
fn a_room_message_reaches_the_online_members_only() {
    let (mut chat, mut out) = with_room(4, &[3]);
    let accepted = chat.ws_text(
        ConnId(1),
        r#"{"message":"hi","room":"RUST"}"#,
        Millis(1),
        &mut out,
    );
    let accepted = accepted.unwrap();
    assert_eq!(accepted.room, Some(RoomId(2)));
    let id = accepted.id;
    let msg = format!(r#"{{"message":"hi","author":"u1","id":{id},"ts":1000001,"room":"rust"}}"#);
    let ack = format!(r#"{{"status":true,"id":{id}}}"#);
    assert_eq!(out.take(), [(3, msg), (1, ack)]);
    // A member who is offline gets it by history; a socket closing leaves
    // the room's online set.
    chat.ws_closed(ConnId(3), Millis(2));
    chat.check();
    chat.flush_presence(&mut out);
    out.take();
    chat.ws_text(
        ConnId(1),
        r#"{"message":"x","room":"rust"}"#,
        Millis(2),
        &mut out,
    );
    assert_eq!(out.take().len(), 1, "only the ack");
}

#[test]
fn room_and_direct_error_acks() {
    let (mut chat, mut out) = with_room(3, &[]);
    chat.create_room(UserId(1), "priv", true, Millis(0), &mut out)
        .unwrap();
    out.take();
    let cases = [
        (r#"{"message":"x","room":"rust"}"#, "not_a_member"),
        (r#"{"message":"x","room":"priv"}"#, "room_not_found"),
        (r#"{"message":"x","room":"nope"}"#, "room_not_found"),
        (r#"{"message":"x","to":"nobody"}"#, "user_not_found"),
    ];
    for (i, (frame, code)) in cases.into_iter().enumerate() {
        // A second apart: the burst of 3 is not the point here.
        let now = Millis(1000 * i as u64);
        assert!(chat.ws_text(ConnId(2), frame, now, &mut out).is_none());
        let want = format!(r#"{{"status":false,"code":"{code}"}}"#);
        assert_eq!(out.take(), [(2, want)], "{frame}");
    }
    assert_eq!(chat.last_id(), 2, "errors take no id");
}

#[test]
fn a_direct_message_reaches_the_recipient_only() {
    let (mut chat, mut out) = with_room(3, &[]);
    let accepted = chat
        .ws_text(
            ConnId(1),
            r#"{"message":"psst","to":"U2"}"#,
            Millis(1),
            &mut out,
        )
        .unwrap();
    assert_eq!((accepted.room, accepted.to), (None, Some(UserId(2))));
    let sent = out.take();
    let to: Vec<u64> = sent.iter().map(|s| s.0).collect();
    assert_eq!(to, [2, 1]);
    assert!(sent[0].1.ends_with(r#","to":"u2"}"#), "{}", sent[0].1);
    // To oneself: one's other sockets (none here), then the ack.
    chat.ws_text(
        ConnId(1),
        r#"{"message":"me","to":"u1"}"#,
        Millis(1),
        &mut out,
    );
    assert_eq!(out.take().len(), 1);
}

#[test]
fn membership_events_go_to_the_room_and_the_joiner() {
    let (mut chat, mut out) = with_room(3, &[]);
    let m = chat
        .join_room(UserId(2), "rust", Millis(5), &mut out)
        .unwrap()
        .unwrap();
    assert_eq!((m.room, m.role), (RoomId(2), Some(Role::Member)));
    let sent = out.take();
    let to: Vec<u64> = sent.iter().map(|s| s.0).collect();
    assert_eq!(to, [1, 2]);
    assert_eq!(
        sent[0].1,
        format!(
            r#"{{"event":"room_join","room":"rust","username":"u2","id":{},"ts":1000005}}"#,
            m.id
        )
    );
    assert_eq!(
        chat.join_room(UserId(2), "rust", Millis(5), &mut out),
        Ok(None)
    );
    let left = chat
        .leave_room(UserId(2), "rust", Millis(6), &mut out)
        .unwrap();
    assert_eq!(left.unwrap().role, None);
    assert_eq!(out.take().len(), 2, "the leaver hears it too");
    assert_eq!(
        chat.leave_room(UserId(2), "general", Millis(6), &mut out),
        Err(RoomError::CannotLeave)
    );
    assert_eq!(
        chat.invite(UserId(2), "rust", "u3", Millis(6), &mut out),
        Err(RoomError::Forbidden)
    );
    assert_eq!(
        chat.create_room(UserId(2), "RUST", false, Millis(6), &mut out),
        Err(RoomError::Exists)
    );
    assert_eq!(
        chat.create_room(UserId(2), "a b", false, Millis(6), &mut out),
        Err(RoomError::InvalidName)
    );
    chat.check();
}

#[test]
fn replay_shows_each_user_their_conversations_only() {
    use crate::event::{EventKind, StoredEvent};
    let (mut chat, mut out) = with_room(3, &[2]);
    chat.create_room(UserId(1), "priv", true, Millis(0), &mut out)
        .unwrap();
    let event = |kind, user: i64, room: Option<i64>, to: Option<i64>| StoredEvent {
        id: 9,
        kind: Some(kind),
        user: UserId(user),
        name: format!("u{user}"),
        room,
        to: to.map(|t| (UserId(t), format!("u{t}"))),
        ts: 5,
        text: "t".into(),
        target: Some(1),
        deleted: false,
    };
    let m = EventKind::Message;
    // (event, who sees it among users 1, 2, 3)
    let table = [
        (event(m, 1, None, None), [true, true, true]),
        (event(m, 1, Some(2), None), [true, true, false]),
        (event(m, 1, Some(3), None), [true, false, false]),
        (event(m, 1, None, Some(2)), [true, true, false]),
        (event(m, 3, None, Some(3)), [false, false, true]),
        (
            event(EventKind::RoomLeave, 3, Some(2), None),
            [true, true, true],
        ),
        (
            event(EventKind::RoomJoin, 3, Some(3), None),
            [true, false, true],
        ),
        (event(m, 1, Some(99), None), [false, false, false]),
        // Reactions and edits follow the room, not the actor's own rule
        // for membership events.
        (
            event(EventKind::ReactOn, 3, Some(2), None),
            [true, true, false],
        ),
        (
            event(EventKind::Edit, 2, None, Some(1)),
            [true, true, false],
        ),
        (
            StoredEvent {
                deleted: true,
                ..event(m, 1, None, None)
            },
            [false; 3],
        ),
        (
            StoredEvent {
                text: String::new(),
                ..event(EventKind::Edit, 1, None, None)
            },
            [false; 3],
        ),
        (
            StoredEvent {
                kind: None,
                ..event(m, 1, None, None)
            },
            [false; 3],
        ),
    ];
    for (e, seen) in table {
        for (i, want) in seen.into_iter().enumerate() {
            let got = chat.replay_json(UserId(i as i64 + 1), &e);
            assert_eq!(got.is_some(), want, "user {} {e:?}", i + 1);
        }
    }
    let json = chat.replay_json(UserId(2), &event(m, 1, Some(2), None));
    let json = String::from_utf8(json.unwrap()).unwrap();
    assert_eq!(
        json,
        r#"{"message":"t","author":"u1","id":9,"ts":5,"room":"rust"}"#
    );
}

/// Logs user 1 in under token(n) at `Millis(at)`.
fn login_as_1(chat: &mut Chat, n: u64, at: u64) {
    chat.login(SessionKey::of(&token(n)), UserId(1), "u1", Millis(at));
    chat.check();
}

fn live(chat: &mut Chat, n: u64, at: u64) -> bool {
    chat.authenticate(Some(&token(n)), Millis(at)).is_ok()
}

/// Issue 11 #5: one key logged in 100,000 times kept 100,000 sessions.
/// Past the cap (3 here), a login ends the least recently used session,
/// by activity rather than by age, and the store is told through the
/// journal.
#[test]
fn session_cap_ends_the_least_recently_used() {
    let mut chat = Chat::new(cfg(), Millis(0), 0);
    for n in 1..=3 {
        login_as_1(&mut chat, n, n);
    }
    chat.journal().ended.clear();
    assert!(live(&mut chat, 1, 10), "session 1 is now the most recent");
    login_as_1(&mut chat, 4, 11);
    assert_eq!(chat.journal().ended, [SessionKey::of(&token(2))]);
    assert_eq!(chat.session_count(), 3);
    assert!(!live(&mut chat, 2, 12));
    assert!(live(&mut chat, 3, 12) && live(&mut chat, 1, 12) && live(&mut chat, 4, 12));
    assert_eq!(chat.stats.sessions_evicted, 1);
    // Many more logins stay within the cap; other users are untouched.
    chat.login(SessionKey::of("other"), UserId(2), "u2", Millis(13));
    for n in 100..1100 {
        login_as_1(&mut chat, n, 20);
    }
    assert_eq!(chat.session_count(), 4);
    assert!(chat.authenticate(Some("other"), Millis(20)).is_ok());
}

/// Uses within one millisecond are ordered too: the clock alone would
/// call the first login and a later request on it equally old.
#[test]
fn session_cap_orders_uses_within_a_millisecond() {
    let mut chat = Chat::new(cfg(), Millis(0), 0);
    for n in 1..=3 {
        login_as_1(&mut chat, n, 5);
    }
    assert!(live(&mut chat, 1, 5));
    login_as_1(&mut chat, 4, 5);
    assert!(!live(&mut chat, 2, 5), "2 was the least recently used");
    assert!(live(&mut chat, 1, 5) && live(&mut chat, 3, 5) && live(&mut chat, 4, 5));
}

/// A session with an open WebSocket is in use, so the cap never ends it
/// in favour of an idle one: its socket stays open, and idle sessions are
/// the ones that go.
#[test]
fn session_cap_never_ends_a_session_with_an_open_socket() {
    let mut chat = Chat::new(cfg(), Millis(0), 0);
    let mut out = Rec::default();
    login_as_1(&mut chat, 1, 0);
    chat.ws_open(ConnId(1), &SessionKey::of(&token(1)), Millis(0));
    for n in 2..=10 {
        login_as_1(&mut chat, n, n);
    }
    assert!(out.closed.is_empty());
    assert!(live(&mut chat, 1, 20), "the socket's session lives");
    assert!(chat.is_online(UserId(1)));
    // The three newest idle sessions, plus the one in use.
    assert_eq!(chat.session_count(), 4);
    for n in 8..=10 {
        assert!(live(&mut chat, n, 20), "{n}");
    }
    // Once the socket closes, its session is idle like any other and the
    // next login ends the least recently used.
    chat.ws_closed(ConnId(1), Millis(30));
    chat.flush_presence(&mut out);
    login_as_1(&mut chat, 11, 31);
    assert_eq!(chat.session_count(), 3);
    assert!(!live(&mut chat, 8, 40));
}

mod conversation;
