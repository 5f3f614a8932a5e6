//! Moderation and administration over HTTP (SPEC §12): `/api/admin/...`
//! for admins, a user's own key rotation, room moderation (kick, mute,
//! moderators), and the registration policy. This module parses,
//! authorises, stores (in the turn's batch, answered after the commit)
//! and audits; what an action does to the live chat is the chat's
//! (`chat::moderation`).

use super::{Ctx, authenticate};
use crate::chat::moderation::{KEY_CHANGED, ModError, parse_duration};
use crate::chat::{Authed, Outbox};
use crate::config::Registration;
use crate::http::{Request, Response, percent_decode};
use crate::ids::UserId;
use crate::protocol::{
    AdminUserLine, AuditLine, InviteBody, InviteCodeBody, KickBody, MuteBody, ReasonBody,
    RegisterBody, RoleBody, RoomMuteBody, decode_body,
};
use crate::secret;
use crate::store::{NewAudit, StoreError};
use serde::Deserialize;
use serde_json::json;
use std::rc::Rc;

/// The paths this module serves, for routing and `Allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /api/admin/users`
    Users,
    /// `DELETE /api/admin/users/{name}`
    User,
    /// `POST /api/admin/users/{name}/{action}`
    UserAction,
    /// `GET /api/admin/audit`
    Audit,
    /// `POST /api/admin/invites`
    Invites,
    /// `POST /api/user/@me/key`
    OwnKey,
    /// `POST /api/rooms/{name}/kick|mute|moderators`
    RoomAction,
}

impl Route {
    /// The methods allowed, as the `Allow` header lists them.
    pub fn allow(self) -> &'static str {
        match self {
            Route::Users | Route::Audit => "GET, HEAD",
            Route::User => "DELETE",
            _ => "POST",
        }
    }
}

/// The user actions of `POST /api/admin/users/{name}/{action}`.
const USER_ACTIONS: [&str; 7] = [
    "ban",
    "unban",
    "mute",
    "unmute",
    "reset-key",
    "purge",
    "role",
];

/// The room actions of `POST /api/rooms/{name}/{action}`.
const ROOM_ACTIONS: [&str; 3] = ["kick", "mute", "moderators"];

/// Longest reason, in Unicode scalar values.
const MAX_REASON: usize = 500;

/// Default and largest page of the user list and the audit.
const PAGE: (usize, usize) = (50, 200);

/// The route of `path`, if this module serves it.
pub fn route_of(path: &str) -> Option<Route> {
    if matches!(path, "/api/user/@me/key" | "/api/user/%40me/key") {
        return Some(Route::OwnKey);
    }
    if let Some(rest) = path.strip_prefix("/api/rooms/") {
        let (name, action) = rest.split_once('/')?;
        return (!name.is_empty() && ROOM_ACTIONS.contains(&action)).then_some(Route::RoomAction);
    }
    let rest = path.strip_prefix("/api/admin/")?;
    Some(match rest.split('/').collect::<Vec<_>>()[..] {
        ["users"] => Route::Users,
        ["audit"] => Route::Audit,
        ["invites"] => Route::Invites,
        ["users", name] if !name.is_empty() => Route::User,
        ["users", name, action] if !name.is_empty() && USER_ACTIONS.contains(&action) => {
            Route::UserAction
        }
        _ => return None,
    })
}

/// Serves a request of `route` (its method already allowed).
pub fn handle<O: Outbox>(
    req: &Request,
    route: Route,
    ctx: &mut Ctx<'_, O>,
) -> Result<Response, StoreError> {
    let me = match authenticate(req, ctx) {
        Ok(me) => me,
        Err(r) => return Ok(r),
    };
    match route {
        Route::OwnKey => return own_key(&me, ctx),
        Route::RoomAction => return room_action(req, &me, ctx),
        _ => {}
    }
    if !ctx.chat.is_admin(me.user) {
        let detail = "only a server admin may use /api/admin";
        return Ok(Response::error_detail(403, "forbidden", detail));
    }
    match route {
        Route::Users => users(req, ctx),
        Route::Audit => audit_page(req, ctx),
        Route::Invites => invite(req, &me, ctx),
        Route::User | Route::UserAction => user_action(req, &me, ctx),
        Route::OwnKey | Route::RoomAction => unreachable!("served above"),
    }
}

/// The body as `T`, where an empty body is `T::default()`; else 422.
fn body_or_default<'a, T: Deserialize<'a> + Default>(
    req: &'a Request,
    fields: &str,
) -> Result<T, Response> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    decode_body(&req.body).ok_or_else(|| bad_body(fields))
}

fn bad_body(fields: &str) -> Response {
    let detail = format!("the body must be a JSON object with {fields}");
    Response::error_detail(422, "invalid_request", &detail)
}

/// A reason within [`MAX_REASON`], or the 422.
fn check_reason(reason: &str) -> Result<(), Response> {
    if reason.chars().take(MAX_REASON + 1).count() > MAX_REASON {
        let detail = format!("reason is longer than {MAX_REASON} characters");
        return Err(Response::error_detail(422, "invalid_request", &detail));
    }
    Ok(())
}

fn invalid_duration() -> Response {
    let detail = "duration must be a whole number and a unit s, m, h, d or w (10m, 1h, 2d), \
                  from 1 second to a year";
    Response::error_detail(400, "invalid_duration", detail)
}

fn mod_error(e: ModError) -> Response {
    if e == ModError::InvalidDuration {
        return invalid_duration();
    }
    let (status, code) = e.status();
    Response::error(status, code)
}

/// Appends one audit row for an action of `me`.
fn audit<O: Outbox>(
    ctx: &mut Ctx<'_, O>,
    me: &Authed,
    action: &str,
    (target, room): (Option<&str>, Option<&str>),
    reason: &str,
    detail: &str,
) -> Result<(), StoreError> {
    let ts = ctx.chat.unix_ms(ctx.now);
    ctx.store.insert_audit(&NewAudit {
        ts,
        actor: &me.name,
        action,
        target,
        room,
        reason,
        detail,
    })
}

/// `POST /api/user/@me/key`: a new key; every other session of the user
/// ends (the one asking stays logged in).
fn own_key<O: Outbox>(me: &Authed, ctx: &mut Ctx<'_, O>) -> Result<Response, StoreError> {
    let key = secret::new_user_key();
    ctx.store.set_key_hash(me.user, &secret::sha256_hex(&key))?;
    let ended = ctx
        .chat
        .end_sessions_of(me.user, Some(&me.key), KEY_CHANGED, ctx.out);
    let detail = format!("{ended} other sessions ended");
    audit(ctx, me, "rotate_key", (Some(&me.name), None), "", &detail)?;
    Ok(Response::json(200, &json!({ "key": key })))
}

/// `POST /api/admin/users/{name}/{action}` and `DELETE
/// /api/admin/users/{name}`.
fn user_action<O: Outbox>(
    req: &Request,
    me: &Authed,
    ctx: &mut Ctx<'_, O>,
) -> Result<Response, StoreError> {
    let rest = &req.path()["/api/admin/users/".len()..];
    let (raw, action) = rest.split_once('/').unwrap_or((rest, "delete"));
    let found = percent_decode(raw).and_then(|name| ctx.chat.find_user(&name));
    let Some((user, name)) = found else {
        return Ok(Response::error(404, "user_not_found"));
    };
    let untouchable = matches!(action, "ban" | "mute" | "purge" | "delete");
    if untouchable && ctx.chat.is_admin(user) {
        let detail = "the user is an admin; take the role back first";
        return Ok(Response::error_detail(409, "target_is_admin", detail));
    }
    let target = (user, name);
    match action {
        "ban" | "unban" => ban(req, me, target, action == "ban", ctx),
        "mute" => mute(req, me, target, ctx),
        "unmute" => {
            let was = ctx.chat.unmute(target.0, ctx.now);
            ctx.store.set_mute(target.0, None)?;
            let detail = if was { "" } else { "was not muted" };
            audit(ctx, me, "unmute", (Some(&target.1), None), "", detail)?;
            Ok(Response::json(200, &json!({})))
        }
        "reset-key" => {
            let key = secret::new_user_key();
            ctx.store
                .set_key_hash(target.0, &secret::sha256_hex(&key))?;
            ctx.chat
                .end_sessions_of(target.0, None, KEY_CHANGED, ctx.out);
            audit(ctx, me, "reset_key", (Some(&target.1), None), "", "")?;
            Ok(Response::json(200, &json!({ "key": key })))
        }
        "purge" | "delete" => purge(req, me, target, action == "delete", ctx),
        _ => role(req, me, target, ctx),
    }
}

fn ban<O: Outbox>(
    req: &Request,
    me: &Authed,
    (user, name): (UserId, Rc<str>),
    on: bool,
    ctx: &mut Ctx<'_, O>,
) -> Result<Response, StoreError> {
    let body = match body_or_default::<ReasonBody>(req, "an optional \"reason\", a string") {
        Ok(b) => b,
        Err(r) => return Ok(r),
    };
    if let Err(r) = check_reason(&body.reason) {
        return Ok(r);
    }
    let ts = ctx.chat.unix_ms(ctx.now);
    let changed = if on {
        ctx.store.set_ban(user, Some((ts, &body.reason)))?;
        ctx.chat.ban(user, ctx.out)
    } else {
        ctx.store.set_ban(user, None)?;
        ctx.chat.unban(user)
    };
    let action = if on { "ban" } else { "unban" };
    let detail = if changed { "" } else { "no change" };
    audit(ctx, me, action, (Some(&name), None), &body.reason, detail)?;
    Ok(Response::json(200, &json!({})))
}

fn mute<O: Outbox>(
    req: &Request,
    me: &Authed,
    (user, name): (UserId, Rc<str>),
    ctx: &mut Ctx<'_, O>,
) -> Result<Response, StoreError> {
    let Some(body) = decode_body::<MuteBody>(&req.body) else {
        return Ok(bad_body(
            "\"duration\" (like \"10m\") and an optional \"reason\", strings",
        ));
    };
    if let Err(r) = check_reason(&body.reason) {
        return Ok(r);
    }
    let Some(ms) = parse_duration(&body.duration) else {
        return Ok(invalid_duration());
    };
    let until = ctx.chat.unix_ms(ctx.now).saturating_add(ms);
    ctx.store.set_mute(user, Some(until))?;
    ctx.chat.mute(user, until);
    let detail = format!("until {until} ({})", body.duration);
    audit(ctx, me, "mute", (Some(&name), None), &body.reason, &detail)?;
    Ok(Response::json(200, &json!({ "until": until })))
}

/// A purge (`delete`: then the account goes too).
fn purge<O: Outbox>(
    req: &Request,
    me: &Authed,
    (user, name): (UserId, Rc<str>),
    delete: bool,
    ctx: &mut Ctx<'_, O>,
) -> Result<Response, StoreError> {
    let body = match body_or_default::<ReasonBody>(req, "an optional \"reason\", a string") {
        Ok(b) => b,
        Err(r) => return Ok(r),
    };
    if let Err(r) = check_reason(&body.reason) {
        return Ok(r);
    }
    let messages = ctx.store.messages_of(user)?;
    let changes = ctx
        .chat
        .purge((me.user, &me.name), &messages, ctx.now, ctx.out);
    for change in &changes {
        if ctx.cfg.store_messages {
            ctx.store.insert_event(&change.row())?;
        }
        ctx.store.erase_message(change.target)?;
    }
    let n = changes.len();
    if delete {
        ctx.chat.delete_user(user, ctx.out);
        ctx.store.delete_user(user, "[deleted]")?;
    }
    let action = if delete { "delete" } else { "purge" };
    let detail = format!("{n} messages deleted");
    audit(ctx, me, action, (Some(&name), None), &body.reason, &detail)?;
    Ok(Response::json(200, &json!({ "deleted": n })))
}

fn role<O: Outbox>(
    req: &Request,
    me: &Authed,
    (user, name): (UserId, Rc<str>),
    ctx: &mut Ctx<'_, O>,
) -> Result<Response, StoreError> {
    let body = decode_body::<RoleBody>(&req.body);
    let admin = match body.as_ref().map(|b| b.role.as_str()) {
        Some("admin") => true,
        Some("user") => false,
        _ => return Ok(bad_body("\"role\": \"admin\" or \"user\"")),
    };
    if !admin && ctx.chat.is_config_admin(user) {
        let detail = "the user is named in --admins; change the setting instead";
        return Ok(Response::error_detail(409, "configured_admin", detail));
    }
    let ts = ctx.chat.unix_ms(ctx.now);
    ctx.store.set_admin(user, admin, ts)?;
    ctx.chat.set_admin(user, admin);
    let role = if admin { "admin" } else { "user" };
    audit(ctx, me, "role", (Some(&name), None), "", role)?;
    Ok(Response::json(
        200,
        &json!({ "username": &*name, "role": role }),
    ))
}

/// `name=value` pairs of a query, percent-decoded; a name outside
/// `known`, a repeated one or a bad escape is the 422's detail.
fn query_pairs(req: &Request, known: &[&str]) -> Result<Vec<(String, String)>, Response> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in req
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = |why: String| Response::error_detail(422, "invalid_request", &why);
        if !known.contains(&name) {
            let name: String = name.chars().take(32).collect();
            let known = known.join(", ");
            return Err(bad(format!(
                "unknown parameter \"{name}\" (known: {known})"
            )));
        }
        if pairs.iter().any(|(n, _)| n == name) {
            return Err(bad(format!("{name} must be given once")));
        }
        let value = percent_decode(value).ok_or_else(|| bad(format!("{name}: bad escape")))?;
        pairs.push((name.to_owned(), value));
    }
    Ok(pairs)
}

/// The `limit` of a page: 1 to the largest page, default the usual one.
fn page_limit(pairs: &[(String, String)]) -> Result<usize, Response> {
    match pairs.iter().find(|(n, _)| n == "limit") {
        None => Ok(PAGE.0),
        Some((_, v)) => v
            .parse()
            .ok()
            .filter(|l| (1..=PAGE.1).contains(l))
            .ok_or_else(|| {
                let detail = format!("limit must be an integer from 1 to {}", PAGE.1);
                Response::error_detail(422, "invalid_request", &detail)
            }),
    }
}

/// `GET /api/admin/users?prefix=&limit=&after=`: users by name
/// (without regard to case); `after` is the last name of the previous
/// page.
fn users<O: Outbox>(req: &Request, ctx: &mut Ctx<'_, O>) -> Result<Response, StoreError> {
    let pairs = match query_pairs(req, &["prefix", "limit", "after"]) {
        Ok(p) => p,
        Err(r) => return Ok(r),
    };
    let limit = match page_limit(&pairs) {
        Ok(l) => l,
        Err(r) => return Ok(r),
    };
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let rows = ctx.store.users_page(
        get("prefix").unwrap_or(""),
        get("after").unwrap_or(""),
        limit,
    )?;
    let chat = &*ctx.chat;
    let lines: Vec<AdminUserLine<'_>> = rows
        .iter()
        .map(|(id, name, created)| AdminUserLine {
            username: name,
            created: *created,
            last_seen: chat.last_seen(*id),
            online: chat.is_online(*id),
            role: if chat.is_admin(*id) { "admin" } else { "user" },
            banned: chat.is_banned(*id),
            muted_until: chat.mute_end(*id, ctx.now),
        })
        .collect();
    Ok(Response::json(200, &json!({ "users": lines })))
}

/// `GET /api/admin/audit?before=&limit=`: newest first; `before` is the
/// last id of the previous page.
fn audit_page<O: Outbox>(req: &Request, ctx: &mut Ctx<'_, O>) -> Result<Response, StoreError> {
    let pairs = match query_pairs(req, &["before", "limit"]) {
        Ok(p) => p,
        Err(r) => return Ok(r),
    };
    let limit = match page_limit(&pairs) {
        Ok(l) => l,
        Err(r) => return Ok(r),
    };
    let before = match pairs.iter().find(|(n, _)| n == "before") {
        None => i64::MAX,
        Some((_, v)) => match v.parse::<i64>().ok().filter(|&b| b > 0) {
            Some(b) => b,
            None => {
                let detail = "before must be an audit id, an integer from 1";
                return Ok(Response::error_detail(422, "invalid_request", detail));
            }
        },
    };
    let rows = ctx.store.audit_before(before, limit)?;
    let lines: Vec<AuditLine<'_>> = rows
        .iter()
        .map(|r| AuditLine {
            id: r.id,
            ts: r.ts,
            by: &r.actor,
            action: &r.action,
            target: r.target.as_deref(),
            room: r.room.as_deref(),
            reason: &r.reason,
            detail: &r.detail,
        })
        .collect();
    Ok(Response::json(200, &json!({ "audit": lines })))
}

/// Most registrations one invite code may allow.
const MAX_INVITE_USES: u32 = 10_000;

/// `POST /api/admin/invites` `{"uses", "expires"}` → 201 `{"code"}`.
fn invite<O: Outbox>(
    req: &Request,
    me: &Authed,
    ctx: &mut Ctx<'_, O>,
) -> Result<Response, StoreError> {
    let fields = "optional \"uses\" (1 to 10000) and \"expires\" (a duration like \"7d\")";
    let body = match body_or_default::<InviteCodeBody>(req, fields) {
        Ok(b) => b,
        Err(r) => return Ok(r),
    };
    let uses = body.uses.unwrap_or(1);
    if !(1..=MAX_INVITE_USES).contains(&uses) {
        return Ok(bad_body(fields));
    }
    let now = ctx.chat.unix_ms(ctx.now);
    let expires = match body.expires.as_deref().map(parse_duration) {
        None => None,
        Some(Some(ms)) => Some(now.saturating_add(ms)),
        Some(None) => return Ok(invalid_duration()),
    };
    let code = secret::new_session_token();
    ctx.store
        .put_invite(&secret::sha256_hex(&code), uses, expires, now)?;
    let detail = match expires {
        Some(at) => format!("{uses} uses, expires {at}"),
        None => format!("{uses} uses"),
    };
    audit(ctx, me, "invite", (None, None), "", &detail)?;
    let body = json!({ "code": code, "uses": uses, "expires": expires });
    Ok(Response::json(201, &body))
}

/// `POST /api/rooms/{name}/kick|mute|moderators`.
fn room_action<O: Outbox>(
    req: &Request,
    me: &Authed,
    ctx: &mut Ctx<'_, O>,
) -> Result<Response, StoreError> {
    let rest = &req.path()["/api/rooms/".len()..];
    let (raw, action) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(room) = percent_decode(raw) else {
        return Ok(Response::error(404, "room_not_found"));
    };
    match action {
        "kick" => kick(req, me, &room, ctx),
        "mute" => room_mute(req, me, &room, ctx),
        _ => moderator(req, me, &room, ctx),
    }
}

fn kick<O: Outbox>(
    req: &Request,
    me: &Authed,
    room: &str,
    ctx: &mut Ctx<'_, O>,
) -> Result<Response, StoreError> {
    let body = decode_body::<KickBody>(&req.body).filter(|b| !b.username.is_empty());
    let Some(body) = body else {
        return Ok(bad_body("\"username\" and an optional \"reason\", strings"));
    };
    if let Err(r) = check_reason(&body.reason) {
        return Ok(r);
    }
    let done = ctx.chat.kick(
        me.user,
        room,
        &body.username,
        &body.reason,
        ctx.now,
        ctx.out,
    );
    let action = match done {
        Ok(a) => a,
        Err(e) => return Ok(mod_error(e)),
    };
    if ctx.cfg.store_messages {
        ctx.store.insert_event(&action.row())?;
    }
    ctx.store.delete_member(action.room.0, action.user)?;
    ctx.store.set_kick(action.room.0, action.user, true)?;
    let names = (Some(&*action.username), Some(&*action.room_name));
    audit(ctx, me, "kick", names, &body.reason, "")?;
    Ok(Response::json(200, &json!({ "id": action.id })))
}

fn room_mute<O: Outbox>(
    req: &Request,
    me: &Authed,
    room: &str,
    ctx: &mut Ctx<'_, O>,
) -> Result<Response, StoreError> {
    let body = decode_body::<RoomMuteBody>(&req.body).filter(|b| !b.username.is_empty());
    let Some(body) = body else {
        return Ok(bad_body(
            "\"username\", \"duration\" (like \"10m\") and an optional \"reason\", strings",
        ));
    };
    if let Err(r) = check_reason(&body.reason) {
        return Ok(r);
    }
    let Some(ms) = parse_duration(&body.duration) else {
        return Ok(invalid_duration());
    };
    let (user, reason) = (&body.username, &body.reason);
    let done = ctx
        .chat
        .room_mute(me.user, room, user, ms, reason, ctx.now, ctx.out);
    let action = match done {
        Ok(a) => a,
        Err(e) => return Ok(mod_error(e)),
    };
    let until = action.until.unwrap_or_default();
    if ctx.cfg.store_messages {
        ctx.store.insert_event(&action.row())?;
    }
    ctx.store.put_room_mute(action.room.0, action.user, until)?;
    let names = (Some(&*action.username), Some(&*action.room_name));
    let detail = format!("until {until} ({})", body.duration);
    audit(ctx, me, "room_mute", names, reason, &detail)?;
    Ok(Response::json(
        200,
        &json!({ "id": action.id, "until": until }),
    ))
}

fn moderator<O: Outbox>(
    req: &Request,
    me: &Authed,
    room: &str,
    ctx: &mut Ctx<'_, O>,
) -> Result<Response, StoreError> {
    let body = decode_body::<InviteBody>(&req.body).filter(|b| !b.username.is_empty());
    let Some(body) = body else {
        return Ok(super::invalid_body("username"));
    };
    let (room_id, user) = match ctx.chat.make_moderator(me.user, room, &body.username) {
        Ok(done) => done,
        Err(e) => return Ok(mod_error(e)),
    };
    ctx.store.put_member(room_id.0, user, "moderator")?;
    let name = ctx.chat.user_name(user).unwrap_or_default();
    audit(ctx, me, "moderator", (Some(&name), Some(room)), "", "")?;
    Ok(Response::json(200, &json!({})))
}

/// `--registration closed`: every registration is 403
/// `registration_closed`, before anything else is looked at.
pub fn registration_closed<O: Outbox>(ctx: &Ctx<'_, O>) -> Option<Response> {
    (ctx.cfg.registration == Registration::Closed).then(|| {
        let detail = "this server does not take new registrations";
        Response::error_detail(403, "registration_closed", detail)
    })
}

/// `--registration invite`: spends one use of the body's invite code (in
/// the turn's batch); a name given to `--admins` needs none. `Ok(Err(400 invalid_invite))` for a missing,
/// unknown, spent or expired code; `Ok(Ok(hash))` names the code used
/// (`None` when registration is open), to give the use back should the
/// name be taken.
pub fn take_invite<O: Outbox>(
    body: &RegisterBody,
    ctx: &mut Ctx<'_, O>,
) -> Result<Result<Option<String>, Response>, StoreError> {
    // The names in `--admins` need no code: somebody must be the first
    // to hand codes out.
    let configured = |name: &str| ctx.cfg.admins.iter().any(|a| a.eq_ignore_ascii_case(name));
    if ctx.cfg.registration != Registration::Invite || configured(&body.username) {
        return Ok(Ok(None));
    }
    let invalid = || {
        let detail = "registration needs a valid invite code: {\"username\", \"invite\"}";
        Response::error_detail(400, "invalid_invite", detail)
    };
    let Some(code) = body.invite.as_deref().filter(|c| !c.is_empty()) else {
        return Ok(Err(invalid()));
    };
    let hash = secret::sha256_hex(code);
    let now = ctx.chat.unix_ms(ctx.now);
    if !ctx.store.use_invite(&hash, now)? {
        return Ok(Err(invalid()));
    }
    Ok(Ok(Some(hash)))
}

/// After a registration: when it happened (for the admin's user list),
/// or, when the name was taken, the invite's use given back.
pub fn registered<O: Outbox>(
    user: Option<UserId>,
    invite: Option<&str>,
    ctx: &mut Ctx<'_, O>,
) -> Result<(), StoreError> {
    match (user, invite) {
        (Some(user), _) => {
            let ts = ctx.chat.unix_ms(ctx.now);
            ctx.store.set_user_created(user, ts)
        }
        (None, Some(hash)) => ctx.store.refund_invite(hash),
        (None, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let cases = [
            ("/api/admin/users", Some(Route::Users)),
            ("/api/admin/users/bob", Some(Route::User)),
            ("/api/admin/users/bob/ban", Some(Route::UserAction)),
            ("/api/admin/users/bob/reset-key", Some(Route::UserAction)),
            ("/api/admin/users/bob/nope", None),
            ("/api/admin/users/", None),
            ("/api/admin/users/bob/ban/x", None),
            ("/api/admin/audit", Some(Route::Audit)),
            ("/api/admin/invites", Some(Route::Invites)),
            ("/api/admin", None),
            ("/api/user/@me/key", Some(Route::OwnKey)),
            ("/api/user/%40me/key", Some(Route::OwnKey)),
            ("/api/user/bob/key", None),
            ("/api/rooms/rust/kick", Some(Route::RoomAction)),
            ("/api/rooms/rust/mute", Some(Route::RoomAction)),
            ("/api/rooms/rust/moderators", Some(Route::RoomAction)),
            ("/api/rooms//kick", None),
            ("/api/rooms/rust/join", None),
        ];
        for (path, want) in cases {
            assert_eq!(route_of(path), want, "{path}");
        }
    }
}
