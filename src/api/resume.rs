//! What a resuming WebSocket is sent before it joins: the stored events
//! it missed that its user may see, or `resync` when that is too much.
//! Request policy, like the history paging of `GET /api/messages`; both
//! map stored rows to the wire in one place, the chat's history module
//! (the replay through `Chat::replay_json`, which also knows who may see
//! what; the page through `Paged::page`).

use crate::chat::Chat;
use crate::config::LogLevel;
use crate::ids::UserId;
use crate::log::Logger;
use crate::protocol::ServerFrame;
use crate::store::Store;

/// Events read from the store per query during a replay.
const REPLAY_PAGE: usize = 256;

/// A replay reads at most this many times `resume_max` events of all
/// conversations: events the user may not see are skipped, and a socket
/// that missed that much traffic is told to resync rather than have the
/// loop read the whole backlog.
const REPLAY_SCAN_FACTOR: usize = 16;

/// The frames of the stored events after `since` that `user` may see
/// (general, their rooms, their direct messages), in id order, framed by
/// `frame`; or one `{"event": "resync"}` frame when there are more than
/// `max` of them, more than `max_bytes` of frames, or more events of all
/// conversations than the scan allows: then the client pages the history
/// instead. Also returns the newest event id replayed (`since` if none;
/// `None` for `resync`).
#[allow(clippy::too_many_arguments)]
pub fn replay(
    user: UserId,
    since: i64,
    max: usize,
    max_bytes: usize,
    store: &mut Store,
    chat: &Chat,
    log: &Logger,
    frame: impl Fn(&[u8]) -> Vec<u8>,
) -> (Vec<u8>, Option<i64>) {
    let scan = max.saturating_mul(REPLAY_SCAN_FACTOR);
    let (mut frames, mut count, mut scanned, mut after) = (Vec::new(), 0, 0, since);
    // The newest event replayed.
    let mut newest = since;
    let resync = loop {
        let page = store.events_after(after, REPLAY_PAGE).unwrap_or_else(|e| {
            log.log(LogLevel::Error, format_args!("{e}"));
            Vec::new()
        });
        for e in &page {
            if let Some(json) = chat.replay_json(user, e) {
                count += 1;
                newest = e.id;
                frames.extend_from_slice(&frame(&json));
            }
        }
        scanned += page.len();
        if count > max || frames.len() > max_bytes || scanned > scan {
            break true;
        }
        match page.last() {
            Some(last) if page.len() == REPLAY_PAGE => after = last.id,
            _ => break false,
        }
    };
    if resync {
        let json = ServerFrame::Event { event: "resync" }.to_json();
        return (frame(&json), None);
    }
    (frames, Some(newest))
}
