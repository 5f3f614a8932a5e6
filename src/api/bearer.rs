//! `Authorization: Bearer <key>` (SPEC §12): a user's key in place of the
//! session cookie on every authenticated endpoint, so scripts and bots
//! need no login step and no cookie jar.
//!
//! The key is checked like a login checks it, on every request: one
//! indexed read of its SHA-256. A wrong key is a failed login: 401
//! `invalid_key`, counted toward the failed-login limit of the client's
//! address, and while that address is over the limit every bearer request
//! from it gets 429 before the key is looked at (a valid key too: the
//! limit exists to stop guessing, and a guesser would otherwise learn from
//! the difference). What a bearer request is in the chat is described in
//! `chat/bearer.rs`: no session, except one per socket for `/ws`.

use super::{Ctx, rate_limited};
use crate::chat::{AddressLimit, Authed, Outbox, SessionKey};
use crate::http::{Request, Response};
use crate::secret;

/// The credentials of an `Authorization` header value that uses the
/// `Bearer` scheme (matched without regard to case, RFC 7235), with the
/// spaces around them trimmed; `None` for any other scheme, which leaves
/// the request to the session cookie (a proxy's `Basic` is none of ours).
/// The credentials may be empty or not UTF-8: that is a wrong key.
pub fn bearer_credentials(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    match rest.first() {
        // `Bearer` alone: the scheme without credentials.
        None => Some(rest),
        Some(b' ' | b'\t') => Some(rest.trim_ascii()),
        // `Bearerx...` is another scheme.
        Some(_) => None,
    }
}

/// The bearer credentials of `req`: those of its first `Authorization`
/// header, when that one uses the `Bearer` scheme.
pub fn credentials(req: &Request) -> Option<&[u8]> {
    bearer_credentials(req.header("authorization")?)
}

/// 401 `invalid_key`, the answer to a wrong key.
fn invalid_key() -> Response {
    let detail = "the Authorization header must be \"Bearer <key>\" with the key \
                  POST /api/register gave (64 hex characters)";
    Response::error_detail(401, "invalid_key", detail)
        .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\"")
}

/// Authenticates a request by the bearer `key`. The result names a
/// session key that belongs to no session (a fresh random one): a bearer
/// request is not a session, so nothing it does can touch the user's
/// cookie sessions. `/ws` opens a session under that key for its socket.
pub(super) fn authenticate<O: Outbox>(
    key: &[u8],
    ctx: &mut Ctx<'_, O>,
) -> Result<Authed, Response> {
    let limit = AddressLimit::LoginFailure;
    if let Err(secs) = ctx.chat.check_limit(limit, ctx.client, ctx.now) {
        return Err(rate_limited(secs));
    }
    let found = match std::str::from_utf8(key) {
        Ok(key) if !key.is_empty() => ctx.store.user_by_key_hash(&secret::sha256_hex(key)),
        _ => Ok(None),
    };
    match found {
        Ok(Some(user)) => Ok(Authed {
            key: SessionKey::of(&secret::new_session_token()),
            user: user.id,
            name: user.name.into(),
        }),
        Ok(None) => {
            ctx.chat.record_limit(limit, ctx.client, ctx.now);
            Err(invalid_key())
        }
        Err(e) => {
            ctx.note = Some(format!("database: {e}"));
            Err(Response::error(500, "internal_error"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_values() {
        let key = "ab".repeat(32);
        let spaced = format!("  Bearer   {key}  ");
        let cases: &[(&str, Option<&str>)] = &[
            (&format!("Bearer {key}"), Some(&key)),
            (&format!("bearer {key}"), Some(&key)),
            (&format!("BEARER\t{key}"), Some(&key)),
            (&spaced, Some(&key)),
            ("Bearer", Some("")),
            ("Bearer ", Some("")),
            ("Bearer a b", Some("a b")),
            ("Bearerx", None),
            ("Basic YWxhZGRpbjpvcGVuc2VzYW1l", None),
            ("", None),
            ("Bear", None),
        ];
        for (value, want) in cases {
            let got = bearer_credentials(value.as_bytes());
            assert_eq!(got, want.map(str::as_bytes), "{value:?}");
        }
    }
}
