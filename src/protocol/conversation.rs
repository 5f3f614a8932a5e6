//! The frames of the conversation features (SPEC §10): the events of
//! edits, deletions, reactions, typing and read markers, and a message as
//! a history page shows it (in its current state).

use serde::Serialize;

/// Where a conversation event belongs: its `room` (not general) or the
/// `to` of a direct message; flattened into each event.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Place<'a> {
    /// The room, for every room but general.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<&'a str>,
    /// The recipient of the direct message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<&'a str>,
}

/// `{"event": "edit", "target", "message", "author", "id", "ts"}` plus the
/// message's `room`/`to`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EditEvent<'a> {
    /// Always `edit`.
    pub event: &'static str,
    /// The message edited.
    pub target: i64,
    /// Its new text.
    pub message: &'a str,
    /// Its author (the only one who may edit it).
    pub author: &'a str,
    /// Its place in the event sequence.
    pub id: i64,
    /// Server time, Unix milliseconds.
    pub ts: i64,
    /// The conversation.
    #[serde(flatten)]
    pub place: Place<'a>,
}

/// `{"event": "delete", "target", "by", "id", "ts"}` plus the message's
/// `room`/`to`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeleteEvent<'a> {
    /// Always `delete`.
    pub event: &'static str,
    /// The message deleted.
    pub target: i64,
    /// Who deleted it.
    pub by: &'a str,
    /// Its place in the event sequence.
    pub id: i64,
    /// Server time, Unix milliseconds.
    pub ts: i64,
    /// The conversation.
    #[serde(flatten)]
    pub place: Place<'a>,
}

/// `{"event": "react", "target", "emoji", "username", "on", "id", "ts"}`
/// plus the message's `room`/`to`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReactEvent<'a> {
    /// Always `react`.
    pub event: &'static str,
    /// The message reacted to.
    pub target: i64,
    /// The emoji.
    pub emoji: &'a str,
    /// Who reacted.
    pub username: &'a str,
    /// Whether the reaction is now on.
    pub on: bool,
    /// Its place in the event sequence.
    pub id: i64,
    /// Server time, Unix milliseconds.
    pub ts: i64,
    /// The conversation.
    #[serde(flatten)]
    pub place: Place<'a>,
}

/// `{"event": "typing", "username"}` plus `room`/`to`: live only.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TypingEvent<'a> {
    /// Always `typing`.
    pub event: &'static str,
    /// Who is typing.
    pub username: &'a str,
    /// The conversation.
    #[serde(flatten)]
    pub place: Place<'a>,
}

/// `{"event": "read", "id"}` plus `room`/`with`, to the reader's other
/// sockets only.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReadEvent<'a> {
    /// Always `read`.
    pub event: &'static str,
    /// The read marker.
    pub id: i64,
    /// The room (not general).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<&'a str>,
    /// The other user of a direct conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with: Option<&'a str>,
}

/// Reactions to a message: each emoji and who reacted with it (in the
/// order they did), emoji in code point order.
pub type Reactions<'a> = std::collections::BTreeMap<&'a str, Vec<&'a str>>;

/// A message as a history page shows it: in its current state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PageMessage<'a> {
    /// The text (the latest edit's); absent once deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
    /// Its author.
    pub author: &'a str,
    /// Its id.
    pub id: i64,
    /// Server time, Unix milliseconds.
    pub ts: i64,
    /// The room, for every room but general.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<&'a str>,
    /// The recipient of a direct message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<&'a str>,
    /// When it was last edited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited: Option<i64>,
    /// Deleted: the text is gone.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The reactions.
    #[serde(skip_serializing_if = "Reactions::is_empty")]
    pub reactions: Reactions<'a>,
}
