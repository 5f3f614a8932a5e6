//! The loop's side of storage: what comes back at start-up, the per-turn
//! commit that releases acks, and the retention steps.

use super::core::{Core, Timer};
use crate::chat::{Accepted, SessionKey};
use crate::config::LogLevel;
use crate::event::NewEvent;
use crate::ids::{ConnId, Millis, UserId};
use crate::store::StoreError;
use std::collections::HashSet;
use std::rc::Rc;

/// The row that stores an accepted message (the chat knows nothing of
/// the store's types).
pub(super) fn message_row(accepted: &Accepted) -> NewEvent<'_> {
    accepted.row()
}

/// Wall-clock Unix milliseconds (only for timestamps and stored times;
/// every timeout runs on the monotonic clock).
pub(super) fn unix_ms_now() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `Millis` of a stored Unix time, `age` before `now`, never below zero.
fn millis_ago(now: Millis, now_unix: i64, then_unix: i64) -> Millis {
    let age = u64::try_from(now_unix.saturating_sub(then_unix)).unwrap_or(0);
    now.saturating_sub(Millis(age))
}

/// Start-up: message ids continue after the stored ones, live sessions and
/// recent `client_id`s come back with their remaining time, and sessions
/// that ended while the server was down are deleted.
pub(super) fn restore(
    core: &mut Core,
    now: Millis,
    unix_now: i64,
) -> Result<(), crate::store::StoreError> {
    let ttl = Millis::of(core.cfg.session_ttl);
    let (id, ts) = core.store.newest_message()?;
    core.chat.continue_after(id, ts);
    restore_rooms(core)?;
    for s in core.store.load_sessions()? {
        let last = millis_ago(now, unix_now, s.last_active);
        match crate::chat::SessionKey::from_hex(&s.token_hash) {
            Some(key) if now - last < ttl => core.chat.restore_session(key, s.user, &s.name, last),
            _ => core.store.delete_session(&s.token_hash)?,
        }
    }
    let window = i64::try_from(Millis::of(core.cfg.dedupe_window).0).unwrap_or(i64::MAX);
    for (user, client_id, id, ts) in core.store.recent_client_ids(unix_now - window)? {
        core.chat
            .restore_client_id(user, &client_id, id, millis_ago(now, unix_now, ts));
    }
    core.store.commit()
}

/// Start-up: every user's name, the rooms, their members and their newest
/// event ids come back into the chat's memory, where messages find them
/// without a query.
fn restore_rooms(core: &mut Core) -> Result<(), crate::store::StoreError> {
    use crate::chat::{Role, RoomId};
    for user in core.store.load_users()? {
        core.chat.add_user(user.id, &user.name);
    }
    for room in core.store.load_rooms()? {
        core.chat
            .restore_room(RoomId(room.id), &room.name, room.private);
    }
    for (room, user, role) in core.store.load_members()? {
        core.chat
            .restore_member(RoomId(room), user, Role::parse(&role));
    }
    for (room, id) in core.store.room_last_ids()? {
        let room = room.map_or(crate::chat::GENERAL, RoomId);
        core.chat.restore_room_last_id(room, id);
    }
    restore_moderation(core)?;
    restore_conversations(core)
}

/// Start-up (and after a failed commit): `--admins`, and the stored
/// grants, bans, mutes, kicks and deleted accounts, into the chat's
/// memory, where every check finds them without a query.
fn restore_moderation(core: &mut Core) -> Result<(), crate::store::StoreError> {
    use crate::chat::RoomId;
    let admins = core.cfg.admins.iter().map(String::as_str);
    core.chat.set_config_admins(admins);
    core.chat.forget_moderation();
    let m = core.store.load_moderation()?;
    for user in m.deleted {
        core.chat.forget_user(user);
    }
    m.admins
        .into_iter()
        .for_each(|u| core.chat.restore_admin(u));
    m.bans.into_iter().for_each(|u| core.chat.restore_ban(u));
    for (user, until) in m.mutes {
        core.chat.restore_mute(user, until);
    }
    for (room, user, until) in m.room_mutes {
        core.chat.restore_room_mute(RoomId(room), user, until);
    }
    for (room, user) in m.kicks {
        core.chat.restore_kick(RoomId(room), user);
    }
    Ok(())
}

/// Start-up: message counts per room, read markers (each with the count
/// of messages after it, so unread needs no query later) and last-seen
/// times.
fn restore_conversations(core: &mut Core) -> Result<(), crate::store::StoreError> {
    use crate::chat::RoomId;
    use crate::event::Conversation;
    for (room, count) in core.store.message_counts()? {
        core.chat.restore_message_count(RoomId(room), count);
    }
    for (user, conv, id) in core.store.load_reads()? {
        let after = match conv {
            1 => core.store.count_after(Conversation::General, id)?,
            c if c > 0 => core.store.count_after(Conversation::Room(c), id)?,
            _ => 0,
        };
        core.chat.restore_read(user, conv, id, after);
    }
    for (user, ts) in core.store.load_last_seen()? {
        core.chat.restore_last_seen(user, ts);
    }
    Ok(())
}

impl Core {
    /// Ends the turn's storage: commits its batch (with the session
    /// changes; their last activity too when `flush_sessions`), or, if a
    /// write or the commit failed, takes back everything of the turn that
    /// depended on it. Runs before any of the turn's output is written.
    /// Returns the sockets to drop with everything they have queued (those
    /// acked, or sent a replay, for unstored messages); empty after a
    /// successful commit.
    pub fn end_turn(&mut self, flush_sessions: bool) -> Vec<ConnId> {
        persist_turn(self, flush_sessions)
    }
}

/// Writes the turn's session changes and commits the turn's batch (see
/// [`Core::end_turn`]): a message is acknowledged, broadcast or replayed,
/// a key or a session handed out, only once its row is committed. On
/// failure the batch is rolled back and [`take_back`] undoes the rest.
fn persist_turn(core: &mut Core, flush_sessions: bool) -> Vec<ConnId> {
    let journal = core.chat.journal();
    let changes = SessionChanges {
        created: std::mem::take(&mut journal.created),
        ended: std::mem::take(&mut journal.ended),
        touched: if flush_sessions {
            std::mem::take(&mut journal.touched)
        } else {
            Default::default()
        },
    };
    let written = write_last_seen(core).and_then(|()| write_sessions(core, &changes));
    // A message insert that failed was logged when it failed.
    let wrote_all = !std::mem::take(&mut core.held.failed);
    let result = match written {
        Ok(()) if wrote_all => core.store.commit(),
        other => {
            core.store.rollback();
            other
        }
    };
    if let Err(e) = &result {
        core.log.log(LogLevel::Error, format_args!("{e}"));
    }
    if let Some(e) = core.store.background_error() {
        core.log.log(LogLevel::Error, format_args!("{e}"));
    }
    let stored = result.is_ok() && wrote_all;
    // With `--store-messages=off` messages are live only: no commit holds
    // them back, whatever happens to the session rows.
    let live_only = !core.cfg.store_messages;
    let mut acked = core.chat.end_turn(stored || live_only);
    if live_only {
        core.events.clear();
        acked.clear();
    }
    if stored {
        // Cleared, not taken: the vectors keep their room for the next turn.
        core.events.clear();
        core.held.readers.clear();
        core.held.responses.clear();
        return Vec::new();
    }
    undo_turn(core, acked, changes)
}

/// The session changes of one turn, taken from the chat's journal.
struct SessionChanges {
    created: Vec<(SessionKey, UserId, Millis)>,
    ended: Vec<SessionKey>,
    touched: HashSet<SessionKey>,
}

/// Writes when users went offline this turn into its batch.
fn write_last_seen(core: &mut Core) -> Result<(), StoreError> {
    for (user, ts) in core.chat.take_last_seen() {
        core.store.set_last_seen(user, ts)?;
    }
    Ok(())
}

/// Writes the turn's session changes into its batch.
fn write_sessions(core: &mut Core, changes: &SessionChanges) -> Result<(), StoreError> {
    for (key, user, at) in &changes.created {
        let at = core.chat.unix_ms(*at);
        core.store.insert_session(&key.to_hex(), *user, at)?;
    }
    for key in &changes.ended {
        core.store.delete_session(&key.to_hex())?;
    }
    for key in &changes.touched {
        if let Some(at) = core.chat.last_active(key) {
            let at = core.chat.unix_ms(at);
            core.store.touch_session(&key.to_hex(), at)?;
        }
    }
    Ok(())
}

/// The turn's commit failed (its batch is rolled back, and the chat has
/// forgotten its `client_id`s): takes back its output, forgets the
/// sessions it created (their logins are answered 503), and keeps its
/// other session changes for the next turn's batch (a logout must not
/// come back after a restart). Returns the sockets to drop: `acked` and
/// those sent a replay of the turn's rows.
fn undo_turn(core: &mut Core, mut acked: Vec<ConnId>, changes: SessionChanges) -> Vec<ConnId> {
    let events = std::mem::take(&mut core.events);
    let held = std::mem::take(&mut core.held);
    let answered_503 = held.responses.len();
    take_back(core, &events, held.responses);
    let created = changes.created.into_iter().map(|(key, _, _)| key);
    core.chat.forget_unstored_sessions(created);
    let journal = core.chat.journal();
    journal.ended.extend(changes.ended);
    journal.touched.extend(changes.touched);
    acked.extend(held.readers);
    // Rooms, members and new users of the turn were rolled back in the
    // store: memory follows (a rare path; a full reload is simplest).
    core.chat.forget_rooms_and_users();
    if let Err(e) = restore_rooms(core) {
        core.log.log(LogLevel::Error, format_args!("{e}"));
    }
    core.chat.reindex_room_sockets();
    core.log.log(
        LogLevel::Error,
        format_args!(
            "commit failed: {} broadcasts taken back, {answered_503} responses \
             answered 503 instead, {} sockets dropped",
            events.len(),
            acked.len()
        ),
    );
    acked
}

/// After a failed commit, before anything of the turn is written: takes
/// the turn's event frames out of every outlet (a linear scan, but only
/// on this rare path; the hot path records one reference per event), and
/// swaps each held response for its 503.
fn take_back(core: &mut Core, events: &[Rc<[u8]>], responses: Vec<(ConnId, Rc<[u8]>, Vec<u8>)>) {
    if !events.is_empty() {
        let unstored: HashSet<*const u8> = events.iter().map(|f| f.as_ptr()).collect();
        for outlet in &mut core.outlets {
            outlet.retract(|frame| unstored.contains(&frame.as_ptr()));
        }
    }
    for (id, response, fallback) in responses {
        if core.generations.get(id.slot()) == Some(&id.generation()) {
            core.outlets[id.slot()].replace(&response, fallback);
        }
    }
}

/// Most messages deleted per prune step: a short transaction each.
const PRUNE_BATCH: usize = 500;

/// One retention step: a small batch past the age or count limit, then
/// again soon while there is more, else after the prune interval.
pub(super) fn prune(core: &mut Core, now: Millis) {
    let max_id = match core.cfg.history_max_messages {
        0 => None,
        keep => Some(core.chat.last_id() - i64::try_from(keep).unwrap_or(i64::MAX)),
    };
    let before_ts = match Millis::of(core.cfg.history_max_age).0 {
        0 => None,
        age => Some(core.chat.unix_ms(now) - i64::try_from(age).unwrap_or(i64::MAX)),
    };
    let deleted = core
        .store
        .prune_messages(max_id, before_ts, PRUNE_BATCH)
        .unwrap_or_else(|e| {
            core.log.log(LogLevel::Error, format_args!("{e}"));
            0
        });
    let again = if deleted >= PRUNE_BATCH {
        Millis(100)
    } else {
        Millis::of(core.cfg.prune_interval)
    };
    core.wheel.insert(now + again, Timer::Prune);
}
