//! The records of the event log (one sequence of ids for every
//! conversation) that the chat and the store both speak of: what an event
//! is, an event to store, a stored event as the replay reads it, a stored
//! message and its reactions as a history page reads them, and a
//! conversation to page. Plain data at the bottom of the crate, so that
//! the chat needs nothing from the store (which re-exports them).

use crate::ids::UserId;

/// What an event is. Stored as an integer; later kinds are appended,
/// never renumbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A chat message.
    Message = 0,
    /// A user became a member of a room.
    RoomJoin = 1,
    /// A user stopped being a member of a room.
    RoomLeave = 2,
    /// A message's new text (`target`: the message; `text`: the new
    /// text, erased with the message).
    Edit = 3,
    /// A message deleted (`user`: by whom).
    Delete = 4,
    /// A reaction added (`text`: the emoji).
    ReactOn = 5,
    /// A reaction taken back (`text`: the emoji).
    ReactOff = 6,
    /// A member kicked from a room (`user`: who; `target`: the
    /// moderator's user id; `text`: the reason).
    Kick = 7,
    /// A member muted in a room (as `Kick`; `text`: the mute's end in
    /// Unix milliseconds, a newline, the reason).
    RoomMute = 8,
}

impl EventKind {
    /// The kind of a stored integer; `None` for one this build does not
    /// know (a newer server's row), which the replay skips.
    pub fn from_i64(v: i64) -> Option<EventKind> {
        Some(match v {
            0 => EventKind::Message,
            1 => EventKind::RoomJoin,
            2 => EventKind::RoomLeave,
            3 => EventKind::Edit,
            4 => EventKind::Delete,
            5 => EventKind::ReactOn,
            6 => EventKind::ReactOff,
            7 => EventKind::Kick,
            8 => EventKind::RoomMute,
            _ => return None,
        })
    }
}

/// An event to store: its id is assigned by the chat, in order.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    /// Event id (increasing, one sequence for every conversation).
    pub id: i64,
    /// What it is.
    pub kind: EventKind,
    /// The author of a message; the member of a membership change.
    pub user: UserId,
    /// The room, `None` for general and for a direct message.
    pub room: Option<i64>,
    /// The recipient of a direct message.
    pub to: Option<UserId>,
    /// Server time, Unix milliseconds.
    pub ts: i64,
    /// The text (empty for a membership change).
    pub text: &'a str,
    /// The client's deduplication id, if it sent one.
    pub client_id: Option<&'a str>,
    /// The message an edit, deletion or reaction is about.
    pub target: Option<i64>,
}

/// One conversation's messages, for paging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversation {
    /// Room `general`.
    General,
    /// Another room, by id.
    Room(i64),
    /// The direct messages between two users (in either order).
    Direct(UserId, UserId),
}

/// A stored event as the replay reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Event id.
    pub id: i64,
    /// What it is; `None` for a kind this build does not know.
    pub kind: Option<EventKind>,
    /// The author or member.
    pub user: UserId,
    /// Their name as registered.
    pub name: String,
    /// The room (`None`: general or direct).
    pub room: Option<i64>,
    /// The recipient of a direct message, and their name.
    pub to: Option<(UserId, String)>,
    /// Server time, Unix milliseconds.
    pub ts: i64,
    /// The text.
    pub text: String,
    /// The message an edit, deletion or reaction is about.
    pub target: Option<i64>,
    /// A message that was deleted since (its text is gone).
    pub deleted: bool,
}

/// A stored message as a history page reads it (in its current state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Message id.
    pub id: i64,
    /// The author's name as registered.
    pub author: String,
    /// The text.
    pub text: String,
    /// Server time, Unix milliseconds.
    pub ts: i64,
    /// When it was last edited, Unix milliseconds.
    pub edited: Option<i64>,
    /// Deleted: the text is gone.
    pub deleted: bool,
}

/// A reaction as a history page reads it: the message, the emoji, and
/// who reacted (by name).
pub type StoredReaction = (i64, String, String);

/// What an edit, deletion or reaction needs to know of its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageInfo {
    /// The author.
    pub author: UserId,
    /// The room (`None`: general or direct).
    pub room: Option<i64>,
    /// The recipient of a direct message.
    pub to: Option<UserId>,
    /// Deleted already.
    pub deleted: bool,
}
