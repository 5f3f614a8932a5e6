//! Moderation as chat state (SPEC §12): who is an admin, who is banned,
//! muted server-wide, muted in a room or kicked from one, and what each
//! action does to the live chat: sessions ended, sockets closed, `kick`
//! and `mute` events, `muted` acks.
//!
//! All of it lives in memory, loaded at start-up, so the message path
//! checks a mute with a map lookup (none at all while nobody is muted)
//! and never a query. The API authorises and stores; the chat decides
//! what happens on the wire, sans-IO like the rest of the chat.

use super::conversation::Change;
use super::rooms::Dest;
use super::rooms::{GENERAL, Role, RoomError, RoomId};
use super::{Chat, Outbox, SessionKey};
use crate::event::{EventKind, MessageInfo, NewEvent, StoredEvent};
use crate::ids::{Millis, UserId};
use crate::protocol::{AckError, ModEvent, ServerFrame};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Longest mute, ban-free: a year. A longer one is a ban.
pub const MAX_DURATION_MS: i64 = 366 * 24 * 3600 * 1000;

/// The close code and reason a banned user's sockets get.
pub const BANNED: (u16, &str) = (1008, "banned");
/// The close code and reason of a deleted account's sockets.
pub const DELETED: (u16, &str) = (1008, "account deleted");
/// The close of sockets whose session a key change ended: as a logout.
pub const KEY_CHANGED: (u16, &str) = (1000, "logged out");

/// A duration as moderators type it: a whole number and a unit, `s`,
/// `m`, `h`, `d` or `w` (`30s`, `10m`, `1h`, `2d`, `1w`), from one second
/// to a year. Milliseconds, or `None`.
pub fn parse_duration(text: &str) -> Option<i64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() || number.len() > 9 {
        return None;
    }
    let n: i64 = number.parse().ok()?;
    let unit_ms = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return None,
    };
    let ms = n.checked_mul(unit_ms)?;
    (1..=MAX_DURATION_MS).contains(&ms).then_some(ms)
}

/// The moderation state. See the module doc.
#[derive(Debug, Default)]
pub(super) struct Moderation {
    /// `--admins`, folded to lower case: admins whatever the store says.
    config_admins: HashSet<Box<str>>,
    /// Admins granted through the API (stored).
    granted: HashSet<UserId>,
    banned: HashSet<UserId>,
    /// Server-wide mutes: their end, Unix milliseconds.
    muted: HashMap<UserId, i64>,
    /// Room mutes (general too): their end, Unix milliseconds.
    room_muted: HashMap<(RoomId, UserId), i64>,
    /// Kicked and not invited back since.
    kicked: HashSet<(RoomId, UserId)>,
    /// The end of the mute that refused the last message.
    refused_until: Option<i64>,
}

/// Why a moderation request was refused; each says what the peer sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModError {
    /// A room error (404 `room_not_found`, 404 `user_not_found`, 403
    /// `forbidden`).
    Room(RoomError),
    /// 400 `not_a_member`: the user is not in that room.
    NotAMember,
    /// 400 `cannot_kick`: nobody leaves general.
    CannotKick,
    /// 400 `invalid_duration`.
    InvalidDuration,
}

impl ModError {
    /// HTTP status and error code.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            ModError::Room(e) => e.status(),
            ModError::NotAMember => (400, "not_a_member"),
            ModError::CannotKick => (400, "cannot_kick"),
            ModError::InvalidDuration => (400, "invalid_duration"),
        }
    }
}

impl From<RoomError> for ModError {
    fn from(e: RoomError) -> ModError {
        ModError::Room(e)
    }
}

/// A kick or a room mute, for the caller to store in the turn's batch
/// (its event, and the kick or mute row) and to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomAction {
    /// `Kick` or `RoomMute`.
    pub kind: EventKind,
    /// The room.
    pub room: RoomId,
    /// Its name.
    pub room_name: Rc<str>,
    /// Who was kicked or muted.
    pub user: UserId,
    /// Their name.
    pub username: Rc<str>,
    /// The moderator.
    pub by: UserId,
    /// The event's id.
    pub id: i64,
    /// The event's time, Unix milliseconds.
    pub ts: i64,
    /// A mute's end, Unix milliseconds.
    pub until: Option<i64>,
    /// The reason, as given.
    pub reason: String,
    /// The event's stored text (see [`EventKind::RoomMute`]).
    text: String,
}

impl RoomAction {
    /// The event row to insert.
    pub fn row(&self) -> NewEvent<'_> {
        NewEvent {
            id: self.id,
            kind: self.kind,
            user: self.user,
            room: Some(self.room.0),
            to: None,
            ts: self.ts,
            text: &self.text,
            client_id: None,
            target: Some(self.by.0),
        }
    }
}

impl Chat {
    /// Start-up: the names given to `--admins`.
    pub fn set_config_admins<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        let folded = names.into_iter().map(|n| n.to_ascii_lowercase().into());
        self.moderation.config_admins = folded.collect();
    }

    /// Start-up: a stored admin grant, ban, mute, room mute or kick.
    pub fn restore_admin(&mut self, user: UserId) {
        self.moderation.granted.insert(user);
    }

    /// Start-up: a stored ban.
    pub fn restore_ban(&mut self, user: UserId) {
        self.moderation.banned.insert(user);
    }

    /// Start-up: a stored server-wide mute, ending at `until`.
    pub fn restore_mute(&mut self, user: UserId, until: i64) {
        self.moderation.muted.insert(user, until);
    }

    /// Start-up: a stored room mute.
    pub fn restore_room_mute(&mut self, room: RoomId, user: UserId, until: i64) {
        self.moderation.room_muted.insert((room, user), until);
    }

    /// Start-up: a stored kick.
    pub fn restore_kick(&mut self, room: RoomId, user: UserId) {
        self.moderation.kicked.insert((room, user));
    }

    /// Start-up, and after a failed commit: a deleted account, which is
    /// no longer anybody's name.
    pub fn forget_user(&mut self, user: UserId) {
        self.directory.remove(user);
    }

    /// After a failed commit: forgets the stored moderation state (not
    /// `--admins`), to load it again from the store.
    pub fn forget_moderation(&mut self) {
        let config_admins = std::mem::take(&mut self.moderation.config_admins);
        self.moderation = Moderation {
            config_admins,
            ..Moderation::default()
        };
    }

    /// The user named `name` (any case): their id and name as registered.
    pub fn find_user(&self, name: &str) -> Option<(UserId, Rc<str>)> {
        self.directory.find(name).map(|(u, n)| (u, n.clone()))
    }

    /// The name of `user` as registered.
    pub fn user_name(&self, user: UserId) -> Option<Rc<str>> {
        self.directory.name(user).cloned()
    }

    /// Whether `user` is an admin: named in `--admins`, or granted.
    pub fn is_admin(&self, user: UserId) -> bool {
        self.moderation.granted.contains(&user) || self.is_config_admin(user)
    }

    /// Whether `user` is named in `--admins` (a role no API takes away).
    pub fn is_config_admin(&self, user: UserId) -> bool {
        let admins = &self.moderation.config_admins;
        !admins.is_empty()
            && self
                .directory
                .name(user)
                .is_some_and(|n| admins.contains(n.to_ascii_lowercase().as_str()))
    }

    /// Grants or takes back the admin role.
    pub fn set_admin(&mut self, user: UserId, admin: bool) {
        if admin {
            self.moderation.granted.insert(user);
        } else {
            self.moderation.granted.remove(&user);
        }
    }

    /// Whether `user` is banned.
    pub fn is_banned(&self, user: UserId) -> bool {
        self.moderation.banned.contains(&user)
    }

    /// The end of the server-wide mute of `user` in force at `now`.
    pub fn mute_end(&self, user: UserId, now: Millis) -> Option<i64> {
        let now = self.unix_ms(now);
        self.moderation
            .muted
            .get(&user)
            .copied()
            .filter(|&u| u > now)
    }

    /// Bans `user`: every session ends, every socket closes with 1008
    /// `banned` (the others get `leave`). Returns false when banned already.
    pub fn ban(&mut self, user: UserId, out: &mut impl Outbox) -> bool {
        let fresh = self.moderation.banned.insert(user);
        self.end_sessions_of(user, None, BANNED, out);
        fresh
    }

    /// Lifts a ban. Returns false when there was none.
    pub fn unban(&mut self, user: UserId) -> bool {
        self.moderation.banned.remove(&user)
    }

    /// Mutes `user` server-wide until `until` (Unix milliseconds).
    pub fn mute(&mut self, user: UserId, until: i64) {
        self.moderation.muted.insert(user, until);
    }

    /// Lifts a server-wide mute. Returns false when none was in force.
    pub fn unmute(&mut self, user: UserId, now: Millis) -> bool {
        let was = self.mute_end(user, now).is_some();
        self.moderation.muted.remove(&user);
        was
    }

    /// Ends every session of `user` but `keep`; their sockets close with
    /// `close`. Returns how many sessions ended.
    pub fn end_sessions_of(
        &mut self,
        user: UserId,
        keep: Option<&SessionKey>,
        close: (u16, &'static str),
        out: &mut impl Outbox,
    ) -> usize {
        let keys = self.user_sessions.get(&user).cloned().unwrap_or_default();
        let mut ended = 0;
        for key in keys.iter().filter(|k| Some(*k) != keep) {
            let Some(session) = self.end_session(key) else {
                continue;
            };
            ended += 1;
            for conn in session.sockets {
                out.close(conn, close.0, close.1);
                self.remove_socket(conn);
            }
        }
        ended
    }

    /// Deletes every listed message of a user as admin `by`: a `delete`
    /// event each, to its conversation. Returns the changes to store.
    pub fn purge(
        &mut self,
        by: (UserId, &str),
        messages: &[(i64, MessageInfo)],
        now: Millis,
        out: &mut impl Outbox,
    ) -> Vec<Change> {
        messages
            .iter()
            .filter(|(_, info)| !info.deleted)
            .map(|(id, info)| self.delete_message_as(by, *id, info, now, out))
            .collect()
    }

    /// Removes the account of `user` from the live chat: sessions end,
    /// sockets close with 1008 `account deleted`, room memberships and
    /// moderation state go, and the name is free. Returns the rooms whose
    /// member rows the caller deletes.
    pub fn delete_user(&mut self, user: UserId, out: &mut impl Outbox) -> Vec<RoomId> {
        self.end_sessions_of(user, None, DELETED, out);
        let rooms: Vec<RoomId> = self
            .rooms
            .of_user
            .get(&user)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for &room in &rooms {
            self.drop_member(room, user);
        }
        let m = &mut self.moderation;
        m.granted.remove(&user);
        m.banned.remove(&user);
        m.muted.remove(&user);
        m.room_muted.retain(|(_, u), _| *u != user);
        m.kicked.retain(|(_, u)| *u != user);
        self.reads.retain(|(u, _), _| *u != user);
        self.directory.remove(user);
        rooms
    }

    /// Whether `user` was kicked from `room` and not invited back.
    pub fn is_kicked(&self, room: RoomId, user: UserId) -> bool {
        self.moderation.kicked.contains(&(room, user))
    }

    /// An invitation lifts a kick.
    pub(super) fn unkick(&mut self, room: RoomId, user: UserId) {
        self.moderation.kicked.remove(&(room, user));
    }

    /// The room `name` as moderator `by` may act on it, and the target:
    /// admins see every room, others only their own (a private room they
    /// are not in does not exist: 404). `by` must be an admin, the owner
    /// or a moderator; the target a member of lower rank (the owner is
    /// out of reach; a moderator only of the owner or an admin).
    fn moderated(
        &self,
        by: UserId,
        name: &str,
        target: &str,
    ) -> Result<(RoomId, UserId, Rc<str>), ModError> {
        let admin = self.is_admin(by);
        let room = if admin {
            self.rooms.find(name).ok_or(RoomError::NotFound)?
        } else {
            self.rooms.visible(name, by)?
        };
        let rank = self.rooms.role(room, by);
        if !admin && !matches!(rank, Some(Role::Owner | Role::Moderator)) {
            return Err(RoomError::Forbidden.into());
        }
        let (user, username) = self.find_user(target).ok_or(RoomError::UserNotFound)?;
        let theirs = self.rooms.role(room, user).ok_or(ModError::NotAMember)?;
        let outranked = match theirs {
            Role::Owner => room != GENERAL,
            Role::Moderator => !admin && rank != Some(Role::Owner),
            Role::Member => false,
        };
        if user == by || outranked || (self.is_admin(user) && !admin) {
            return Err(RoomError::Forbidden.into());
        }
        Ok((room, user, username))
    }

    /// `POST /api/rooms/{name}/kick`: the `kick` event goes to the room
    /// (the kicked user's sockets too, so every device learns it), then
    /// the user is no longer a member and receives nothing more of it; a
    /// public room refuses their join until a moderator invites them.
    pub fn kick(
        &mut self,
        by: UserId,
        name: &str,
        target: &str,
        reason: &str,
        now: Millis,
        out: &mut impl Outbox,
    ) -> Result<RoomAction, ModError> {
        let (room, user, username) = self.moderated(by, name, target)?;
        if room == GENERAL {
            return Err(ModError::CannotKick);
        }
        let action = self.room_action(
            EventKind::Kick,
            (room, user, username),
            by,
            None,
            reason,
            now,
        );
        self.announce_action(&action, out);
        self.drop_member(room, user);
        self.moderation.kicked.insert((room, user));
        Ok(action)
    }

    /// `POST /api/rooms/{name}/mute`: the user's messages to the room get
    /// `muted` acks until `duration` (milliseconds) has passed; the `mute`
    /// event goes to the room.
    #[allow(clippy::too_many_arguments)]
    pub fn room_mute(
        &mut self,
        by: UserId,
        name: &str,
        target: &str,
        duration: i64,
        reason: &str,
        now: Millis,
        out: &mut impl Outbox,
    ) -> Result<RoomAction, ModError> {
        let found = self.moderated(by, name, target)?;
        let until = self.unix_ms(now).saturating_add(duration);
        let (room, user) = (found.0, found.1);
        let action = self.room_action(EventKind::RoomMute, found, by, Some(until), reason, now);
        self.announce_action(&action, out);
        self.moderation.room_muted.insert((room, user), until);
        Ok(action)
    }

    /// `POST /api/rooms/{name}/moderators`: the owner (or an admin) makes
    /// a member a moderator. Returns the room and the user, whose role the
    /// caller stores.
    pub fn make_moderator(
        &mut self,
        by: UserId,
        name: &str,
        target: &str,
    ) -> Result<(RoomId, UserId), ModError> {
        let admin = self.is_admin(by);
        let room = if admin {
            self.rooms.find(name).ok_or(RoomError::NotFound)?
        } else {
            self.rooms.visible(name, by)?
        };
        if room == GENERAL || (!admin && self.rooms.role(room, by) != Some(Role::Owner)) {
            return Err(RoomError::Forbidden.into());
        }
        let (user, _) = self.find_user(target).ok_or(RoomError::UserNotFound)?;
        match self.rooms.role(room, user) {
            None => Err(ModError::NotAMember),
            Some(Role::Owner) => Err(RoomError::Forbidden.into()),
            Some(_) => {
                if let Some(r) = self.rooms.rooms.get_mut(&room) {
                    r.members.insert(user, Role::Moderator);
                }
                Ok((room, user))
            }
        }
    }

    fn room_action(
        &mut self,
        kind: EventKind,
        (room, user, username): (RoomId, UserId, Rc<str>),
        by: UserId,
        until: Option<i64>,
        reason: &str,
        now: Millis,
    ) -> RoomAction {
        let (id, ts) = self.next_event(now);
        let room_name = self.rooms.get(room).map(|r| r.name.clone());
        let text = match until {
            Some(until) => format!("{until}\n{reason}"),
            None => reason.to_owned(),
        };
        RoomAction {
            kind,
            room,
            room_name: room_name.unwrap_or_default(),
            user,
            username,
            by,
            id,
            ts,
            until,
            reason: reason.to_owned(),
            text,
        }
    }

    /// A kick or mute event to the room's online members (all of general).
    fn announce_action(&mut self, a: &RoomAction, out: &mut impl Outbox) {
        self.flush_presence(out);
        let by = self.user_name(a.by).unwrap_or_default();
        let json = ServerFrame::Moderation(&ModEvent {
            event: if a.kind == EventKind::Kick {
                "kick"
            } else {
                "mute"
            },
            room: &a.room_name,
            username: &a.username,
            by: &by,
            reason: &a.reason,
            id: a.id,
            ts: a.ts,
            until: a.until,
        })
        .to_json();
        if a.room == GENERAL {
            self.general_last_id = a.id;
            out.deliver_event(self.online.iter().chain(self.streams.all()), &json);
        } else if let Some(room) = self.rooms.rooms.get_mut(&a.room) {
            room.last_id = a.id;
            let streams = self.streams.of_room(a.room);
            out.deliver_event(room.online.iter().copied().chain(streams), &json);
        }
    }

    /// The replayed frame of a stored kick or mute event in `room`.
    pub(super) fn moderation_json(&self, e: &StoredEvent, room: &str) -> Option<Vec<u8>> {
        let kick = e.kind? == EventKind::Kick;
        let (until, reason) = if kick {
            (None, e.text.as_str())
        } else {
            let (until, reason) = e.text.split_once('\n')?;
            (Some(until.parse().ok()?), reason)
        };
        let by = e.target.and_then(|u| self.user_name(UserId(u)));
        let json = ServerFrame::Moderation(&ModEvent {
            event: if kick { "kick" } else { "mute" },
            room,
            username: &e.name,
            by: by.as_deref().unwrap_or(""),
            reason,
            id: e.id,
            ts: e.ts,
            until,
        })
        .to_json();
        Some(json)
    }

    /// The end of the mute that stops `user`'s message to `dest` (or, for
    /// `None`, a server-wide one), if one is in force at `now`. Costs
    /// nothing while nobody is muted: the message path asks every time.
    pub(super) fn muted_until(
        &self,
        user: UserId,
        dest: Option<&Dest>,
        now: Millis,
    ) -> Option<i64> {
        let m = &self.moderation;
        if m.muted.is_empty() && m.room_muted.is_empty() {
            return None;
        }
        let now = self.unix_ms(now);
        let global = m.muted.get(&user).copied();
        let room = match dest {
            Some(Dest::General) => Some(GENERAL),
            Some(Dest::Room(r)) => Some(*r),
            _ => None,
        };
        let local = room.and_then(|r| m.room_muted.get(&(r, user)).copied());
        global.max(local).filter(|&until| until > now)
    }

    /// `Err(AckError::Muted)` when a mute stops `user`'s message to `dest`
    /// (see [`Chat::muted_until`]); its end is then
    /// [`Chat::last_mute_end`], which the `muted` ack carries.
    pub(super) fn check_mute(
        &mut self,
        user: UserId,
        dest: Option<&Dest>,
        now: Millis,
    ) -> Result<(), AckError> {
        let until = self.muted_until(user, dest, now);
        self.moderation.refused_until = until;
        until.map_or(Ok(()), |_| Err(AckError::Muted))
    }

    /// The end of the mute that refused the last message with
    /// [`AckError::Muted`] (for an answer that says until when).
    pub fn last_mute_end(&self) -> Option<i64> {
        self.moderation.refused_until
    }

    /// Asserts that no banned user holds a session or a socket, and no
    /// kicked user is a member of the room they were kicked from.
    pub(super) fn check_moderation(&self) {
        for user in &self.moderation.banned {
            assert!(
                !self.user_sessions.contains_key(user),
                "banned {user:?} has a session"
            );
            assert!(
                !self.user_sockets.contains_key(user),
                "banned {user:?} has a socket"
            );
        }
        for (room, user) in &self.moderation.kicked {
            assert!(
                self.rooms.role(*room, *user).is_none(),
                "kicked {user:?} is in {room:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatConfig, ConnId};

    #[derive(Default)]
    struct Rec {
        sent: Vec<(ConnId, String)>,
        closed: Vec<(ConnId, u16, &'static str)>,
    }

    impl Outbox for Rec {
        fn deliver(&mut self, to: impl Iterator<Item = ConnId>, json: &[u8]) {
            let json = String::from_utf8(json.to_vec()).unwrap();
            self.sent.extend(to.map(|c| (c, json.clone())));
        }
        fn close(&mut self, conn: ConnId, code: u16, reason: &'static str) {
            self.closed.push((conn, code, reason));
        }
    }

    /// Users 1 and 2 (`u1`, `u2`), each logged in and on socket 1 and 2;
    /// user 2 also on a second session with socket 3.
    fn chat() -> (Chat, Rec) {
        let cfg = ChatConfig {
            session_ttl: Millis(60_000),
            sessions_per_user: 4,
            max_chars: 300,
            burst: 0,
            rate_per_sec: 0,
            register_limit: 0,
            register_window: Millis(1000),
            login_fail_limit: 0,
            login_window: Millis(1000),
            dedupe_window: Millis(1000),
        };
        let mut chat = Chat::new(cfg, Millis(0), 0);
        let mut out = Rec::default();
        for (conn, user, token) in [(1, 1, "a"), (2, 2, "b"), (3, 2, "c")] {
            let (user, name) = (UserId(user), format!("u{}", user));
            chat.add_user(user, &name);
            chat.login(SessionKey::of(token), user, &name, Millis(0));
            chat.ws_open(ConnId(conn), &SessionKey::of(token), Millis(0));
        }
        chat.flush_presence(&mut out);
        out.sent.clear();
        chat.check();
        (chat, out)
    }

    #[test]
    fn a_ban_ends_every_session_and_closes_every_socket() {
        let (mut chat, mut out) = chat();
        assert!(chat.ban(UserId(2), &mut out));
        assert_eq!(
            out.closed,
            [(ConnId(2), 1008, "banned"), (ConnId(3), 1008, "banned")]
        );
        chat.flush_presence(&mut out);
        let leave = r#"{"event":"leave","username":"u2"}"#.to_string();
        assert_eq!(out.sent, [(ConnId(1), leave)]);
        assert_eq!(chat.session_count(), 1);
        assert!(!chat.is_online(UserId(2)) && chat.is_banned(UserId(2)));
        chat.check();
        assert!(!chat.ban(UserId(2), &mut out), "banned already");
        assert!(chat.unban(UserId(2)) && !chat.is_banned(UserId(2)));
    }

    #[test]
    fn a_mute_answers_muted_until_it_ends_or_is_lifted() {
        let (mut chat, mut out) = chat();
        chat.mute(UserId(1), 5000);
        assert!(
            chat.ws_text(ConnId(1), r#"{"message":"x"}"#, Millis(10), &mut out)
                .is_none()
        );
        let muted = r#"{"status":false,"code":"muted","until":5000}"#.to_string();
        assert_eq!(out.sent, [(ConnId(1), muted)]);
        out.sent.clear();
        // Past its end the mute is over by itself.
        let sent = chat.ws_text(ConnId(1), r#"{"message":"x"}"#, Millis(5000), &mut out);
        assert!(sent.is_some());
        assert!(!chat.unmute(UserId(1), Millis(5000)), "over already");
        assert_eq!(chat.mute_end(UserId(1), Millis(0)), None);
    }

    #[test]
    fn durations() {
        let cases = [
            ("30s", Some(30_000)),
            ("10m", Some(600_000)),
            ("1h", Some(3_600_000)),
            ("2d", Some(2 * 86_400_000)),
            ("1w", Some(7 * 86_400_000)),
            ("366d", Some(MAX_DURATION_MS)),
            ("367d", None),
            ("0m", None),
            ("10", None),
            ("m", None),
            ("", None),
            ("1.5h", None),
            ("-1h", None),
            ("10 m", None),
            ("10M", None),
            ("9999999999d", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), want, "{text:?}");
        }
    }
}
