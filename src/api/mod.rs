//! The API: one parsed request (and who sent it) in, one response or an
//! upgrade decision out. No sockets; the chat, the store and the metrics
//! come in through [`Ctx`].

pub mod admin;
pub mod assets;
pub mod bearer;
pub mod client;
pub mod events;
pub mod post;
pub mod resume;
pub mod rooms;
pub mod search;
pub mod upgrade;

use crate::chat::{AddressLimit, AuthError, Authed, Chat, Outbox, SessionKey};
use crate::config::Config;
use crate::http::{self, Method, Request, Response, cookie_value, percent_decode, query_param};
use crate::ids::Millis;
use crate::metrics::Metrics;
use crate::protocol::{LoginBody, RegisterBody, UserInfo, decode_body};
use crate::secret;
use crate::store::{Store, StoreError};
use client::Peer;
use serde_json::json;
use std::net::IpAddr;

/// Everything a request may read or change.
pub struct Ctx<'a, O: Outbox> {
    /// Settings.
    pub cfg: &'a Config,
    /// The chat state.
    pub chat: &'a mut Chat,
    /// The database.
    pub store: &'a mut Store,
    /// Server counters, for `/metrics`.
    pub metrics: &'a Metrics,
    /// Seconds since start, for `/metrics`.
    pub uptime_secs: u64,
    /// The loop turn's time.
    pub now: Millis,
    /// Where chat output goes (logout closes a socket).
    pub out: &'a mut O,
    /// The client's address: the TCP peer, until [`handle`] has worked
    /// out what a trusted proxy says it is. Wrong bearer keys count toward
    /// the failed-login limit of this address.
    pub client: IpAddr,
    /// A write to the turn's batch failed: the turn must not be
    /// committed (it is stored all or nothing), and every response held
    /// for the commit becomes 503 `storage_unavailable`.
    pub write_failed: bool,
    /// A line for the log about what went wrong, if anything did.
    pub note: Option<String>,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Routed {
    /// Send this response.
    Respond(Response),
    /// Send this response once the turn's commit has stored what it
    /// promises or was read from (a new user's key, a login's session, rows
    /// of the turn's batch); if the commit fails, the client gets 503
    /// `storage_unavailable` in its place instead.
    AfterCommit(Response),
    /// Answer 101 with this `Sec-WebSocket-Accept` and switch to
    /// WebSocket; `chat` names the session for `/ws`, `None` is `/echo`.
    Upgrade {
        /// The accept key.
        accept: String,
        /// The session of a chat socket.
        chat: Option<Authed>,
        /// `?since=ID`: replay the stored messages after this id first.
        since: Option<i64>,
    },
    /// Answer with the head of an event stream (`GET /api/events`) and
    /// keep the response going with the session's events.
    Stream {
        /// The session.
        chat: Authed,
        /// Replay the stored events after this id first.
        since: Option<i64>,
    },
}

impl From<Response> for Routed {
    fn from(r: Response) -> Routed {
        Routed::Respond(r)
    }
}

/// The endpoints, for routing and `Allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Register,
    Login,
    Logout,
    Online,
    Messages,
    User,
    Healthz,
    Metrics,
    Ws,
    Echo,
    Events,
    Rooms,
    RoomAction,
    RoomMembers,
    Admin(admin::Route),
    Search,
    Asset(&'static assets::Asset),
}

impl Endpoint {
    /// The methods allowed, as the `Allow` header lists them.
    fn allow(self) -> &'static str {
        match self {
            Endpoint::Register | Endpoint::Login | Endpoint::RoomAction => "POST",
            Endpoint::Logout => "GET, POST",
            Endpoint::Rooms | Endpoint::Messages => "GET, HEAD, POST",
            Endpoint::Ws | Endpoint::Echo | Endpoint::Events => "GET",
            Endpoint::Admin(route) => route.allow(),
            _ => "GET, HEAD",
        }
    }

    /// Whether `m` is allowed; [`Endpoint::allow`] lists the same.
    fn allows(self, m: &Method) -> bool {
        self.allow().split(", ").any(|a| a == m.as_str())
    }
}

/// Routes one request that arrived over TCP from `tcp`. Returns what to
/// do with it and the client's address (the TCP peer, or what a trusted
/// proxy says it is), for the access log.
pub fn handle<O: Outbox>(req: &Request, tcp: IpAddr, ctx: &mut Ctx<'_, O>) -> (Routed, IpAddr) {
    let peer = Peer::of(req, tcp, &ctx.cfg.trusted_proxies);
    ctx.client = peer.client;
    (route(req, &peer, ctx), peer.client)
}

/// Routes one request from `peer`.
fn route<O: Outbox>(req: &Request, peer: &Peer, ctx: &mut Ctx<'_, O>) -> Routed {
    let path = req.path();
    let Some(endpoint) = endpoint_of(path, ctx.cfg, peer) else {
        return Response::error(404, "not_found").into();
    };
    if !endpoint.allows(&req.method) {
        return Response::error(405, "method_not_allowed")
            .with_header("Allow", endpoint.allow())
            .into();
    }
    let result = match endpoint {
        Endpoint::Register => register(req, peer, ctx),
        Endpoint::Login => login(req, peer, ctx),
        Endpoint::Logout => Ok(logout(req, ctx)),
        Endpoint::Online => Ok(online(req, ctx)),
        Endpoint::Messages if req.method == Method::Post => post::create(req, ctx),
        Endpoint::Messages => messages(req, ctx),
        Endpoint::User => user(req, path, ctx),
        Endpoint::Healthz => Ok(Response::json(200, &json!({"status": "ok"}))),
        Endpoint::Metrics => Ok(metrics(ctx)),
        Endpoint::Ws => return ws(req, ctx),
        Endpoint::Echo => return echo(req, ctx),
        Endpoint::Events => return events::events(req, ctx),
        Endpoint::Rooms if req.method == Method::Post => rooms::create(req, ctx),
        Endpoint::Rooms => Ok(rooms::list(req, ctx)),
        Endpoint::RoomAction | Endpoint::RoomMembers => rooms::action(req, path, ctx),
        Endpoint::Admin(route) => admin::handle(req, route, ctx),
        Endpoint::Search => search::search(req, ctx),
        Endpoint::Asset(asset) => Ok(assets::response(asset)),
    };
    let resp = result.unwrap_or_else(|e| {
        ctx.note = Some(format!("database: {e}"));
        Response::error(500, "internal_error")
    });
    // The store's connection sees the turn's uncommitted rows; a login's
    // session row is written at the end of the turn; a room change is
    // written in the turn's batch.
    let reads_store = matches!(
        endpoint,
        Endpoint::Register
            | Endpoint::Login
            | Endpoint::Messages
            | Endpoint::User
            | Endpoint::Rooms
            | Endpoint::RoomAction
            | Endpoint::Admin(_)
            | Endpoint::Search
    );
    let new_session = endpoint == Endpoint::Login && resp.status == 200;
    if reads_store && (ctx.store.has_batch() || new_session) {
        Routed::AfterCommit(resp)
    } else {
        Routed::Respond(resp)
    }
}

/// What a client gets in place of a held response when the turn's commit
/// failed (see [`Routed::AfterCommit`]).
pub fn storage_unavailable() -> Response {
    Response::error(503, "storage_unavailable")
}

fn endpoint_of(path: &str, cfg: &Config, peer: &Peer) -> Option<Endpoint> {
    Some(match path {
        "/api/register" => Endpoint::Register,
        "/api/login" => Endpoint::Login,
        "/api/logout" => Endpoint::Logout,
        "/api/online" => Endpoint::Online,
        "/api/messages" => Endpoint::Messages,
        "/healthz" => Endpoint::Healthz,
        // Unreachable through a proxy: it would otherwise leak to the world.
        "/metrics" if peer.may_see_metrics() => Endpoint::Metrics,
        "/ws" => Endpoint::Ws,
        "/echo" if cfg.echo_endpoint => Endpoint::Echo,
        "/api/rooms" => Endpoint::Rooms,
        "/api/events" => Endpoint::Events,
        "/api/search" => Endpoint::Search,
        p if admin::route_of(p).is_some() => Endpoint::Admin(admin::route_of(p)?),
        p if rooms::parse_path(p).is_some() => match rooms::parse_path(p)?.1 {
            rooms::Action::Members => Endpoint::RoomMembers,
            _ => Endpoint::RoomAction,
        },
        p => match assets::find(p) {
            Some(asset) => Endpoint::Asset(asset),
            None if p
                .strip_prefix("/api/user/")
                .is_some_and(|n| !n.contains('/')) =>
            {
                Endpoint::User
            }
            None => return None,
        },
    })
}

/// A valid username: 1 to 32 ASCII letters or digits, nothing else.
pub fn valid_username(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// 422 `invalid_request` for a body that is not `{"<field>": "<text>"}`.
pub(crate) fn invalid_body(field: &str) -> Response {
    let detail = format!(
        "the body must be a JSON object with exactly one field, \"{field}\", a non-empty string"
    );
    Response::error_detail(422, "invalid_request", &detail)
}

fn rate_limited(secs: u64) -> Response {
    Response::error(429, "rate_limited").with_header("Retry-After", secs.to_string())
}

fn register<O: Outbox>(
    req: &Request,
    peer: &Peer,
    ctx: &mut Ctx<'_, O>,
) -> Result<Response, StoreError> {
    let limit = AddressLimit::Register;
    if let Err(secs) = ctx.chat.check_limit(limit, peer.client, ctx.now) {
        return Ok(rate_limited(secs));
    }
    ctx.chat.record_limit(limit, peer.client, ctx.now);
    if let Some(refused) = admin::registration_closed(ctx) {
        return Ok(refused);
    }
    let Some(body) = decode_body::<RegisterBody>(&req.body).filter(|b| !b.username.is_empty())
    else {
        return Ok(invalid_body("username"));
    };
    if !valid_username(&body.username) {
        return Ok(Response::error(400, "invalid_username"));
    }
    let invite = match admin::take_invite(&body, ctx)? {
        Ok(invite) => invite,
        Err(refused) => return Ok(refused),
    };
    let key = secret::new_user_key();
    let created = ctx
        .store
        .create_user(&body.username, &secret::sha256_hex(&key))?;
    admin::registered(created.as_ref().map(|u| u.id), invite.as_deref(), ctx)?;
    Ok(match created {
        Some(user) => {
            // Direct messages and member lists may name them at once.
            ctx.chat.add_user(user.id, &user.name);
            Response::json(201, &json!({ "key": key }))
        }
        None => Response::error(409, "username_taken"),
    })
}

fn login<O: Outbox>(
    req: &Request,
    peer: &Peer,
    ctx: &mut Ctx<'_, O>,
) -> Result<Response, StoreError> {
    let limit = AddressLimit::LoginFailure;
    if let Err(secs) = ctx.chat.check_limit(limit, peer.client, ctx.now) {
        return Ok(rate_limited(secs));
    }
    let Some(body) = decode_body::<LoginBody>(&req.body).filter(|b| !b.key.is_empty()) else {
        return Ok(invalid_body("key"));
    };
    let Some(user) = ctx.store.user_by_key_hash(&secret::sha256_hex(&body.key))? else {
        ctx.chat.record_limit(limit, peer.client, ctx.now);
        return Ok(Response::error(401, "invalid_key"));
    };
    if ctx.chat.is_banned(user.id) {
        return Ok(Response::error(403, "banned"));
    }
    let token = secret::new_session_token();
    ctx.chat
        .login(SessionKey::of(&token), user.id, &user.name, ctx.now);
    let cookie = http::set_cookie("session", &token, ctx.cfg.session_ttl.as_secs(), peer.https);
    Ok(Response::json(200, &json!({ "username": user.name })).with_header("Set-Cookie", cookie))
}

/// The `Set-Cookie` value that clears the session cookie.
fn clear_cookie() -> String {
    http::set_cookie("session", "", 0, false)
}

/// The first value of header `name` (lower case).
fn header<'r>(req: &'r Request, name: &str) -> Option<&'r [u8]> {
    req.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

fn session_cookie(req: &Request) -> Option<&str> {
    req.headers
        .iter()
        .filter(|(n, _)| n == "cookie")
        .find_map(|(_, v)| cookie_value(v, "session"))
}

fn logout<O: Outbox>(req: &Request, ctx: &mut Ctx<'_, O>) -> Response {
    // `GET /api/logout` stays for the original frontend and curl, but a
    // link or image on another site would log the user out: a Lax cookie
    // rides along on top-level cross-site GETs. Browsers say where a
    // request comes from; curl and old browsers send no such header and
    // keep working. A cross-site POST carries no Lax cookie, but it could
    // still clear the cookie, so it is refused the same way.
    if header(req, "sec-fetch-site").is_some_and(|v| v.eq_ignore_ascii_case(b"cross-site")) {
        return Response::error(403, "cross_site_request");
    }
    if let Some(token) = session_cookie(req) {
        ctx.chat.logout(token, ctx.out);
    }
    Response::json(200, &json!({})).with_header("Set-Cookie", clear_cookie())
}

/// Authenticates the request or gives the error response.
///
/// A banned user is 403 `banned` whatever the credentials: a ban ends
/// their sessions, and this check refuses every other way in (a key sent
/// as `Authorization: Bearer`), so every way of proving who one is goes
/// through [`identify`] and then here.
fn authenticate<O: Outbox>(req: &Request, ctx: &mut Ctx<'_, O>) -> Result<Authed, Response> {
    let me = identify(req, ctx)?;
    if ctx.chat.is_banned(me.user) {
        return Err(Response::error(403, "banned"));
    }
    Ok(me)
}

/// Who the request's credentials name: by its `Authorization: Bearer`
/// key when it has one (see [`bearer`]), else by its session cookie; or
/// the error response.
fn identify<O: Outbox>(req: &Request, ctx: &mut Ctx<'_, O>) -> Result<Authed, Response> {
    if let Some(key) = bearer::credentials(req) {
        return bearer::authenticate(key, ctx);
    }
    ctx.chat
        .authenticate(session_cookie(req), ctx.now)
        .map_err(|e| match e {
            AuthError::Missing => Response::error(422, "missing_session"),
            AuthError::Invalid => {
                Response::error(401, "invalid_session").with_header("Set-Cookie", clear_cookie())
            }
        })
}

fn online<O: Outbox>(req: &Request, ctx: &mut Ctx<'_, O>) -> Response {
    if let Err(r) = authenticate(req, ctx) {
        return r;
    }
    let names: Vec<&str> = ctx.chat.online_names().collect();
    Response::json(200, &json!({ "online_clients": names }))
}

fn user<O: Outbox>(
    req: &Request,
    path: &str,
    ctx: &mut Ctx<'_, O>,
) -> Result<Response, StoreError> {
    let me = match authenticate(req, ctx) {
        Ok(me) => me,
        Err(r) => return Ok(r),
    };
    let raw = &path["/api/user/".len()..];
    let Some(name) = percent_decode(raw) else {
        return Ok(Response::error(404, "user_not_found"));
    };
    let (id, shown) = if name == "@me" {
        (me.user, me.name.to_string())
    } else {
        match ctx.store.user_by_name(&name)? {
            Some(u) => (u.id, u.name),
            None => return Ok(Response::error(404, "user_not_found")),
        }
    };
    let online = ctx.chat.is_online(id);
    // Only for `@me`: the web client tells "open in another tab" (the
    // socket limit reached) from a plain disconnect.
    let mine = (name == "@me").then(|| (ctx.chat.sockets_of(id).len(), ctx.cfg.sockets_per_user));
    Ok(Response::json(
        200,
        &UserInfo {
            username: &shown,
            online,
            last_seen: ctx.chat.last_seen(id),
            sockets: mine.map(|m| m.0),
            sockets_per_user: mine.map(|m| m.1),
            admin: name == "@me" && ctx.chat.is_admin(id),
        },
    ))
}

fn metrics<O: Outbox>(ctx: &mut Ctx<'_, O>) -> Response {
    let text = ctx.metrics.render(
        &ctx.chat.stats,
        ctx.chat.session_count(),
        ctx.store.checkpoints(),
        ctx.uptime_secs,
    );
    Response {
        status: 200,
        headers: vec![(
            "Content-Type",
            "text/plain; version=0.0.4; charset=utf-8".into(),
        )],
        body: text.into_bytes(),
        close: false,
    }
}

/// `/ws`: the checks of SPEC §5.1, in order.
fn ws<O: Outbox>(req: &Request, ctx: &mut Ctx<'_, O>) -> Routed {
    let me = match authenticate(req, ctx) {
        Ok(me) => me,
        Err(r) => return r.into(),
    };
    if !upgrade::origin_allowed(req, &ctx.cfg.allowed_origins) {
        return Response::error(403, "origin_not_allowed").into();
    }
    if ctx.chat.sockets_of(me.user).len() >= ctx.cfg.sockets_per_user {
        return Response::error(409, "already_connected").into();
    }
    let accept = match upgrade::accept_key(req) {
        Ok(accept) => accept,
        Err(why) => return bad_upgrade(why, ctx),
    };
    // Other query parameters are left alone: clients add cache-busters.
    let since = req.query().and_then(|q| query_param(q, "since"));
    let since = match since.map(|s| s.parse::<i64>().ok().filter(|&v| v >= 0)) {
        None => None,
        Some(Some(id)) => Some(id),
        Some(None) => {
            let detail = "since must be a message id, an integer from 0";
            return Response::error_detail(422, "invalid_request", detail).into();
        }
    };
    if bearer::credentials(req).is_some() {
        // The socket is opened in this same turn, on this session.
        let (key, name) = (me.key.clone(), me.name.clone());
        ctx.chat.bearer_socket_session(key, me.user, &name, ctx.now);
    }
    Routed::Upgrade {
        accept,
        chat: Some(me),
        since,
    }
}

/// `GET /api/messages?before=ID&limit=N` with `room=NAME` or
/// `with=USERNAME` (neither: general): a page of one conversation's
/// history, oldest first.
fn messages<O: Outbox>(req: &Request, ctx: &mut Ctx<'_, O>) -> Result<Response, StoreError> {
    let me = match authenticate(req, ctx) {
        Ok(me) => me,
        Err(r) => return Ok(r),
    };
    let q = match history_params(req.query().unwrap_or("")) {
        Ok(q) => q,
        Err(detail) => return Ok(Response::error_detail(422, "invalid_request", &detail)),
    };
    let found = ctx
        .chat
        .conversation(me.user, q.room.as_deref(), q.with.as_deref());
    let paged = match found {
        Ok(found) => found,
        Err(e) => {
            let (status, code) = e.status();
            return Ok(Response::error(status, code));
        }
    };
    let rows = ctx.store.messages_before(paged.conv, q.before, q.limit)?;
    let reactions = match (rows.first(), rows.last()) {
        (Some(lo), Some(hi)) => ctx.store.reactions_between(lo.id, hi.id)?,
        _ => Vec::new(),
    };
    let page = paged.page(&me.name, &rows, &reactions);
    Ok(Response::json(200, &page))
}

/// Default and largest page of `GET /api/messages`.
const HISTORY_PAGE: (usize, usize) = (50, 200);

/// The parameters of `GET /api/messages`.
#[derive(Debug, PartialEq, Eq)]
struct HistoryQuery {
    /// Ids below this (default: after the newest).
    before: i64,
    /// Page size.
    limit: usize,
    /// A room's name.
    room: Option<String>,
    /// The other side of a direct conversation.
    with: Option<String>,
}

/// `before` (a positive id, default: after the newest), `limit` (1 to
/// 200, default 50), and at most one of `room` and `with`; for a bad,
/// repeated or unknown parameter, what was wrong (the 422's `detail`).
fn history_params(query: &str) -> Result<HistoryQuery, String> {
    let mut q = HistoryQuery {
        before: i64::MAX,
        limit: HISTORY_PAGE.0,
        room: None,
        with: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "before" => {
                q.before = value
                    .parse()
                    .ok()
                    .filter(|&b: &i64| b > 0)
                    .ok_or("before must be a message id, an integer from 1")?
            }
            "limit" => {
                q.limit = value
                    .parse()
                    .ok()
                    .filter(|l| (1..=HISTORY_PAGE.1).contains(l))
                    .ok_or_else(|| {
                        format!("limit must be an integer from 1 to {}", HISTORY_PAGE.1)
                    })?
            }
            "room" | "with" => {
                let name_rule = format!("{name} must be given once, a non-empty name");
                let value = percent_decode(value).filter(|v| !v.is_empty());
                let slot = if name == "room" {
                    &mut q.room
                } else {
                    &mut q.with
                };
                if slot.is_some() {
                    return Err(name_rule);
                }
                *slot = Some(value.ok_or(name_rule)?);
            }
            // A misspelt parameter is a mistake worth hearing about. The
            // name is the client's text; keep it short.
            _ => {
                let name: String = name.chars().take(32).collect();
                return Err(format!(
                    "unknown parameter \"{name}\" (known: before, limit, room, with)"
                ));
            }
        }
    }
    if q.room.is_some() && q.with.is_some() {
        return Err("room and with name different conversations; give one".into());
    }
    Ok(q)
}

fn echo<O: Outbox>(req: &Request, ctx: &mut Ctx<'_, O>) -> Routed {
    match upgrade::accept_key(req) {
        Ok(accept) => Routed::Upgrade {
            accept,
            chat: None,
            since: None,
        },
        Err(why) => bad_upgrade(why, ctx),
    }
}

fn bad_upgrade<O: Outbox>(why: &'static str, ctx: &mut Ctx<'_, O>) -> Routed {
    ctx.note = Some(why.to_string());
    // The version header tells a client which WebSocket version we speak.
    Response::error(400, "bad_request")
        .with_header("Sec-WebSocket-Version", "13")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_exactly_the_allowed_methods() {
        let asset = assets::find("/").expect("the page");
        let all = [
            Endpoint::Register,
            Endpoint::Login,
            Endpoint::Logout,
            Endpoint::Online,
            Endpoint::Messages,
            Endpoint::User,
            Endpoint::Healthz,
            Endpoint::Metrics,
            Endpoint::Ws,
            Endpoint::Echo,
            Endpoint::Asset(asset),
        ];
        for e in all {
            let allowed: Vec<&str> = [Method::Get, Method::Head, Method::Post]
                .iter()
                .filter(|m| e.allows(m))
                .map(Method::as_str)
                .collect();
            assert_eq!(allowed.join(", "), e.allow(), "{e:?}");
            assert!(!e.allows(&Method::Other("PUT".into())), "{e:?}");
        }
    }

    #[test]
    fn history_parameters() {
        const LIMIT: &str = "limit must be an integer from 1 to 200";
        const BEFORE: &str = "before must be a message id, an integer from 1";
        const ROOM: &str = "room must be given once, a non-empty name";
        const BOTH: &str = "room and with name different conversations; give one";
        let q = |before, limit, room: Option<&str>, with: Option<&str>| {
            Ok(HistoryQuery {
                before,
                limit,
                room: room.map(str::to_string),
                with: with.map(str::to_string),
            })
        };
        let cases: &[(&str, Result<HistoryQuery, &str>)] = &[
            ("", q(i64::MAX, 50, None, None)),
            ("limit=200", q(i64::MAX, 200, None, None)),
            ("before=10&limit=1", q(10, 1, None, None)),
            ("room=rust", q(i64::MAX, 50, Some("rust"), None)),
            ("with=ben&limit=3", q(i64::MAX, 3, None, Some("ben"))),
            ("room=", Err(ROOM)),
            ("room", Err(ROOM)),
            ("room=a&room=b", Err(ROOM)),
            ("room=a&with=b", Err(BOTH)),
            ("limit=0", Err(LIMIT)),
            ("limit=201", Err(LIMIT)),
            ("limit=-1", Err(LIMIT)),
            ("before=0", Err(BEFORE)),
            ("before=x", Err(BEFORE)),
            ("before", Err(BEFORE)),
            (
                "limt=5",
                Err("unknown parameter \"limt\" (known: before, limit, room, with)"),
            ),
        ];
        for (query, want) in cases {
            let got = history_params(query);
            assert_eq!(
                got.as_ref().map_err(String::as_str),
                want.as_ref().map_err(|e| *e),
                "{query}"
            );
        }
    }

    #[test]
    fn username_rule() {
        let long = "a".repeat(32);
        let too_long = "a".repeat(33);
        let cases = [
            ("a", true),
            ("Alice99", true),
            (long.as_str(), true),
            ("", false),
            (too_long.as_str(), false),
            ("alice\n", false),
            ("\nalice", false),
            ("al ice", false),
            ("al-ice", false),
            ("ålice", false),
            ("alice\0", false),
        ];
        for (name, ok) in cases {
            assert_eq!(valid_username(name), ok, "{name:?}");
        }
    }

    #[test]
    fn allow_lists_match_allows() {
        use Endpoint::*;
        let methods = [
            Method::Get,
            Method::Head,
            Method::Post,
            Method::Other("PUT".into()),
        ];
        for e in [
            Register,
            Login,
            Logout,
            Online,
            Messages,
            User,
            Healthz,
            Metrics,
            Ws,
            Echo,
            Events,
            Rooms,
            RoomAction,
            RoomMembers,
        ] {
            for m in &methods {
                let listed = e.allow().split(", ").any(|a| a == m.as_str());
                assert_eq!(e.allows(m), listed, "{e:?} {m:?}");
            }
        }
    }
}
