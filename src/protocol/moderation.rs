//! The JSON of moderation and administration (SPEC §12): the request
//! bodies of `/api/admin/...` and of room moderation, and the `kick` and
//! `mute` events a room's members receive.

use serde::{Deserialize, Serialize};

/// `{"event": "kick" | "mute", "room", "username", "by", "reason", "id",
/// "ts"}`, plus `until` (Unix milliseconds) on a mute.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ModEvent<'a> {
    /// `kick` or `mute`.
    pub event: &'static str,
    /// The room (`general` too: a mute there is announced like any other).
    pub room: &'a str,
    /// Who was kicked or muted.
    pub username: &'a str,
    /// The moderator who did it.
    pub by: &'a str,
    /// Why, as the moderator wrote it (may be empty).
    pub reason: &'a str,
    /// Its place in the event sequence.
    pub id: i64,
    /// Server time, Unix milliseconds.
    pub ts: i64,
    /// A mute's end, Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
}

/// Body of `POST /api/admin/users/{name}/ban` (and of a purge or a
/// deletion when one is sent): an optional reason.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why; kept in the audit.
    #[serde(default)]
    pub reason: String,
}

/// Body of `POST /api/admin/users/{name}/mute`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MuteBody {
    /// How long: `30s`, `10m`, `1h`, `2d`, `1w`.
    pub duration: String,
    /// Why; kept in the audit.
    #[serde(default)]
    pub reason: String,
}

/// Body of `POST /api/admin/users/{name}/role`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// `admin` or `user`.
    pub role: String,
}

/// Body of `POST /api/admin/invites`; both fields optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteCodeBody {
    /// How many registrations the code allows (default 1).
    #[serde(default)]
    pub uses: Option<u32>,
    /// How long it stays valid (`7d`; default: no expiry).
    #[serde(default)]
    pub expires: Option<String>,
}

/// Body of `POST /api/rooms/{name}/kick`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KickBody {
    /// Who is kicked.
    pub username: String,
    /// Why; shown to the room.
    #[serde(default)]
    pub reason: String,
}

/// Body of `POST /api/rooms/{name}/mute`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomMuteBody {
    /// Who is muted.
    pub username: String,
    /// How long (see [`MuteBody::duration`]).
    pub duration: String,
    /// Why; shown to the room.
    #[serde(default)]
    pub reason: String,
}

/// A line of `GET /api/admin/users`.
#[derive(Debug, Serialize)]
pub struct AdminUserLine<'a> {
    /// The name as registered.
    pub username: &'a str,
    /// When it registered, Unix milliseconds (`null` for accounts older
    /// than this field, or imported).
    pub created: Option<i64>,
    /// When it was last online, Unix milliseconds (`null` while online or
    /// never seen).
    pub last_seen: Option<i64>,
    /// Has an open chat socket.
    pub online: bool,
    /// `admin` or `user`.
    pub role: &'static str,
    /// Banned.
    pub banned: bool,
    /// The end of a server-wide mute in force, Unix milliseconds.
    pub muted_until: Option<i64>,
}

/// A line of `GET /api/admin/audit`.
#[derive(Debug, Serialize)]
pub struct AuditLine<'a> {
    /// Its id (page with `before`).
    pub id: i64,
    /// When, Unix milliseconds.
    pub ts: i64,
    /// Who did it.
    pub by: &'a str,
    /// What: `ban`, `unban`, `mute`, `unmute`, `reset_key`, `purge`,
    /// `delete`, `role`, `invite`, `kick`, `room_mute`, `moderator`,
    /// `rotate_key`.
    pub action: &'a str,
    /// To whom (`null` for an invite).
    pub target: Option<&'a str>,
    /// The room of a room action.
    pub room: Option<&'a str>,
    /// Why, as given.
    pub reason: &'a str,
    /// More: a mute's end, a role's name, how many messages a purge
    /// deleted, an invite's uses.
    pub detail: &'a str,
}
