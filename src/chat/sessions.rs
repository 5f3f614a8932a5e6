//! Sessions: login, authentication with a sliding TTL, logout, expiry by
//! timer, and the journal of changes the server writes to the database.

use super::Chat;
use super::outbox::Outbox;
use crate::ids::{ConnId, Millis, UserId};
use crate::secret::{hex, sha256};
use std::collections::HashSet;
use std::rc::Rc;

/// Why a request was not authenticated; each says what the peer sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `session` cookie or an empty one: 422 `missing_session`.
    Missing,
    /// Unknown, logged-out or expired session: 401 `invalid_session`, and
    /// the cookie is cleared.
    Invalid,
}

/// Who an authenticated request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authed {
    /// The session.
    pub key: SessionKey,
    /// The user.
    pub user: UserId,
    /// The name as registered.
    pub name: Rc<str>,
}

/// A live session.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) user: UserId,
    pub(super) name: Rc<str>,
    pub(super) last_active: Millis,
    /// When it was last used, as a count of uses across all sessions:
    /// orders uses within one millisecond for the per-user cap.
    pub(super) used: u64,
    /// Its open chat sockets (several with `--sockets-per-user`: browser
    /// tabs share the cookie).
    pub(super) sockets: Vec<ConnId>,
    /// Its open event streams.
    pub(super) streams: Vec<ConnId>,
    /// A bearer-key socket's session (see `bearer.rs`): not stored, not
    /// counted by the per-user cap, over with its last socket.
    pub(super) socket_only: bool,
}

impl Session {
    /// Whether a socket or a stream uses it right now (then it does not
    /// expire, and it is not the least recently used).
    pub(super) fn in_use(&self) -> bool {
        !self.sockets.is_empty() || !self.streams.is_empty()
    }
}

/// What a chat timer is for.
#[derive(Debug)]
pub(super) enum Due {
    Session(SessionKey),
    /// A `client_id` and the message id it was remembered with: a newer
    /// entry for the same `client_id` (after a failed commit took back the
    /// first) is not forgotten by the older entry's timer.
    Dedupe(UserId, Box<str>, i64),
    /// A user's typing notice in a conversation (see
    /// `conv_key` in `conversation.rs`) may be relayed again.
    Typing(UserId, i64),
}

/// A session as the server keeps it: the SHA-256 of its token. The token
/// itself lives only in the client's cookie, so neither memory dumps nor
/// the database hand out working cookies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// The key of the cookie value `token`.
    pub fn of(token: &str) -> SessionKey {
        SessionKey(sha256(token))
    }

    /// The key from its stored hex form.
    pub fn from_hex(s: &str) -> Option<SessionKey> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).ok()?;
            key[i] = u8::from_str_radix(text, 16).ok()?;
        }
        Some(SessionKey(key))
    }

    /// Lowercase hex, as stored.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

/// Session changes not yet written to the database. New and ended sessions
/// are written in the turn they happen; activity only on the flush timer,
/// so an authenticated request costs no database write.
#[derive(Debug, Default)]
pub struct SessionJournal {
    /// Sessions started: key, user, start time.
    pub created: Vec<(SessionKey, UserId, Millis)>,
    /// Sessions ended (logout or expiry).
    pub ended: Vec<SessionKey>,
    /// Sessions with activity since the last flush.
    pub touched: HashSet<SessionKey>,
}

impl Chat {
    /// Starts a session for `user` under a fresh token's `key`.
    pub fn login(&mut self, key: SessionKey, user: UserId, name: &str, now: Millis) {
        self.journal.created.push((key.clone(), user, now));
        self.restore_session(key, user, name, now);
    }

    /// Brings back a stored session whose last activity was at
    /// `last_active` (the server's restart). Like a login, it may end the
    /// user's least recently used session to stay within the cap.
    pub fn restore_session(
        &mut self,
        key: SessionKey,
        user: UserId,
        name: &str,
        last_active: Millis,
    ) {
        let session = Session {
            user,
            name: name.into(),
            last_active,
            used: self.uses.next().unwrap_or(u64::MAX),
            sockets: Vec::new(),
            streams: Vec::new(),
            socket_only: false,
        };
        self.make_room(user);
        let deadline = last_active + self.cfg.session_ttl;
        self.wheel.insert(deadline, Due::Session(key.clone()));
        self.user_sessions
            .entry(user)
            .or_default()
            .push(key.clone());
        self.sessions.insert(key, session);
    }

    /// Ends `user`'s least recently used sessions until a new one fits
    /// within `sessions_per_user` (one key logged in 100,000 times kept
    /// 100,000 sessions). A session with an open WebSocket is in use right
    /// now, so it is never the least recently used: only idle sessions are
    /// ended, and the cap counts idle ones. The ended session is deleted
    /// from the store through the journal like any other; its cookie gets
    /// 401 `invalid_session`.
    fn make_room(&mut self, user: UserId) {
        let cap = self.cfg.sessions_per_user.max(1);
        loop {
            let Some(keys) = self.user_sessions.get(&user) else {
                return;
            };
            // Restored sessions bring their time from the database; uses
            // order the rest, also within one millisecond.
            let idle: Vec<(&SessionKey, (Millis, u64))> = keys
                .iter()
                .filter_map(|k| Some((k, self.sessions.get(k)?)))
                .filter(|(_, s)| !s.in_use() && !s.socket_only)
                .map(|(k, s)| (k, (s.last_active, s.used)))
                .collect();
            if idle.len() < cap {
                return;
            }
            let Some((lru, _)) = idle.iter().min_by_key(|(_, t)| *t) else {
                return;
            };
            let lru = (*lru).clone();
            self.end_session(&lru);
            self.stats.sessions_evicted += 1;
        }
    }

    /// Checks the session cookie and counts the request as activity.
    pub fn authenticate(&mut self, token: Option<&str>, now: Millis) -> Result<Authed, AuthError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
        let key = SessionKey::of(token);
        let ttl = self.cfg.session_ttl;
        let session = self.sessions.get_mut(&key).ok_or(AuthError::Invalid)?;
        // The expiry timer may not have fired yet within this loop turn;
        // an idle session is over the moment its TTL has passed.
        if !session.in_use() && now >= session.last_active + ttl {
            self.end_session(&key);
            return Err(AuthError::Invalid);
        }
        session.last_active = now;
        session.used = self.uses.next().unwrap_or(u64::MAX);
        let authed = Authed {
            key: key.clone(),
            user: session.user,
            name: session.name.clone(),
        };
        self.journal.touched.insert(key);
        Ok(authed)
    }

    /// Ends the session of `token`, if any; its WebSocket, if open, is
    /// closed with 1000 `logged out` and the others are told it left.
    pub fn logout(&mut self, token: &str, out: &mut impl Outbox) {
        let key = SessionKey::of(token);
        let Some(session) = self.end_session(&key) else {
            return;
        };
        for conn in session.sockets {
            out.close(conn, 1000, "logged out");
            self.remove_socket(conn);
        }
        for conn in session.streams {
            out.close(conn, 1000, "logged out");
            self.forget_stream(conn);
        }
    }

    pub(super) fn end_session(&mut self, key: &SessionKey) -> Option<Session> {
        let session = self.unlist_session(key)?;
        self.journal.ended.push(key.clone());
        Some(session)
    }

    /// Takes `key` off the session table and its user's list; nothing is
    /// journaled (the caller says whether a row must be deleted).
    pub(super) fn unlist_session(&mut self, key: &SessionKey) -> Option<Session> {
        let session = self.sessions.remove(key)?;
        if let Some(keys) = self.user_sessions.get_mut(&session.user) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.user_sessions.remove(&session.user);
            }
        }
        self.journal.touched.remove(key);
        Some(session)
    }

    /// Forgets sessions whose rows a failed commit did not store. Their
    /// tokens never left the server (the login was answered 503), so no
    /// request can carry them and no socket can be open on them.
    pub fn forget_unstored_sessions(&mut self, keys: impl Iterator<Item = SessionKey>) {
        for key in keys {
            debug_assert!(
                self.sessions.get(&key).is_none_or(|s| !s.in_use()),
                "a socket on an unstored session"
            );
            self.unlist_session(&key);
        }
    }

    /// Live sessions (including idle ones whose expiry timer is pending).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The session changes to store. The caller drains `created` and
    /// `ended` every turn, and `touched` on its flush timer.
    pub fn journal(&mut self) -> &mut SessionJournal {
        &mut self.journal
    }

    /// The last activity of a live session.
    pub fn last_active(&self, key: &SessionKey) -> Option<Millis> {
        self.sessions.get(key).map(|s| s.last_active)
    }

    pub(super) fn session_due(&mut self, key: &SessionKey, now: Millis) -> Option<Millis> {
        let ttl = self.cfg.session_ttl;
        let session = self.sessions.get(key)?;
        if session.in_use() {
            // An open socket or stream keeps its session alive; look again
            // a TTL later.
            return Some(now + ttl);
        }
        let end = session.last_active + ttl;
        if now >= end {
            self.end_session(key);
            None
        } else {
            Some(end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hex_round_trip() {
        let key = SessionKey::of("token");
        assert_eq!(SessionKey::from_hex(&key.to_hex()), Some(key));
        assert_eq!(SessionKey::from_hex("zz"), None);
        assert_eq!(SessionKey::from_hex(&"g".repeat(64)), None);
    }
}
