//! `POST /api/messages` (SPEC §13): a chat message without a WebSocket.
//! The chat applies the rules of a message frame (see `chat/post.rs`);
//! this module authenticates, stores the message in the turn's batch, and
//! turns the frame's error ack into an HTTP status. The 201 is held until
//! the turn's commit, like a socket's ack (see `Routed::AfterCommit`).

use super::{Ctx, authenticate, storage_unavailable};
use crate::chat::{Outbox, Posted};
use crate::http::{Request, Response};
use crate::protocol::AckError;
use crate::store::StoreError;
use serde_json::json;

/// The status of the response that carries an error ack's code: 400 for
/// a body that is not a valid message, 403 for a conversation the sender
/// may not write to, 404 for one that does not exist for them, 429 over
/// the rate limit.
pub fn ack_status(e: AckError) -> u16 {
    match e {
        AckError::InvalidJson
        | AckError::InvalidMessage
        | AckError::MessageTooLong
        | AckError::BinaryNotSupported
        | AckError::InvalidEmoji => 400,
        AckError::NotAMember | AckError::Forbidden | AckError::Muted => 403,
        AckError::RoomNotFound | AckError::UserNotFound | AckError::NotFound => 404,
        AckError::RateLimited => 429,
    }
}

/// What was wrong, for people (the `detail` of the error body).
fn detail(e: AckError) -> &'static str {
    match e {
        AckError::InvalidJson => "the body is not JSON",
        AckError::InvalidMessage => {
            "the body must be a JSON object with \"message\", a string with a \
             non-whitespace character, and optionally one of \"room\" and \"to\", \
             and \"client_id\""
        }
        AckError::MessageTooLong => "the message has more characters than the server allows",
        AckError::RateLimited => "too many messages; wait a second",
        AckError::NotAMember => "join the room first",
        AckError::RoomNotFound => "no such room",
        AckError::UserNotFound => "no such user",
        AckError::Muted => "you are muted; a moderator lifts it, or wait until it ends",
        _ => "refused",
    }
}

/// The error response for an error ack.
fn refused(e: AckError) -> Response {
    let resp = Response::error_detail(ack_status(e), e.code(), detail(e));
    match e {
        // A socket's bucket refills at least one message a second.
        AckError::RateLimited => resp.with_header("Retry-After", "1"),
        _ => resp,
    }
}

/// `POST /api/messages` `{"message", "room" | "to", "client_id"}`: 201
/// `{"id"}` once stored. A resend under a `client_id` the server
/// remembers gets the first one's id, and nothing is sent again.
pub fn create<O: Outbox>(req: &Request, ctx: &mut Ctx<'_, O>) -> Result<Response, StoreError> {
    let me = match authenticate(req, ctx) {
        Ok(me) => me,
        Err(r) => return Ok(r),
    };
    // JSON is UTF-8 (RFC 8259); a socket would close on such a frame.
    let Ok(body) = std::str::from_utf8(&req.body) else {
        return Ok(refused(AckError::InvalidJson));
    };
    let Posted { id, accepted } = match ctx.chat.http_message(me.user, body, ctx.now, ctx.out) {
        Ok(posted) => posted,
        // A muted sender learns when it ends, as a socket's ack says.
        Err(e @ AckError::Muted) => match ctx.chat.last_mute_end() {
            Some(until) => {
                let body = json!({ "error": e.code(), "detail": detail(e), "until": until });
                return Ok(Response::json(ack_status(e), &body));
            }
            None => return Ok(refused(e)),
        },
        Err(e) => return Ok(refused(e)),
    };
    if let Some(accepted) = accepted.filter(|_| ctx.cfg.store_messages) {
        // Stored before anything else is handled, as a socket's message
        // is: a replay later in this turn must find it.
        if let Err(e) = ctx.store.insert_event(&accepted.row()) {
            ctx.note = Some(e.to_string());
            // The turn is rolled back, its broadcasts taken back.
            ctx.write_failed = true;
            return Ok(storage_unavailable());
        }
    }
    Ok(Response::json(201, &json!({ "id": id })))
}
