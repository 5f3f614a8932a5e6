//! The loop's side of storage: what comes back at start-up, the per-turn
//! commit that releases acks, and the retention steps.

use super::conn::ms;
use super::{Core, Timer};
use crate::chat::ConnId;
use crate::config::LogLevel;
use crate::wheel::Millis;

/// Wall-clock Unix milliseconds (only for timestamps and stored times;
/// every timeout runs on the monotonic clock).
pub(super) fn unix_ms_now() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `Millis` of a stored Unix time, `age` before `now`, never below zero.
fn millis_ago(now: Millis, now_unix: i64, then_unix: i64) -> Millis {
    let age = u64::try_from(now_unix.saturating_sub(then_unix)).unwrap_or(0);
    Millis(now.0.saturating_sub(age))
}

/// Start-up: message ids continue after the stored ones, live sessions and
/// recent `client_id`s come back with their remaining time, and sessions
/// that ended while the server was down are deleted.
pub(super) fn restore(
    core: &mut Core,
    now: Millis,
    unix_now: i64,
) -> Result<(), crate::store::StoreError> {
    let ttl = ms(core.cfg.session_ttl);
    let (id, ts) = core.store.newest_message()?;
    core.chat.continue_after(id, ts);
    restore_rooms(core)?;
    for s in core.store.load_sessions()? {
        let last = millis_ago(now, unix_now, s.last_active);
        match crate::chat::SessionKey::from_hex(&s.token_hash) {
            Some(key) if now.0 - last.0 < ttl => {
                core.chat.restore_session(key, s.user, &s.name, last)
            }
            _ => core.store.delete_session(&s.token_hash)?,
        }
    }
    let window = i64::try_from(ms(core.cfg.dedupe_window)).unwrap_or(i64::MAX);
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
    restore_conversations(core)
}

/// Start-up: message counts per room, read markers (each with the count
/// of messages after it, so unread needs no query later) and last-seen
/// times.
fn restore_conversations(core: &mut Core) -> Result<(), crate::store::StoreError> {
    use crate::chat::RoomId;
    use crate::store::Conversation;
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

/// Writes the turn's session changes and commits the turn's batch. Runs
/// before any output of the turn is written, so an ack reaches a client
/// only once its message is committed. Returns the sockets that were sent
/// a success ack when the commit (or a message insert) failed: the caller
/// drops them with everything they have queued. `flush_sessions` also
/// writes the sessions' last activity (the session-flush timer fired).
pub(super) fn persist_turn(core: &mut Core, flush_sessions: bool) -> Vec<ConnId> {
    let journal = core.chat.journal();
    let created = std::mem::take(&mut journal.created);
    let ended = std::mem::take(&mut journal.ended);
    let touched = if flush_sessions {
        std::mem::take(&mut journal.touched)
    } else {
        Default::default()
    };
    let mut result = Ok(());
    for (key, user, at) in created {
        let at = core.chat.unix_ms(at);
        result = result.and_then(|()| core.store.insert_session(&key.to_hex(), user, at));
    }
    for key in ended {
        result = result.and_then(|()| core.store.delete_session(&key.to_hex()));
    }
    for key in touched {
        if let Some(at) = core.chat.last_active(&key) {
            let at = core.chat.unix_ms(at);
            result = result.and_then(|()| core.store.touch_session(&key.to_hex(), at));
        }
    }
    for (user, ts) in core.chat.take_last_seen() {
        result = result.and_then(|()| core.store.set_last_seen(user, ts));
    }
    let result = result.and_then(|()| core.store.commit());
    if let Err(e) = &result {
        core.log.log(LogLevel::Error, format_args!("{e}"));
    }
    if let Some(e) = core.store.background_error() {
        core.log.log(LogLevel::Error, format_args!("{e}"));
    }
    let stored = result.is_ok() && !std::mem::take(&mut core.store_failed);
    let acked = core.chat.end_turn();
    if stored { Vec::new() } else { acked }
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
    let before_ts = match ms(core.cfg.history_max_age) {
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
        100
    } else {
        ms(core.cfg.prune_interval)
    };
    core.wheel.insert(Millis(now.0 + again), Timer::Prune);
}
