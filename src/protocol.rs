//! The JSON of the wire: request bodies of the REST endpoints, the frames a
//! chat client sends, and the frames and bodies the server sends. Pure serde
//! types and decoders; no I/O.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

mod conversation;
mod moderation;
pub use conversation::{
    DeleteEvent, EditEvent, PageMessage, Place, ReactEvent, Reactions, ReadEvent, TypingEvent,
};
pub use moderation::{
    AdminUserLine, AuditLine, InviteCodeBody, KickBody, ModEvent, MuteBody, ReasonBody, RoleBody,
    RoomMuteBody,
};

/// Body of `POST /api/register`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// The requested name.
    pub username: String,
    /// An invite code (`--registration invite`; ignored when open).
    #[serde(default)]
    pub invite: Option<String>,
}

/// Body of `POST /api/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The user key handed out at registration.
    pub key: String,
}

/// Decodes a REST request body: a JSON object with exactly the fields of
/// `T`, each a string. `None` for anything else, which the API answers with
/// 422 `invalid_request` (invalid JSON, not an object, a missing, extra,
/// duplicate or non-string field).
pub fn decode_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Option<T> {
    // serde takes a struct from an array too (`["alice"]`); only an object
    // is a request body.
    let first = body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(body).ok()
}

/// A frame as the client sends it: a message `{"message": "<text>"}`
/// (with an optional `"client_id"` that makes a resend safe, and `room` or
/// `to`), or one of the conversation frames of SPEC §10 (`edit`, `delete`,
/// `react`, `typing`, `read`). Which one is told by the fields present;
/// the combination is checked by [`decode_client_op`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFrame<'a> {
    /// Borrowed when the JSON string has no escapes, so the common case
    /// does not copy.
    #[serde(borrow, default, deserialize_with = "present")]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    client_id: Option<Cow<'a, str>>,
    /// A room other than general.
    #[serde(borrow, default, deserialize_with = "present")]
    room: Option<Cow<'a, str>>,
    /// A direct message's recipient (or a typing notice's).
    #[serde(borrow, default, deserialize_with = "present")]
    to: Option<Cow<'a, str>>,
    /// The other user of a direct conversation (read markers).
    #[serde(borrow, default, deserialize_with = "present")]
    with: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present_value")]
    edit: Option<i64>,
    #[serde(default, deserialize_with = "present_value")]
    delete: Option<i64>,
    #[serde(default, deserialize_with = "present_value")]
    react: Option<i64>,
    #[serde(borrow, default, deserialize_with = "present")]
    emoji: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present_value")]
    typing: Option<bool>,
    #[serde(default, deserialize_with = "present_value")]
    read: Option<i64>,
}

/// A field that, when present, must be a string: `"to": null` is a
/// mistake, not a message to general.
fn present<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Borrowed::deserialize(d).map(|b| Some(b.0))
}

/// A field that, when present, must be a `T` (never `null`).
fn present_value<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Where a client's frame goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// No `room` and no `to`: room general (Part 1).
    General,
    /// `"room": NAME` (also `general`, spelled out).
    Room(Cow<'a, str>),
    /// `"to": USERNAME` (`"with"` in a read marker): a direct
    /// conversation.
    To(Cow<'a, str>),
}

/// A decoded client frame.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientOp<'a> {
    /// A chat message.
    Message(ChatFrame<'a>),
    /// `{"edit": ID, "message": "new text"}`.
    Edit {
        /// The message edited.
        target: i64,
        /// Its new text (checked like a message's).
        text: Cow<'a, str>,
    },
    /// `{"delete": ID}`.
    Delete {
        /// The message deleted.
        target: i64,
    },
    /// `{"react": ID, "emoji": "👍"}`: toggles the sender's reaction.
    React {
        /// The message reacted to.
        target: i64,
        /// One emoji (see [`valid_emoji`]).
        emoji: Cow<'a, str>,
    },
    /// `{"typing": true}` with `room` or `to` (neither: general).
    Typing {
        /// `false` is acknowledged and relayed to nobody.
        on: bool,
        /// The conversation.
        target: Target<'a>,
    },
    /// `{"read": ID}` with `room` or `with` (neither: general).
    Read {
        /// The newest event read.
        id: i64,
        /// The conversation.
        target: Target<'a>,
    },
}

/// Longest emoji of a reaction, in Unicode scalar values (a flag, a family
/// with skin tones: sequences joined by ZWJ).
pub const MAX_EMOJI_CHARS: usize = 8;

/// An emoji a reaction may carry: 1 to [`MAX_EMOJI_CHARS`] Unicode scalar
/// values, none whitespace or a control character. Which sequences are
/// "really" emoji is the clients' business: Unicode adds some every year.
pub fn valid_emoji(emoji: &str) -> bool {
    let n = emoji.chars().take(MAX_EMOJI_CHARS + 1).count();
    (1..=MAX_EMOJI_CHARS).contains(&n)
        && !emoji.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Longest `client_id`, in bytes: an id, not a payload.
pub const MAX_CLIENT_ID: usize = 64;

/// A decoded chat frame.
#[derive(Debug, PartialEq, Eq)]
pub struct ChatFrame<'a> {
    /// The message text.
    pub text: Cow<'a, str>,
    /// The client's deduplication id, 1 to 64 bytes.
    pub client_id: Option<Cow<'a, str>>,
    /// Where it goes.
    pub target: Target<'a>,
}

/// Why a client's text frame was refused, as the code in its error ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckError {
    /// Not JSON as RFC 8259 defines it.
    InvalidJson,
    /// JSON, but not an object with exactly a non-empty string `message`
    /// holding a non-whitespace character.
    InvalidMessage,
    /// More Unicode scalar values than the configured maximum.
    MessageTooLong,
    /// A binary frame.
    BinaryNotSupported,
    /// Over the per-connection message rate.
    RateLimited,
    /// The room exists for the sender, but they are not in it.
    NotAMember,
    /// No such room, or a private one the sender is not in.
    RoomNotFound,
    /// A direct message to nobody.
    UserNotFound,
    /// An edit, deletion or reaction names no message the sender can see
    /// (or one deleted already).
    NotFound,
    /// An edit of someone else's message, or a deletion by someone who is
    /// neither its author nor a moderator of its room.
    Forbidden,
    /// A reaction's emoji is not 1 to 8 Unicode scalar values without
    /// whitespace.
    InvalidEmoji,
    /// The sender is muted (server-wide or in that room); the ack also
    /// carries `until`.
    Muted,
}

impl AckError {
    /// Every variant, for metrics.
    pub const ALL: [AckError; 12] = [
        AckError::InvalidJson,
        AckError::InvalidMessage,
        AckError::MessageTooLong,
        AckError::BinaryNotSupported,
        AckError::RateLimited,
        AckError::NotAMember,
        AckError::RoomNotFound,
        AckError::UserNotFound,
        AckError::NotFound,
        AckError::Forbidden,
        AckError::InvalidEmoji,
        AckError::Muted,
    ];

    /// The snake_case code sent in the ack.
    pub fn code(self) -> &'static str {
        match self {
            AckError::InvalidJson => "invalid_json",
            AckError::InvalidMessage => "invalid_message",
            AckError::MessageTooLong => "message_too_long",
            AckError::BinaryNotSupported => "binary_not_supported",
            AckError::RateLimited => "rate_limited",
            AckError::NotAMember => "not_a_member",
            AckError::RoomNotFound => "room_not_found",
            AckError::UserNotFound => "user_not_found",
            AckError::NotFound => "not_found",
            AckError::Forbidden => "forbidden",
            AckError::InvalidEmoji => "invalid_emoji",
            AckError::Muted => "muted",
        }
    }
}

/// Decodes a client's text frame into the chat message it carries,
/// checking the shape and the length rules of the spec (`max_chars`
/// Unicode scalar values, at least one non-whitespace character). Any
/// other kind of frame is `invalid_message` here; see [`decode_client_op`].
pub fn decode_chat_text(frame: &str, max_chars: usize) -> Result<ChatFrame<'_>, AckError> {
    match decode_client_op(frame, max_chars)? {
        ClientOp::Message(m) => Ok(m),
        _ => Err(AckError::InvalidMessage),
    }
}

/// Decodes any client frame (SPEC §5.3, §9, §10). The error is the code of
/// the error ack.
pub fn decode_client_op(frame: &str, max_chars: usize) -> Result<ClientOp<'_>, AckError> {
    // serde would also take a struct from an array (`["hi"]`); only an
    // object is a chat frame.
    let is_object = frame
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{');
    let typed = if is_object {
        serde_json::from_str::<ClientFrame<'_>>(frame).ok()
    } else {
        None
    };
    match typed {
        Some(f) => classify(f, max_chars),
        // The typed decoder stops at the first problem, which may be a
        // shape problem hiding a syntax error later on (`{"x": NaN}`), so
        // tell the two apart with a full syntax check. Only errors pay it.
        None if serde_json::from_str::<serde_json::Value>(frame).is_err() => {
            Err(AckError::InvalidJson)
        }
        None => Err(AckError::InvalidMessage),
    }
}

/// Which frame the fields make, each with exactly its own fields.
fn classify<'a>(f: ClientFrame<'a>, max_chars: usize) -> Result<ClientOp<'a>, AckError> {
    use AckError::InvalidMessage as Bad;
    let ClientFrame {
        message,
        client_id,
        room,
        to,
        with,
        edit,
        delete,
        react,
        emoji,
        typing,
        read,
    } = f;
    let kinds = [edit.is_some(), delete.is_some(), react.is_some()];
    let kinds = kinds.into_iter().chain([typing.is_some(), read.is_some()]);
    if kinds.filter(|&k| k).count() > 1 {
        return Err(Bad);
    }
    let no_extras = client_id.is_none() && room.is_none() && to.is_none() && with.is_none();
    if let Some(target) = edit {
        let text = message
            .filter(|_| no_extras && emoji.is_none())
            .ok_or(Bad)?;
        check_text(&text, max_chars)?;
        return Ok(ClientOp::Edit { target, text });
    }
    if let Some(target) = delete {
        let alone = no_extras && message.is_none() && emoji.is_none();
        return alone.then_some(ClientOp::Delete { target }).ok_or(Bad);
    }
    if let Some(target) = react {
        let emoji = emoji
            .filter(|_| no_extras && message.is_none())
            .ok_or(Bad)?;
        if !valid_emoji(&emoji) {
            return Err(AckError::InvalidEmoji);
        }
        return Ok(ClientOp::React { target, emoji });
    }
    if message.is_some() || emoji.is_some() || client_id.is_some() {
        if typing.is_some() || read.is_some() {
            return Err(Bad);
        }
    } else if let Some(on) = typing {
        let target = if with.is_none() {
            conversation(room, to)?
        } else {
            return Err(Bad);
        };
        return Ok(ClientOp::Typing { on, target });
    } else if let Some(id) = read {
        let target = if to.is_none() && id >= 0 {
            conversation(room, with)?
        } else {
            return Err(Bad);
        };
        return Ok(ClientOp::Read { id, target });
    }
    let (Some(text), None, None) = (message, with, emoji) else {
        return Err(Bad);
    };
    message_frame(text, client_id, conversation(room, to)?, max_chars)
}

/// A conversation named by at most one field, never by an empty name.
fn conversation<'a>(
    room: Option<Cow<'a, str>>,
    other: Option<Cow<'a, str>>,
) -> Result<Target<'a>, AckError> {
    match (room, other) {
        (None, None) => Ok(Target::General),
        (Some(r), None) if !r.is_empty() => Ok(Target::Room(r)),
        (None, Some(t)) if !t.is_empty() => Ok(Target::To(t)),
        _ => Err(AckError::InvalidMessage),
    }
}

/// A message frame: its `client_id` and text checked.
fn message_frame<'a>(
    text: Cow<'a, str>,
    client_id: Option<Cow<'a, str>>,
    target: Target<'a>,
    max_chars: usize,
) -> Result<ClientOp<'a>, AckError> {
    if client_id
        .as_ref()
        .is_some_and(|c| c.is_empty() || c.len() > MAX_CLIENT_ID)
    {
        return Err(AckError::InvalidMessage);
    }
    check_text(&text, max_chars)?;
    Ok(ClientOp::Message(ChatFrame {
        text,
        client_id,
        target,
    }))
}

/// The text rules of a message (and an edit): at least one
/// non-whitespace character, at most `max_chars` Unicode scalar values.
fn check_text(text: &str, max_chars: usize) -> Result<(), AckError> {
    if text.chars().all(char::is_whitespace) {
        // Also covers the empty string.
        return Err(AckError::InvalidMessage);
    }
    // Count at most max_chars + 1 scalars: enough to decide, bounded work.
    if text.chars().take(max_chars + 1).count() > max_chars {
        return Err(AckError::MessageTooLong);
    }
    Ok(())
}

/// A chat message as broadcast, replayed and listed in history.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChatMessage<'a> {
    /// The text.
    pub message: &'a str,
    /// Its author.
    pub author: &'a str,
    /// Its id: increasing, gap-free within a server's lifetime.
    pub id: i64,
    /// Server time, Unix milliseconds.
    pub ts: i64,
    /// The room, for every room but general (whose frames stay exactly
    /// Part 1's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<&'a str>,
    /// The recipient of a direct message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<&'a str>,
}

/// `{"event": "room_join"|"room_leave", "room", "username", "id", "ts"}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MemberEvent<'a> {
    /// `room_join` or `room_leave`.
    pub event: &'static str,
    /// The room.
    pub room: &'a str,
    /// Who joined or left.
    pub username: &'a str,
    /// Its place in the event sequence.
    pub id: i64,
    /// Server time, Unix milliseconds.
    pub ts: i64,
}

/// Body of `POST /api/rooms`: `{"name", "private": false}` (`private`
/// may be left out: a public room).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRoomBody {
    /// The room's name.
    pub name: String,
    /// Join by invitation only.
    #[serde(default)]
    pub private: bool,
}

/// Body of `POST /api/rooms/{name}/join` and `.../leave` when one is
/// sent: `{}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

/// Body of `POST /api/rooms/{name}/invite`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// Who is invited.
    pub username: String,
}

/// A line of `GET /api/rooms`, fields in the spec's order.
#[derive(Debug, Serialize)]
pub struct RoomLine<'a> {
    /// The room's name.
    pub name: &'a str,
    /// Invitation only.
    pub private: bool,
    /// How many members.
    pub members: usize,
    /// Whether the asking user is a member.
    pub joined: bool,
    /// Their role, `null` when not a member.
    pub role: Option<&'static str>,
    /// Messages after their read marker.
    pub unread: u64,
    /// The room's newest event id.
    pub last_id: i64,
}

/// Body of `GET /api/rooms`.
#[derive(Debug, Serialize)]
pub struct RoomList<'a> {
    /// General, the public rooms and the user's private ones.
    pub rooms: Vec<RoomLine<'a>>,
}

/// Body of `GET /api/rooms/{name}/members`.
#[derive(Debug, Serialize)]
pub struct MemberList<'a> {
    /// By role, then name.
    pub members: Vec<MemberLine<'a>>,
}

/// A line of `GET /api/rooms/{name}/members`.
#[derive(Debug, Serialize)]
pub struct MemberLine<'a> {
    /// The name as registered.
    pub username: &'a str,
    /// `owner`, `moderator` or `member`.
    pub role: &'static str,
    /// Has an open chat socket.
    pub online: bool,
}

/// Body of `GET /api/messages`.
#[derive(Debug, Serialize)]
pub struct History<'a> {
    /// The page, oldest first.
    pub messages: Vec<PageMessage<'a>>,
}

/// Body of `GET /api/user/{name}`, fields in the original's order.
#[derive(Debug, Serialize)]
pub struct UserInfo<'a> {
    /// The name as registered.
    pub username: &'a str,
    /// Whether the user has an open chat socket.
    pub online: bool,
    /// When the user was last online, Unix milliseconds; absent while
    /// online (and for a user never seen online).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<i64>,
    /// `@me` only: the user's open chat sockets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sockets: Option<usize>,
    /// `@me` only: how many the server allows (`--sockets-per-user`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sockets_per_user: Option<usize>,
    /// `@me` only, and only when true: the user is a server admin (the
    /// web client shows its admin page then).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

/// Frames the server sends on a chat WebSocket.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ServerFrame<'a> {
    /// `{"event": "join"|"leave", "username": ...}`.
    Presence {
        /// `join` or `leave`.
        event: &'static str,
        /// Who joined or left.
        username: &'a str,
    },
    /// `{"event": "resync"}`: too much was missed to replay; page the
    /// history instead.
    Event {
        /// The event's name.
        event: &'static str,
    },
    /// `{"message", "author", "id", "ts"}`: a chat message (the first two
    /// fields are the original's), plus `room` or `to` outside general.
    Message(&'a ChatMessage<'a>),
    /// A membership change.
    Member(&'a MemberEvent<'a>),
    /// An edit.
    Edit(&'a EditEvent<'a>),
    /// A deletion.
    Delete(&'a DeleteEvent<'a>),
    /// A reaction toggled.
    React(&'a ReactEvent<'a>),
    /// Someone is typing.
    Typing(&'a TypingEvent<'a>),
    /// The user's read marker moved (on another of their sockets).
    Read(&'a ReadEvent<'a>),
    /// A kick or a mute in a room.
    Moderation(&'a ModEvent<'a>),
    /// `{"status": true}`: the frame was accepted and stored nothing
    /// (typing, a read marker, a throttled typing notice).
    AckDone {
        /// Always true.
        status: bool,
    },
    /// `{"status": true, "id": 123}`: the sender's message is stored and
    /// went out.
    AckOk {
        /// Always true.
        status: bool,
        /// The message's id.
        id: i64,
    },
    /// `{"status": false, "code": "muted", "until": ts}`: the sender is
    /// muted until then (Unix milliseconds).
    AckMuted {
        /// Always false.
        status: bool,
        /// Always `muted`.
        code: &'static str,
        /// The mute's end.
        until: i64,
    },
    /// `{"status": false, "code": ...}`: the sender's frame was refused.
    AckErr {
        /// Always false.
        status: bool,
        /// Why.
        code: &'static str,
    },
}

impl ServerFrame<'_> {
    /// The frame as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing these plain structs of strings and bools cannot fail.
        serde_json::to_vec(self).expect("server frames always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AckError::*;

    #[test]
    fn chat_text_table() {
        let long_ok = format!(r#"{{"message":"{}"}}"#, "😀".repeat(300));
        let long_bad = format!(r#"{{"message":"{}"}}"#, "😀".repeat(301));
        let long_id = format!(r#"{{"message":"x","client_id":"{}"}}"#, "c".repeat(65));
        let cases: &[(&str, Result<&str, AckError>)] = &[
            (r#"{"message":"hi","client_id":"c1"}"#, Ok("hi")),
            (r#"{"message":"hi","room":"rust"}"#, Ok("hi")),
            (r#"{"message":"hi","to":"ben","client_id":"c"}"#, Ok("hi")),
            (
                r#"{"message":"hi","room":"rust","to":"ben"}"#,
                Err(InvalidMessage),
            ),
            (r#"{"message":"hi","room":""}"#, Err(InvalidMessage)),
            (r#"{"message":"hi","to":""}"#, Err(InvalidMessage)),
            (r#"{"message":"hi","room":5}"#, Err(InvalidMessage)),
            (r#"{"message":"hi","to":null}"#, Err(InvalidMessage)),
            (r#"{"message":"hi","client_id":""}"#, Err(InvalidMessage)),
            (r#"{"message":"hi","client_id":5}"#, Err(InvalidMessage)),
            (r#"{"message":"hi","client_id":null}"#, Err(InvalidMessage)),
            (&long_id, Err(InvalidMessage)),
            (r#"{"message":"hi"}"#, Ok("hi")),
            (r#"{"message":"a\"b"}"#, Ok("a\"b")),
            (r#" {"message" : "x"} "#, Ok("x")),
            (r#"{"message":"\ud83d\ude00"}"#, Ok("😀")),
            (&long_ok, Ok("")),
            (&long_bad, Err(MessageTooLong)),
            ("", Err(InvalidJson)),
            ("hi", Err(InvalidJson)),
            (r#"{"message":"hi""#, Err(InvalidJson)),
            (r#"{"message":NaN}"#, Err(InvalidJson)),
            (r#"{"x":NaN}"#, Err(InvalidJson)),
            (r#"{"message":"\ud800"}"#, Err(InvalidJson)),
            (r#"{"message":"hi"} x"#, Err(InvalidJson)),
            ("{\"message\":\"a\u{1}b\"}", Err(InvalidJson)),
            (r#"{"message":""}"#, Err(InvalidMessage)),
            (r#"{"message":" \n\t\u3000"}"#, Err(InvalidMessage)),
            (r#"{"message":5}"#, Err(InvalidMessage)),
            (r#"{"message":null}"#, Err(InvalidMessage)),
            (r#"{"message":"hi","x":1}"#, Err(InvalidMessage)),
            (r#"{"message":"a","message":"b"}"#, Err(InvalidMessage)),
            (r#"{}"#, Err(InvalidMessage)),
            (r#"["message"]"#, Err(InvalidMessage)),
            (r#"["hi"]"#, Err(InvalidMessage)),
            (r#"[NaN]"#, Err(InvalidJson)),
            (r#""message""#, Err(InvalidMessage)),
            ("null", Err(InvalidMessage)),
        ];
        for (input, want) in cases {
            let got = decode_chat_text(input, 300).map(|f| f.text);
            match (want, &got) {
                (Ok(""), Ok(_)) => {}
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{input}"),
                (Err(w), Err(g)) => assert_eq!(w, g, "{input}"),
                _ => panic!("{input}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn server_frames_keep_the_original_field_order() {
        let cases = [
            (
                ServerFrame::Presence {
                    event: "join",
                    username: "ann",
                },
                r#"{"event":"join","username":"ann"}"#,
            ),
            (
                ServerFrame::Message(&ChatMessage {
                    message: "<b>",
                    author: "ann",
                    id: 7,
                    ts: 9,
                    room: None,
                    to: None,
                }),
                r#"{"message":"<b>","author":"ann","id":7,"ts":9}"#,
            ),
            (
                ServerFrame::Message(&ChatMessage {
                    message: "x",
                    author: "ann",
                    id: 8,
                    ts: 9,
                    room: Some("rust"),
                    to: None,
                }),
                r#"{"message":"x","author":"ann","id":8,"ts":9,"room":"rust"}"#,
            ),
            (
                ServerFrame::Message(&ChatMessage {
                    message: "x",
                    author: "ann",
                    id: 8,
                    ts: 9,
                    room: None,
                    to: Some("ben"),
                }),
                r#"{"message":"x","author":"ann","id":8,"ts":9,"to":"ben"}"#,
            ),
            (
                ServerFrame::Member(&MemberEvent {
                    event: "room_join",
                    room: "rust",
                    username: "ann",
                    id: 3,
                    ts: 4,
                }),
                r#"{"event":"room_join","room":"rust","username":"ann","id":3,"ts":4}"#,
            ),
            (
                ServerFrame::AckOk {
                    status: true,
                    id: 3,
                },
                r#"{"status":true,"id":3}"#,
            ),
            (
                ServerFrame::Event { event: "resync" },
                r#"{"event":"resync"}"#,
            ),
            (
                ServerFrame::AckErr {
                    status: false,
                    code: "invalid_json",
                },
                r#"{"status":false,"code":"invalid_json"}"#,
            ),
        ];
        for (frame, json) in cases {
            assert_eq!(String::from_utf8(frame.to_json()).unwrap(), json);
        }
    }

    #[test]
    fn rest_bodies() {
        assert!(decode_body::<RegisterBody>(br#"{"username":"a"}"#).is_some());
        for bad in [
            &br#"{"username":5}"#[..],
            br#"{"username":"a","x":1}"#,
            br#"{}"#,
            br#"[]"#,
            br#"["a"]"#,
            b"username=a",
            br#"{"username":"a","username":"b"}"#,
        ] {
            assert!(decode_body::<RegisterBody>(bad).is_none(), "{bad:?}");
        }
    }
}
