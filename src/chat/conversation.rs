//! The conversation features of SPEC §10 and §11: edits, deletions and
//! reactions (events on the one sequence, about a stored message), typing
//! notices (live only, throttled on the chat's wheel), read markers with
//! the unread counters of `GET /api/rooms`, and when users were last seen.
//!
//! The chat does not keep every message in memory, so what it needs to
//! know of a stored message comes through a [`Lookup`] the caller provides
//! (the server: one primary-key read of the database; tests and fuzzing: a
//! map). Messages themselves never take that path.
//!
//! Unread counts come from counters, not queries: every room (general
//! included) counts the messages it holds, loaded once at start-up and
//! raised by each message, and every read marker remembers that count as
//! it stood at the marker ("ordinal"). Unread is the difference, so
//! `GET /api/rooms` reads memory only. Finding the ordinal of a marker set
//! below the newest message costs one indexed count of the messages after
//! it, once per marker move (and once per marker at start-up).

use super::Chat;
use super::outbox::Outbox;
use super::rooms::{Dest, GENERAL, Marker, Role, RoomId};
use super::sessions::Due;
use crate::event::{Conversation, EventKind, MessageInfo, NewEvent};
use crate::ids::{ConnId, Millis, UserId};
use crate::protocol::{
    AckError, DeleteEvent, EditEvent, Place, ReactEvent, ReadEvent, ServerFrame, Target,
    TypingEvent,
};
use std::rc::Rc;

/// At most one typing notice per user and conversation per this long.
pub const TYPING_INTERVAL: Millis = Millis(3000);

/// What the chat asks of the stored messages.
pub trait Lookup {
    /// The stored message `id` (not another kind of event).
    fn message(&mut self, id: i64) -> Option<MessageInfo>;
    /// Whether `user` has reacted to message `id` with `emoji`.
    fn reacted(&mut self, id: i64, user: UserId, emoji: &str) -> bool;
    /// How many messages of `conv` (general or a room) come after `id`.
    fn count_after(&mut self, conv: Conversation, id: i64) -> u64;
}

/// A [`Lookup`] of a chat that stores nothing: no message is found.
#[derive(Debug, Default)]
pub struct NoHistory;

impl Lookup for NoHistory {
    fn message(&mut self, _: i64) -> Option<MessageInfo> {
        None
    }
    fn reacted(&mut self, _: i64, _: UserId, _: &str) -> bool {
        false
    }
    fn count_after(&mut self, _: Conversation, _: i64) -> u64 {
        0
    }
}

/// What a client frame changed, for the caller to store in the turn's
/// batch before it handles anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// A new message.
    Message(Accepted),
    /// An edit, deletion or reaction: its event and its message's change.
    Change(Change),
    /// A read marker moved.
    Read(ReadMarker),
}

/// An edit, deletion or reaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The event's id.
    pub id: i64,
    /// `Edit`, `Delete`, `ReactOn` or `ReactOff`.
    pub kind: EventKind,
    /// Who did it.
    pub user: UserId,
    /// The message's room (`None`: general or direct).
    pub room: Option<RoomId>,
    /// In a direct conversation, its other side as seen by `user`.
    pub to: Option<UserId>,
    /// Unix milliseconds.
    pub ts: i64,
    /// The message.
    pub target: i64,
    /// The new text of an edit, the emoji of a reaction.
    pub text: String,
}

impl Change {
    /// The event row to insert.
    pub fn row(&self) -> NewEvent<'_> {
        NewEvent {
            id: self.id,
            kind: self.kind,
            user: self.user,
            room: self.room.map(|r| r.0),
            to: self.to,
            ts: self.ts,
            text: &self.text,
            client_id: None,
            target: Some(self.target),
        }
    }
}

/// A read marker to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMarker {
    /// Whose.
    pub user: UserId,
    /// The conversation's key (see [`conv_key`]).
    pub conv: i64,
    /// The newest event read.
    pub id: i64,
}

/// An accepted message, for the caller to store in this turn's batch
/// before it handles anything else (so a replay never misses it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Message id.
    pub id: i64,
    /// Author.
    pub user: UserId,
    /// Unix milliseconds.
    pub ts: i64,
    /// The text.
    pub text: String,
    /// The client's deduplication id.
    pub client_id: Option<String>,
    /// The room; `None` for general and for a direct message.
    pub room: Option<RoomId>,
    /// The recipient of a direct message.
    pub to: Option<UserId>,
}

/// The conversation a stored message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conv {
    General,
    Room(RoomId),
    /// Author and recipient.
    Direct(UserId, UserId),
}

/// The conversation stored message `info` belongs to.
fn conv_of(info: &MessageInfo) -> Conv {
    match (info.room, info.to) {
        (Some(r), _) => Conv::Room(RoomId(r)),
        (None, Some(to)) => Conv::Direct(info.author, to),
        (None, None) => Conv::General,
    }
}

/// The key of a conversation for `user`'s read markers and typing: a
/// room's id (general is 1), or minus the other user's id.
pub(super) fn conv_key(dest: &Dest) -> i64 {
    match *dest {
        Dest::General => GENERAL.0,
        Dest::Room(r) => r.0,
        Dest::Direct(to) => -to.0,
    }
}

impl Chat {
    /// `{"edit": ID, "message": TEXT}`: the author only.
    pub(super) fn edit(
        &mut self,
        (conn, user, name): (ConnId, UserId, &str),
        target: i64,
        text: &str,
        now: Millis,
        look: &mut impl Lookup,
        out: &mut impl Outbox,
    ) -> Option<Write> {
        let (info, conv) = self.target_conv(conn, user, target, look, out)?;
        if info.author != user {
            self.ack_error(conn, AckError::Forbidden, out);
            return None;
        }
        // An edit is a new text: a muted user may not slip one through.
        if let Err(e) = self.check_mute(user, None, now) {
            self.ack_error(conn, e, out);
            return None;
        }
        let (id, ts) = self.next_event(now);
        let (place, change) = self.change(user, conv, (id, ts), target);
        let json = ServerFrame::Edit(&EditEvent {
            event: "edit",
            target,
            message: text,
            author: name,
            id,
            ts,
            place: place.as_place(),
        })
        .to_json();
        self.send_event(Some(conn), conv, &json, out);
        self.ack(conn, id, out);
        let text = text.to_owned();
        Some(Write::Change(Change {
            kind: EventKind::Edit,
            text,
            ..change
        }))
    }

    /// `{"delete": ID}`: the author, or an owner or moderator of the room.
    pub(super) fn delete(
        &mut self,
        (conn, user, name): (ConnId, UserId, &str),
        target: i64,
        now: Millis,
        look: &mut impl Lookup,
        out: &mut impl Outbox,
    ) -> Option<Write> {
        let (info, conv) = self.target_conv(conn, user, target, look, out)?;
        let moderates = match conv {
            Conv::Room(r) => matches!(
                self.rooms.role(r, user),
                Some(Role::Owner | Role::Moderator)
            ),
            _ => false,
        };
        if info.author != user && !moderates && !self.is_admin(user) {
            self.ack_error(conn, AckError::Forbidden, out);
            return None;
        }
        let change = self.delete_as((user, name), target, conv, Some(conn), now, out);
        self.ack(conn, change.id, out);
        Some(Write::Change(change))
    }

    /// Deletes stored message `target` (of `info`) as `user`, who may:
    /// the `delete` event to its conversation, and the change to store.
    /// The purge of a user's messages comes through here, like a
    /// deletion frame.
    pub(super) fn delete_message_as(
        &mut self,
        by: (UserId, &str),
        target: i64,
        info: &MessageInfo,
        now: Millis,
        out: &mut impl Outbox,
    ) -> Change {
        self.delete_as(by, target, conv_of(info), None, now, out)
    }

    fn delete_as(
        &mut self,
        (user, name): (UserId, &str),
        target: i64,
        conv: Conv,
        except: Option<ConnId>,
        now: Millis,
        out: &mut impl Outbox,
    ) -> Change {
        let (id, ts) = self.next_event(now);
        let (place, change) = self.change(user, conv, (id, ts), target);
        let json = ServerFrame::Delete(&DeleteEvent {
            event: "delete",
            target,
            by: name,
            id,
            ts,
            place: place.as_place(),
        })
        .to_json();
        self.send_event(except, conv, &json, out);
        Change {
            kind: EventKind::Delete,
            ..change
        }
    }

    /// `{"react": ID, "emoji": E}`: toggles `user`'s reaction.
    pub(super) fn react(
        &mut self,
        (conn, user, name): (ConnId, UserId, &str),
        target: i64,
        emoji: &str,
        now: Millis,
        look: &mut impl Lookup,
        out: &mut impl Outbox,
    ) -> Option<Write> {
        let (_, conv) = self.target_conv(conn, user, target, look, out)?;
        let on = !look.reacted(target, user, emoji);
        let (id, ts) = self.next_event(now);
        let (place, change) = self.change(user, conv, (id, ts), target);
        let json = ServerFrame::React(&ReactEvent {
            event: "react",
            target,
            emoji,
            username: name,
            on,
            id,
            ts,
            place: place.as_place(),
        })
        .to_json();
        self.send_event(Some(conn), conv, &json, out);
        self.ack(conn, id, out);
        let kind = if on {
            EventKind::ReactOn
        } else {
            EventKind::ReactOff
        };
        Some(Write::Change(Change {
            kind,
            text: emoji.to_owned(),
            ..change
        }))
    }

    /// The message `target` as `user` may act on it, or the `not_found`
    /// ack: no such message, deleted, or in a conversation they do not
    /// see (never `forbidden` there: that would confirm it exists).
    fn target_conv(
        &mut self,
        conn: ConnId,
        user: UserId,
        target: i64,
        look: &mut impl Lookup,
        out: &mut impl Outbox,
    ) -> Option<(MessageInfo, Conv)> {
        let found = look.message(target).filter(|m| !m.deleted);
        let conv = found.and_then(|info| {
            let conv = conv_of(&info);
            let sees = match conv {
                Conv::General => true,
                Conv::Room(r) => self.rooms.role(r, user).is_some(),
                Conv::Direct(a, b) => user == a || user == b,
            };
            sees.then_some((info, conv))
        });
        if conv.is_none() {
            self.ack_error(conn, AckError::NotFound, out);
        }
        conv
    }

    /// The names an event of `conv` carries, and the change to store
    /// (kind and text filled in by the caller).
    fn change(
        &self,
        user: UserId,
        conv: Conv,
        (id, ts): (i64, i64),
        target: i64,
    ) -> (Names, Change) {
        let (room, to) = match conv {
            Conv::General => (None, None),
            Conv::Room(r) => (Some(r), None),
            // The other side from the actor's point of view: a reaction
            // of the recipient names the author, so either side's replay
            // finds it by `user` or `to`.
            Conv::Direct(a, b) => (None, Some(if user == a { b } else { a })),
        };
        let names = Names {
            room: room.and_then(|r| self.rooms.get(r)).map(|r| r.name.clone()),
            to: to.and_then(|u| self.directory.name(u).cloned()),
        };
        let change = Change {
            id,
            kind: EventKind::Edit,
            user,
            room,
            to,
            ts,
            target,
            text: String::new(),
        };
        (names, change)
    }

    /// Queues an event of `conv` for every socket in it but `conn` (as a
    /// stored event: taken back should the turn's commit fail).
    fn send_event(
        &mut self,
        except: Option<ConnId>,
        conv: Conv,
        json: &[u8],
        out: &mut impl Outbox,
    ) {
        self.flush_presence(out);
        let others = move |c: &ConnId| Some(*c) != except;
        match conv {
            Conv::General => {
                self.general_last_id = self.last_id;
                match except {
                    Some(conn) => self.broadcast(conn, json, out),
                    // A purge's deletions come from no socket.
                    None => {
                        let to = self.online.iter().chain(self.streams.all());
                        out.deliver_event(to, json);
                    }
                }
            }
            Conv::Room(r) => {
                if let Some(room) = self.rooms.rooms.get_mut(&r) {
                    room.last_id = self.last_id;
                    let members = room.online.iter().copied().filter(others);
                    out.deliver_event(members.chain(self.streams.of_room(r)), json);
                }
            }
            Conv::Direct(a, b) => {
                let (b, b_streams) = if a == b {
                    (&[][..], &[][..])
                } else {
                    (self.sockets_of(b), self.streams.of_user(b))
                };
                let both = self.sockets_of(a).iter().chain(b);
                let streams = self.streams.of_user(a).iter().chain(b_streams);
                let to = both.copied().filter(others);
                out.deliver_event(to.chain(streams.copied()), json);
            }
        }
    }

    /// `{"typing": true}` with `room` or `to`: relayed to the others in
    /// the conversation at most once per [`TYPING_INTERVAL`]; acked
    /// either way. Nothing is stored.
    pub(super) fn typing(
        &mut self,
        (conn, user, name): (ConnId, UserId, &str),
        on: bool,
        target: &Target<'_>,
        now: Millis,
        out: &mut impl Outbox,
    ) {
        let dest = match self.destination(user, target) {
            Ok(dest) => dest,
            Err(e) => return self.ack_error(conn, e, out),
        };
        let key = (user, conv_key(&dest));
        if on && !self.typing.contains(&key) {
            self.typing.insert(key);
            let at = Millis(now.0 + TYPING_INTERVAL.0);
            self.wheel.insert(at, Due::Typing(key.0, key.1));
            self.relay_typing(user, name, &dest, out);
        }
        self.ack_done(conn, out);
    }

    fn relay_typing(&mut self, user: UserId, name: &str, dest: &Dest, out: &mut impl Outbox) {
        self.flush_presence(out);
        let mine = self.sockets_of(user);
        let (place, to): (Place<'_>, Vec<ConnId>) = match *dest {
            Dest::General => {
                let others = self.online.iter().filter(|c| !mine.contains(c));
                (Place::default(), others.collect())
            }
            Dest::Room(r) => {
                let Some(room) = self.rooms.get(r) else {
                    return;
                };
                let others = room.online.iter().filter(|c| !mine.contains(c));
                let place = Place {
                    room: Some(&room.name),
                    to: None,
                };
                (place, others.copied().collect())
            }
            Dest::Direct(to) if to != user => {
                let place = Place {
                    room: None,
                    to: self.directory.name(to).map(|n| &**n),
                };
                (place, self.sockets_of(to).to_vec())
            }
            Dest::Direct(_) => return,
        };
        let json = ServerFrame::Typing(&TypingEvent {
            event: "typing",
            username: name,
            place,
        })
        .to_json();
        out.deliver(to.into_iter(), &json);
    }

    /// `{"read": ID}` with `room` or `with`: moves `user`'s marker forward
    /// (never back, never past the newest event) and tells their other
    /// sockets.
    pub(super) fn read(
        &mut self,
        (conn, user): (ConnId, UserId),
        id: i64,
        target: &Target<'_>,
        look: &mut impl Lookup,
        out: &mut impl Outbox,
    ) -> Option<Write> {
        let dest = match self.destination(user, target) {
            Ok(dest) => dest,
            Err(e) => {
                self.ack_error(conn, e, out);
                return None;
            }
        };
        let conv = conv_key(&dest);
        let id = id.min(self.last_id);
        let old = self.reads.get(&(user, conv)).map_or(0, |m| m.id);
        if id <= old {
            self.ack_done(conn, out);
            return None;
        }
        let ordinal = self.ordinal(&dest, id, look);
        self.reads.insert((user, conv), Marker { id, ordinal });
        let (room, with) = match dest {
            Dest::General => (None, None),
            Dest::Room(r) => (self.rooms.get(r).map(|r| r.name.clone()), None),
            Dest::Direct(to) => (None, self.directory.name(to).cloned()),
        };
        let json = ServerFrame::Read(&ReadEvent {
            event: "read",
            id,
            room: room.as_deref(),
            with: with.as_deref(),
        })
        .to_json();
        self.flush_presence(out);
        let others = self.sockets_of(user).iter().copied();
        out.deliver(others.filter(|&c| c != conn), &json);
        self.ack_done(conn, out);
        Some(Write::Read(ReadMarker { user, conv, id }))
    }

    /// The message count of a room at marker `id`: its count now when the
    /// marker is at its newest message (the common case), else one count
    /// of the messages after it.
    fn ordinal(&self, dest: &Dest, id: i64, look: &mut impl Lookup) -> u64 {
        let (count, last, conv) = match *dest {
            Dest::General => (
                self.general_count,
                self.general_last_id,
                Conversation::General,
            ),
            Dest::Room(r) => match self.rooms.get(r) {
                Some(room) => (room.count, room.last_id, Conversation::Room(r.0)),
                None => return 0,
            },
            Dest::Direct(_) => return 0,
        };
        if id >= last {
            count
        } else {
            count.saturating_sub(look.count_after(conv, id))
        }
    }

    /// Messages of room `id` after `user`'s read marker (all of them
    /// without one).
    pub(super) fn unread(&self, user: UserId, id: RoomId) -> u64 {
        let count = if id == GENERAL {
            self.general_count
        } else {
            self.rooms.get(id).map_or(0, |r| r.count)
        };
        let seen = self.reads.get(&(user, id.0)).map_or(0, |m| m.ordinal);
        count.saturating_sub(seen)
    }

    /// Start-up: the messages room `id` holds.
    pub fn restore_message_count(&mut self, id: RoomId, count: u64) {
        if id == GENERAL {
            self.general_count = count;
        } else if let Some(room) = self.rooms.rooms.get_mut(&id) {
            room.count = count;
        }
    }

    /// Start-up: a stored read marker; `after` is how many messages of
    /// its room follow it (0 for a direct conversation).
    pub fn restore_read(&mut self, user: UserId, conv: i64, id: i64, after: u64) {
        let count = match conv {
            1 => self.general_count,
            c if c > 0 => self.rooms.get(RoomId(c)).map_or(0, |r| r.count),
            _ => 0,
        };
        let ordinal = count.saturating_sub(after);
        self.reads.insert((user, conv), Marker { id, ordinal });
    }

    /// Start-up: when `user` was last online, Unix milliseconds.
    pub fn restore_last_seen(&mut self, user: UserId, ts: i64) {
        self.last_seen.insert(user, ts);
    }

    /// When `user` was last online (Unix milliseconds); `None` while
    /// online or never seen.
    pub fn last_seen(&self, user: UserId) -> Option<i64> {
        if self.is_online(user) {
            return None;
        }
        self.last_seen.get(&user).copied()
    }

    /// The times users went offline since the last call, to store.
    pub fn take_last_seen(&mut self) -> Vec<(UserId, i64)> {
        std::mem::take(&mut self.seen_journal)
    }

    /// `user`'s last socket closed.
    pub(super) fn went_offline(&mut self, user: UserId) {
        let ts = self.unix_ms(self.clock);
        self.last_seen.insert(user, ts);
        self.seen_journal.push((user, ts));
    }

    /// `{"status": true}`: accepted, nothing stored.
    fn ack_done(&mut self, conn: ConnId, out: &mut impl Outbox) {
        self.stats.acks_ok += 1;
        let json = ServerFrame::AckDone { status: true }.to_json();
        out.reply(conn, &json);
    }
}

/// The names an event carries.
struct Names {
    room: Option<Rc<str>>,
    to: Option<Rc<str>>,
}

impl Names {
    fn as_place(&self) -> Place<'_> {
        Place {
            room: self.room.as_deref(),
            to: self.to.as_deref(),
        }
    }
}
