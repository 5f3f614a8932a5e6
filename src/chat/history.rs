//! What a user may see of the stored events, and how they look on the
//! wire: the conversation a history page names, the page's body, and the
//! frames a resuming socket is replayed. Both the page and the replay map
//! a stored message through [`on_wire`], so they cannot drift apart.

use super::Chat;
use super::rooms::{GENERAL, RoomError, RoomId};
use crate::event::{Conversation, EventKind, StoredEvent, StoredMessage, StoredReaction};
use crate::ids::UserId;
use crate::protocol::{
    ChatMessage, DeleteEvent, EditEvent, History, MemberEvent, PageMessage, Place, ReactEvent,
    Reactions, ServerFrame,
};
use std::rc::Rc;

/// A conversation to page, with the names its messages carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paged {
    /// Which one.
    pub conv: Conversation,
    /// The room's name, outside general.
    pub room: Option<Rc<str>>,
    /// The other user of a direct conversation, as registered.
    pub with: Option<Rc<str>>,
}

impl Paged {
    /// The body of a `GET /api/messages` page of this conversation for
    /// `me` (by name): `rows` oldest first, and the reactions to them
    /// sorted by message id.
    pub fn page<'a>(
        &'a self,
        me: &'a str,
        rows: &'a [StoredMessage],
        reactions: &'a [StoredReaction],
    ) -> History<'a> {
        let messages = rows
            .iter()
            .map(|m| {
                // A direct message's `to` is its recipient: either side.
                let to = self
                    .with
                    .as_deref()
                    .map(|other| if m.author == other { me } else { other });
                let place = Place {
                    room: self.room.as_deref(),
                    to,
                };
                PageMessage {
                    edited: m.edited,
                    reactions: reactions_of(m.id, reactions),
                    ..on_wire(&m.text, m.deleted, &m.author, m.id, m.ts, place)
                }
            })
            .collect();
        History { messages }
    }
}

/// A stored message on the wire, the one mapping for history pages and
/// the replay: its text unless it was deleted, author, id, time and
/// conversation; not edited, no reactions (a page adds those; a replayed
/// `message` frame is these fields, and none once the text is gone).
fn on_wire<'a>(
    text: &'a str,
    deleted: bool,
    author: &'a str,
    id: i64,
    ts: i64,
    place: Place<'a>,
) -> PageMessage<'a> {
    PageMessage {
        message: (!deleted).then_some(text),
        author,
        id,
        ts,
        room: place.room,
        to: place.to,
        edited: None,
        deleted,
        reactions: Reactions::new(),
    }
}

/// A message found by search, on the wire as on a history page: its
/// current text, `edited` time and `reactions` (those to it among
/// `reactions`).
pub fn found_on_wire<'a>(
    text: &'a str,
    author: &'a str,
    (id, ts, edited): (i64, i64, Option<i64>),
    place: Place<'a>,
    reactions: &'a [StoredReaction],
) -> PageMessage<'a> {
    PageMessage {
        edited,
        reactions: reactions_of(id, reactions),
        ..on_wire(text, false, author, id, ts, place)
    }
}

/// The reactions to message `id` among a page's (which come by message
/// id, so a message's are together).
fn reactions_of(id: i64, all: &[StoredReaction]) -> Reactions<'_> {
    let mut map = Reactions::new();
    let start = all.partition_point(|r| r.0 < id);
    for (_, emoji, name) in all[start..].iter().take_while(|r| r.0 == id) {
        map.entry(emoji.as_str()).or_default().push(name.as_str());
    }
    map
}

impl Chat {
    /// The conversation `GET /api/messages` pages: `room=NAME` (a room
    /// `user` sees; public rooms are readable without joining), or
    /// `with=USERNAME`, or general.
    pub fn conversation(
        &self,
        user: UserId,
        room: Option<&str>,
        with: Option<&str>,
    ) -> Result<Paged, RoomError> {
        if let Some(name) = with {
            let (other, shown) = self.directory.find(name).ok_or(RoomError::UserNotFound)?;
            return Ok(Paged {
                conv: Conversation::Direct(user, other),
                room: None,
                with: Some(shown.clone()),
            });
        }
        let general = Paged {
            conv: Conversation::General,
            room: None,
            with: None,
        };
        let Some(name) = room else {
            return Ok(general);
        };
        Ok(match self.rooms.visible(name, user)? {
            GENERAL => general,
            id => Paged {
                conv: Conversation::Room(id.0),
                room: Some(self.rooms.get(id).expect("visible").name.clone()),
                with: None,
            },
        })
    }

    /// The frame a resuming socket of `user` gets for a stored event, or
    /// `None` when the event is not theirs to see: general's, the rooms
    /// they are in now, their own membership changes, and the direct
    /// messages they sent or received.
    pub fn replay_json(&self, user: UserId, e: &StoredEvent) -> Option<Vec<u8>> {
        let kind = e.kind?;
        if !self.may_see(user, e, kind) {
            return None;
        }
        let room_name = match e.room {
            None => None,
            Some(id) => Some(&*self.rooms.get(RoomId(id))?.name),
        };
        let to = e.to.as_ref().map(|(_, n)| n.as_str());
        let place = Place {
            room: room_name,
            to,
        };
        let json = match kind {
            // A deleted message's text is gone: its `delete` event follows
            // in the replay, and so does nothing of the text (an edit's
            // text was erased with it).
            EventKind::Message | EventKind::Edit if e.deleted || e.text.is_empty() => return None,
            EventKind::Message => {
                let m = on_wire(&e.text, e.deleted, &e.name, e.id, e.ts, place);
                ServerFrame::Message(&ChatMessage {
                    message: m.message?,
                    author: m.author,
                    id: m.id,
                    ts: m.ts,
                    room: m.room,
                    to: m.to,
                })
                .to_json()
            }
            EventKind::RoomJoin | EventKind::RoomLeave => ServerFrame::Member(&MemberEvent {
                event: if kind == EventKind::RoomJoin {
                    "room_join"
                } else {
                    "room_leave"
                },
                room: room_name?,
                username: &e.name,
                id: e.id,
                ts: e.ts,
            })
            .to_json(),
            EventKind::Edit => ServerFrame::Edit(&EditEvent {
                event: "edit",
                target: e.target?,
                message: &e.text,
                author: &e.name,
                id: e.id,
                ts: e.ts,
                place,
            })
            .to_json(),
            EventKind::Delete => ServerFrame::Delete(&DeleteEvent {
                event: "delete",
                target: e.target?,
                by: &e.name,
                id: e.id,
                ts: e.ts,
                place,
            })
            .to_json(),
            EventKind::ReactOn | EventKind::ReactOff => ServerFrame::React(&ReactEvent {
                event: "react",
                target: e.target?,
                emoji: &e.text,
                username: &e.name,
                on: kind == EventKind::ReactOn,
                id: e.id,
                ts: e.ts,
                place,
            })
            .to_json(),
            EventKind::Kick | EventKind::RoomMute => self.moderation_json(e, room_name?)?,
        };
        Some(json)
    }

    /// Whether `user` may see event `e`: see [`Chat::replay_json`].
    fn may_see(&self, user: UserId, e: &StoredEvent, kind: EventKind) -> bool {
        let mine = e.user == user;
        match (e.room, &e.to) {
            // One's own membership changes, also of a room one has left
            // or was kicked from since (the other devices learn of it).
            (Some(_), _)
                if matches!(
                    kind,
                    EventKind::RoomJoin | EventKind::RoomLeave | EventKind::Kick
                ) && mine =>
            {
                true
            }
            (Some(room), _) => self.rooms.role(RoomId(room), user).is_some(),
            (None, Some((to, _))) => mine || *to == user,
            (None, None) => true,
        }
    }
}
