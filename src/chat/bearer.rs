//! Requests authenticated by a user's key (`Authorization: Bearer`)
//! instead of a session cookie.
//!
//! A bearer request starts no session: the key is checked on every
//! request, nothing is stored, and the user's cookie sessions (and the
//! per-user session cap) never see it. A WebSocket needs a session to hang
//! on, so a socket opened with a bearer key gets one of its own: under a
//! random key nobody holds (no cookie can name it), never stored, never
//! counted by `--sessions-per-user` and never ended to make room for a
//! login, and over the moment its last socket closes. The one-socket rule
//! (`--sockets-per-user`) counts its socket like any other.

use super::{Chat, Session, SessionKey};
use crate::ids::{Millis, UserId};

impl Chat {
    /// Starts the session of a socket about to be opened with a bearer
    /// key, under `key` (random, handed to nobody). The caller opens the
    /// socket on it in the same loop turn ([`Chat::ws_open`]); when that
    /// socket and any others opened on it are closed, the session is gone.
    pub fn bearer_socket_session(
        &mut self,
        key: SessionKey,
        user: UserId,
        name: &str,
        now: Millis,
    ) {
        let session = Session {
            user,
            name: name.into(),
            last_active: now,
            used: self.uses.next().unwrap_or(u64::MAX),
            sockets: Vec::new(),
            streams: Vec::new(),
            socket_only: true,
        };
        // No expiry timer and no journal entry: an open socket keeps a
        // session alive anyway, and its end ends this one.
        self.user_sessions
            .entry(user)
            .or_default()
            .push(key.clone());
        self.sessions.insert(key, session);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ChatConfig, ConnId, Outbox};
    use super::*;

    /// Counts what the chat sends.
    #[derive(Default)]
    struct Count(usize);

    impl Outbox for Count {
        fn deliver(&mut self, to: impl Iterator<Item = ConnId>, _: &[u8]) {
            self.0 += to.count();
        }
        fn close(&mut self, _: ConnId, _: u16, _: &'static str) {}
    }

    fn chat() -> Chat {
        let cfg = ChatConfig {
            session_ttl: Millis(1000),
            sessions_per_user: 1,
            max_chars: 300,
            burst: 3,
            rate_per_sec: 1,
            register_limit: 0,
            register_window: Millis(1000),
            login_fail_limit: 0,
            login_window: Millis(1000),
            dedupe_window: Millis(1000),
        };
        Chat::new(cfg, Millis(0), 0)
    }

    #[test]
    fn a_bearer_sockets_session_lives_and_dies_with_its_sockets() {
        let mut chat = chat();
        let mut out = Count::default();
        let cookie = SessionKey::of("cookie");
        chat.login(cookie.clone(), UserId(1), "ann", Millis(0));
        let bearer = SessionKey::of("random");
        chat.bearer_socket_session(bearer.clone(), UserId(1), "ann", Millis(5));
        chat.ws_open(ConnId(7), &bearer, Millis(5));
        chat.flush_presence(&mut out);
        chat.check();
        // Neither counts against the other under a cap of one session.
        assert_eq!(chat.session_count(), 2);
        assert!(chat.authenticate(Some("cookie"), Millis(6)).is_ok());
        // A second login makes room by ending the idle cookie session,
        // never the socket's.
        chat.login(SessionKey::of("again"), UserId(1), "ann", Millis(7));
        chat.check();
        assert_eq!(chat.last_active(&cookie), None);
        assert_eq!(chat.last_active(&bearer), Some(Millis(5)));
        assert!(chat.is_online(UserId(1)));
        chat.ws_closed(ConnId(7), Millis(8));
        chat.check();
        assert_eq!(chat.last_active(&bearer), None);
        assert_eq!(chat.session_count(), 1);
        // Nothing of it is for the database.
        let journal = chat.journal();
        assert!(journal.created.iter().all(|(k, ..)| *k != bearer));
        assert!(!journal.ended.contains(&bearer) && !journal.touched.contains(&bearer));
    }
}
