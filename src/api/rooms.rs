//! `/api/rooms...` (SPEC §9): list and create rooms, join, leave, invite,
//! and member lists. The chat decides and announces; this module parses,
//! answers, and writes each change into the turn's batch (the response
//! goes out after the commit, like every answer of the turn).

use super::{Ctx, authenticate};
use crate::chat::{MemberInfo, Membership, Outbox, RoomError};
use crate::http::{Request, Response, percent_decode};
use crate::protocol::{
    CreateRoomBody, EmptyBody, InviteBody, MemberLine, MemberList, RoomLine, RoomList, decode_body,
};
use crate::store::StoreError;
use serde_json::json;

/// What follows `/api/rooms/{name}/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `join`
    Join,
    /// `leave`
    Leave,
    /// `invite`
    Invite,
    /// `members`
    Members,
}

/// The room name and action of a `/api/rooms/{name}/{action}` path.
pub fn parse_path(path: &str) -> Option<(&str, Action)> {
    let rest = path.strip_prefix("/api/rooms/")?;
    let (name, action) = rest.split_once('/')?;
    let action = match action {
        "join" => Action::Join,
        "leave" => Action::Leave,
        "invite" => Action::Invite,
        "members" => Action::Members,
        _ => return None,
    };
    Some((name, action))
}

fn room_error(e: RoomError) -> Response {
    let (status, code) = e.status();
    Response::error(status, code)
}

/// `GET /api/rooms`: general, the public rooms and the user's private
/// ones. `unread` comes from the chat's counters (no query).
pub fn list<O: Outbox>(req: &Request, ctx: &mut Ctx<'_, O>) -> Response {
    let me = match authenticate(req, ctx) {
        Ok(me) => me,
        Err(r) => return r,
    };
    let list = ctx.chat.room_list(me.user);
    let rooms: Vec<RoomLine<'_>> = list
        .iter()
        .map(|r| RoomLine {
            name: &r.name,
            private: r.private,
            members: r.members,
            joined: r.role.is_some(),
            role: r.role.map(|r| r.as_str()),
            unread: r.unread,
            last_id: r.last_id,
        })
        .collect();
    Response::json(200, &RoomList { rooms })
}

/// `POST /api/rooms` `{"name", "private"}`: 201 `{"name"}`.
pub fn create<O: Outbox>(req: &Request, ctx: &mut Ctx<'_, O>) -> Result<Response, StoreError> {
    let me = match authenticate(req, ctx) {
        Ok(me) => me,
        Err(r) => return Ok(r),
    };
    let body = decode_body::<CreateRoomBody>(&req.body).filter(|b| !b.name.is_empty());
    let Some(body) = body else {
        let detail = "the body must be a JSON object with \"name\", a non-empty string, \
                      and optionally \"private\", true or false";
        return Ok(Response::error_detail(422, "invalid_request", detail));
    };
    let created = ctx
        .chat
        .create_room(me.user, &body.name, body.private, ctx.now, ctx.out);
    let (room, owner) = match created {
        Ok(done) => done,
        Err(e) => return Ok(room_error(e)),
    };
    ctx.store
        .insert_room(room.id.0, &room.name, room.private, room.ts)?;
    store_membership(&owner, ctx)?;
    Ok(Response::json(201, &json!({ "name": &*room.name })))
}

/// `POST /api/rooms/{name}/join|leave|invite`, `GET .../members`.
pub fn action<O: Outbox>(
    req: &Request,
    path: &str,
    ctx: &mut Ctx<'_, O>,
) -> Result<Response, StoreError> {
    let me = match authenticate(req, ctx) {
        Ok(me) => me,
        Err(r) => return Ok(r),
    };
    let Some((raw, action)) = parse_path(path) else {
        return Ok(Response::error(404, "not_found"));
    };
    let Some(name) = percent_decode(raw) else {
        return Ok(room_error(RoomError::NotFound));
    };
    let empty = req.body.is_empty() || decode_body::<EmptyBody>(&req.body).is_some();
    if matches!(action, Action::Join | Action::Leave) && !empty {
        let detail = "join and leave take no body (or {})";
        return Ok(Response::error_detail(422, "invalid_request", detail));
    }
    let (chat, now) = (&mut *ctx.chat, ctx.now);
    let changed = match action {
        Action::Members => return Ok(members(chat.room_members(me.user, &name))),
        Action::Join => chat.join_room(me.user, &name, now, ctx.out),
        Action::Leave => chat.leave_room(me.user, &name, now, ctx.out),
        Action::Invite => {
            let Some(body) =
                decode_body::<InviteBody>(&req.body).filter(|b| !b.username.is_empty())
            else {
                return Ok(super::invalid_body("username"));
            };
            chat.invite(me.user, &name, &body.username, now, ctx.out)
        }
    };
    match changed {
        Ok(Some(change)) => {
            store_membership(&change, ctx)?;
            if action == Action::Invite {
                // An invitation lifts a kick (the chat forgot it already).
                ctx.store.set_kick(change.room.0, change.user, false)?;
            }
        }
        Ok(None) => {}
        Err(e) => return Ok(room_error(e)),
    }
    Ok(Response::json(200, &json!({})))
}

/// `GET /api/rooms/{name}/members`.
fn members(list: Result<Vec<MemberInfo>, RoomError>) -> Response {
    let list = match list {
        Ok(list) => list,
        Err(e) => return room_error(e),
    };
    let members: Vec<MemberLine<'_>> = list
        .iter()
        .map(|m| MemberLine {
            username: &m.username,
            role: m.role.as_str(),
            online: m.online,
        })
        .collect();
    Response::json(200, &MemberList { members })
}

/// The member row and its event, in the turn's batch.
fn store_membership<O: Outbox>(m: &Membership, ctx: &mut Ctx<'_, O>) -> Result<(), StoreError> {
    match m.role {
        Some(role) => {
            ctx.store.put_member(m.room.0, m.user, role.as_str())?;
            // The read marker starts at the join (as the chat's does).
            ctx.store.put_read(m.user, m.room.0, m.id)?;
        }
        None => ctx.store.delete_member(m.room.0, m.user)?,
    }
    if ctx.cfg.store_messages {
        ctx.store.insert_event(&m.row())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let cases = [
            ("/api/rooms/rust/join", Some(("rust", Action::Join))),
            ("/api/rooms/rust/leave", Some(("rust", Action::Leave))),
            ("/api/rooms/a-b/invite", Some(("a-b", Action::Invite))),
            ("/api/rooms/x/members", Some(("x", Action::Members))),
            ("/api/rooms/x/members/", None),
            ("/api/rooms/x/kick", None),
            ("/api/rooms/x", None),
            ("/api/rooms", None),
        ];
        for (path, want) in cases {
            assert_eq!(parse_path(path), want, "{path}");
        }
    }
}
