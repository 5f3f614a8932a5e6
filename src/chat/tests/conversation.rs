//! Edits, deletions, reactions, typing, read markers, several sockets per
//! user and last seen, against a map of stored messages.

use super::*;
use crate::chat::conversation::{Lookup, Write};
use crate::event::{Conversation, EventKind, MessageInfo};
use std::collections::{HashMap, HashSet};

/// The stored messages and reactions, as the server's store would hold
/// them after applying each write.
#[derive(Default)]
struct Stored {
    messages: HashMap<i64, MessageInfo>,
    reactions: HashSet<(i64, UserId, String)>,
}

impl Lookup for Stored {
    fn message(&mut self, id: i64) -> Option<MessageInfo> {
        self.messages.get(&id).copied()
    }
    fn reacted(&mut self, id: i64, user: UserId, emoji: &str) -> bool {
        self.reactions.contains(&(id, user, emoji.to_string()))
    }
    fn count_after(&mut self, conv: Conversation, id: i64) -> u64 {
        let room = match conv {
            Conversation::General => None,
            Conversation::Room(r) => Some(r),
            Conversation::Direct(..) => return 0,
        };
        let n = self
            .messages
            .iter()
            .filter(|(m, i)| **m > id && i.room == room && i.to.is_none());
        n.count() as u64
    }
}

impl Stored {
    fn apply(&mut self, w: &Write) {
        match w {
            Write::Message(a) => {
                let info = MessageInfo {
                    author: a.user,
                    room: a.room.map(|r| r.0),
                    to: a.to,
                    deleted: false,
                };
                self.messages.insert(a.id, info);
            }
            Write::Change(c) => match c.kind {
                EventKind::Delete => self.messages.get_mut(&c.target).unwrap().deleted = true,
                EventKind::ReactOn => {
                    self.reactions.insert((c.target, c.user, c.text.clone()));
                }
                EventKind::ReactOff => {
                    self.reactions.remove(&(c.target, c.user, c.text.clone()));
                }
                _ => {}
            },
            Write::Read(_) => {}
        }
    }
}

/// Sends `frame` from `conn` at `at`, applying what it stored.
fn send(
    chat: &mut Chat,
    db: &mut Stored,
    out: &mut Rec,
    conn: u64,
    frame: &str,
    at: u64,
) -> Option<Write> {
    let w = chat.ws_frame(ConnId(conn), frame, Millis(at), db, out);
    if let Some(w) = &w {
        db.apply(w);
    }
    chat.check();
    w
}

/// The recipients of what was sent, and the ack to the sender.
fn split(sent: Vec<(u64, String)>, sender: u64) -> (Vec<u64>, String) {
    let ack = sent
        .iter()
        .rev()
        .find(|s| s.0 == sender && s.1.contains("status"));
    let ack = ack.map(|s| s.1.clone()).unwrap_or_default();
    let to = sent
        .into_iter()
        .filter(|s| !s.1.contains("status"))
        .map(|s| s.0)
        .collect();
    (to, ack)
}

#[test]
fn edit_delete_react_reach_the_conversation_and_check_who_may() {
    let (mut chat, mut out) = with_room(3, &[2]);
    chat.cfg.burst = 0;
    let mut db = Stored::default();
    send(&mut chat, &mut db, &mut out, 1, r#"{"message":"g"}"#, 1);
    send(
        &mut chat,
        &mut db,
        &mut out,
        2,
        r#"{"message":"r","room":"rust"}"#,
        1,
    );
    send(
        &mut chat,
        &mut db,
        &mut out,
        1,
        r#"{"message":"d","to":"u2"}"#,
        1,
    );
    let ids = chat.last_id();
    let (g, r, d) = (ids - 2, ids - 1, ids);
    out.take();
    // (sender, frame, recipients, ack): general to all, the room to its
    // members, a direct message to its two sides.
    let ok = |id: i64| format!(r#"{{"status":true,"id":{id}}}"#);
    let nack = |code: &str| format!(r#"{{"status":false,"code":"{code}"}}"#);
    let n = ids;
    let table: Vec<(u64, String, Vec<u64>, String)> = vec![
        (
            1,
            format!(r#"{{"edit":{g},"message":"g2"}}"#),
            vec![2, 3],
            ok(n + 1),
        ),
        (
            2,
            format!(r#"{{"edit":{g},"message":"no"}}"#),
            vec![],
            nack("forbidden"),
        ),
        (
            3,
            format!(r#"{{"react":{r},"emoji":"x"}}"#),
            vec![],
            nack("not_found"),
        ),
        (
            1,
            format!(r#"{{"react":{r},"emoji":"x"}}"#),
            vec![2],
            ok(n + 2),
        ),
        (
            3,
            format!(r#"{{"react":{d},"emoji":"x"}}"#),
            vec![],
            nack("not_found"),
        ),
        (
            2,
            format!(r#"{{"react":{d},"emoji":"x"}}"#),
            vec![1],
            ok(n + 3),
        ),
        (
            2,
            format!(r#"{{"react":{d},"emoji":"x"}}"#),
            vec![1],
            ok(n + 4),
        ),
        // The owner of the room deletes its member's message.
        (1, format!(r#"{{"delete":{r}}}"#), vec![2], ok(n + 5)),
        (2, format!(r#"{{"delete":{r}}}"#), vec![], nack("not_found")),
        (2, format!(r#"{{"delete":{g}}}"#), vec![], nack("forbidden")),
        (2, format!(r#"{{"delete":{d}}}"#), vec![], nack("forbidden")),
        (
            1,
            r#"{"delete":999}"#.to_string(),
            vec![],
            nack("not_found"),
        ),
    ];
    for (conn, frame, to, ack) in table {
        send(&mut chat, &mut db, &mut out, conn, &frame, 2);
        let (got_to, got_ack) = split(out.take(), conn);
        assert_eq!((got_to, got_ack), (to, ack), "{frame}");
    }
    // u2's second reaction to the direct message took the first back.
    let left: Vec<i64> = db.reactions.iter().map(|r| r.0).collect();
    assert_eq!(left, [r]);
}

#[test]
fn events_carry_their_shapes() {
    let (mut chat, mut out) = with_room(2, &[2]);
    let mut db = Stored::default();
    send(
        &mut chat,
        &mut db,
        &mut out,
        1,
        r#"{"message":"hi","room":"rust"}"#,
        1,
    );
    let m = chat.last_id();
    out.take();
    send(
        &mut chat,
        &mut db,
        &mut out,
        1,
        &format!(r#"{{"edit":{m},"message":"yo"}}"#),
        2,
    );
    let ts = 1_000_002;
    let edit = format!(
        r#"{{"event":"edit","target":{m},"message":"yo","author":"u1","id":{},"ts":{ts},"room":"rust"}}"#,
        m + 1
    );
    assert_eq!(out.take()[0], (2, edit));
    send(
        &mut chat,
        &mut db,
        &mut out,
        2,
        &format!(r#"{{"react":{m},"emoji":"👍"}}"#),
        2,
    );
    let react = format!(
        r#"{{"event":"react","target":{m},"emoji":"👍","username":"u2","on":true,"id":{},"ts":{ts},"room":"rust"}}"#,
        m + 2
    );
    assert_eq!(out.take()[0], (1, react));
    send(
        &mut chat,
        &mut db,
        &mut out,
        1,
        &format!(r#"{{"delete":{m}}}"#),
        2,
    );
    let delete = format!(
        r#"{{"event":"delete","target":{m},"by":"u1","id":{},"ts":{ts},"room":"rust"}}"#,
        m + 3
    );
    assert_eq!(out.take()[0], (2, delete));
}

#[test]
fn typing_is_relayed_once_per_interval_and_stores_nothing() {
    let (mut chat, mut out) = with_room(3, &[2]);
    chat.cfg.burst = 0;
    let mut db = Stored::default();
    let last = chat.last_id();
    let typing = r#"{"event":"typing","username":"u1"}"#;
    let done = r#"{"status":true}"#;
    let cases = [
        (
            0,
            r#"{"typing":true}"#,
            vec![(2, typing), (3, typing), (1, done)],
        ),
        (1000, r#"{"typing":true}"#, vec![(1, done)]),
        (1000, r#"{"typing":false}"#, vec![(1, done)]),
        (
            1000,
            r#"{"typing":true,"room":"rust"}"#,
            vec![
                (2, r#"{"event":"typing","username":"u1","room":"rust"}"#),
                (1, done),
            ],
        ),
        (
            1000,
            r#"{"typing":true,"to":"u3"}"#,
            vec![
                (3, r#"{"event":"typing","username":"u1","to":"u3"}"#),
                (1, done),
            ],
        ),
        (1000, r#"{"typing":true,"to":"u1"}"#, vec![(1, done)]),
        (2999, r#"{"typing":true}"#, vec![(1, done)]),
        (
            3000,
            r#"{"typing":true}"#,
            vec![(2, typing), (3, typing), (1, done)],
        ),
    ];
    for (at, frame, want) in cases {
        chat.handle_timeouts(Millis(at));
        assert!(send(&mut chat, &mut db, &mut out, 1, frame, at).is_none());
        let want: Vec<(u64, String)> = want.into_iter().map(|(c, j)| (c, j.to_string())).collect();
        assert_eq!(out.take(), want, "{frame} at {at}");
    }
    assert_eq!(chat.last_id(), last, "no event ids");
    assert_eq!(chat.end_turn(true), [], "nothing waits for a commit");
}

#[test]
fn several_sockets_share_presence_and_read_markers() {
    let mut chat = logged_in(2);
    chat.cfg.burst = 0;
    let mut out = Rec::default();
    let mut db = Stored::default();
    let (k1, k2) = (SessionKey::of(&token(1)), SessionKey::of(&token(2)));
    chat.ws_open(ConnId(1), &k1, Millis(0));
    chat.ws_open(ConnId(2), &k2, Millis(0));
    chat.flush_presence(&mut out);
    out.take();
    // A second socket of user 1 (the same session: a second tab).
    chat.ws_open(ConnId(3), &k1, Millis(0));
    chat.flush_presence(&mut out);
    chat.check();
    assert_eq!(out.take(), [], "no second join");
    assert_eq!(chat.online_names().collect::<Vec<_>>(), ["u1", "u2"]);
    send(&mut chat, &mut db, &mut out, 2, r#"{"message":"a"}"#, 1);
    send(&mut chat, &mut db, &mut out, 2, r#"{"message":"b"}"#, 1);
    let m = chat.last_id();
    let got: Vec<u64> = out.take().iter().map(|s| s.0).collect();
    assert_eq!(got, [1, 3, 2, 1, 3, 2]);
    assert_eq!(chat.room_list(UserId(1))[0].unread, 2);
    let read = format!(r#"{{"read":{}}}"#, m - 1);
    let w = send(&mut chat, &mut db, &mut out, 1, &read, 2);
    assert!(matches!(w, Some(Write::Read(r)) if r.id == m - 1 && r.conv == 1));
    let event = format!(r#"{{"event":"read","id":{}}}"#, m - 1);
    assert_eq!(out.take(), [(3, event), (1, r#"{"status":true}"#.into())]);
    assert_eq!(chat.room_list(UserId(1))[0].unread, 1, "one count query");
    // Never back; never past the newest event.
    assert!(send(&mut chat, &mut db, &mut out, 3, r#"{"read":1}"#, 2).is_none());
    let w = send(&mut chat, &mut db, &mut out, 3, r#"{"read":999}"#, 2);
    assert!(matches!(w, Some(Write::Read(r)) if r.id == m));
    assert_eq!(chat.room_list(UserId(1))[0].unread, 0);
    out.take();
    // Leave after the last socket; last seen then.
    chat.ws_closed(ConnId(1), Millis(5));
    chat.flush_presence(&mut out);
    chat.check();
    assert_eq!(out.take(), []);
    assert_eq!(chat.last_seen(UserId(1)), None);
    chat.ws_closed(ConnId(3), Millis(7));
    chat.flush_presence(&mut out);
    chat.check();
    assert_eq!(
        out.take(),
        [(2, r#"{"event":"leave","username":"u1"}"#.into())]
    );
    assert_eq!(chat.last_seen(UserId(1)), Some(1_000_007));
    assert_eq!(chat.take_last_seen(), [(UserId(1), 1_000_007)]);
}

#[test]
fn logout_closes_every_socket_of_the_session() {
    let mut chat = logged_in(1);
    let mut out = Rec::default();
    let k1 = SessionKey::of(&token(1));
    chat.ws_open(ConnId(1), &k1, Millis(0));
    chat.ws_open(ConnId(2), &k1, Millis(0));
    chat.logout(&token(1), &mut out);
    chat.check();
    assert_eq!(
        out.closed,
        [(1, 1000, "logged out"), (2, 1000, "logged out")]
    );
    assert!(!chat.is_online(UserId(1)));
}
