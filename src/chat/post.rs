//! Messages posted over HTTP (`POST /api/messages`, SPEC §13): the same
//! rules as a WebSocket message frame, through the same path
//! ([`Chat::post`]): the same decoding and length rules, conversation
//! checks, `client_id` dedupe, ids, broadcast (serialized once) and row to
//! store. Only admission differs where it must: a request has no socket,
//! so its rate limit is a token bucket per user (the same burst and rate
//! as a socket's), and its answer is a value for the HTTP response instead
//! of an ack frame.

use super::conversation::Accepted;
use super::{Chat, limits::TokenBucket};
use crate::ids::{Millis, UserId};
use crate::protocol::{AckError, ClientOp, decode_client_op};

/// A message accepted from an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// Its id (a resend's: the first one's).
    pub id: i64,
    /// What to store in the turn's batch; `None` for the resend of a
    /// message already accepted under the same `client_id` (nothing is
    /// sent or stored again).
    pub accepted: Option<Accepted>,
}

impl Chat {
    /// The body of `POST /api/messages` from `user`, a JSON object of a
    /// message frame (`{"message", "room" | "to", "client_id"}`): on
    /// success the message went to every socket of its conversation
    /// (including the sender's own) and the caller stores
    /// [`Posted::accepted`] before answering, after the turn's commit.
    /// The error is the code a socket's error ack would carry; other
    /// kinds of frame (edits, reactions, ...) are `invalid_message`.
    pub fn http_message(
        &mut self,
        user: UserId,
        body: &str,
        now: Millis,
        out: &mut impl super::Outbox,
    ) -> Result<Posted, AckError> {
        self.clock = self.clock.max(now);
        self.stats.messages_received += 1;
        let (burst, rate) = (self.cfg.burst, self.cfg.rate_per_sec);
        let bucket = self
            .http_buckets
            .entry(user)
            .or_insert_with(|| TokenBucket::full(burst, now));
        if !bucket.take(burst, rate, now) {
            return Err(AckError::RateLimited);
        }
        let ClientOp::Message(frame) = decode_client_op(body, self.cfg.max_chars)? else {
            return Err(AckError::InvalidMessage);
        };
        let name = self.directory.name(user).cloned().unwrap_or_default();
        let (id, accepted) = self.post(None, user, &name, frame, now, out)?;
        Ok(Posted { id, accepted })
    }
}

impl Accepted {
    /// The row that stores the message.
    pub fn row(&self) -> crate::event::NewEvent<'_> {
        crate::event::NewEvent {
            id: self.id,
            kind: crate::event::EventKind::Message,
            user: self.user,
            room: self.room.map(|r| r.0),
            to: self.to,
            ts: self.ts,
            text: &self.text,
            client_id: self.client_id.as_deref(),
            target: None,
        }
    }
}
