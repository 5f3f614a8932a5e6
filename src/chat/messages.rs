//! Chat messages: ids and timestamps, broadcast to the others, duplicate
//! suppression by `client_id`, and acks held until the turn's commit.

use super::Chat;
use super::conversation::{Accepted, Lookup, NoHistory, Write};
use super::outbox::Outbox;
use super::rooms::{Dest, GENERAL};
use super::sessions::Due;
use crate::ids::{ConnId, Millis, UserId};
use crate::protocol::{
    AckError, ChatFrame, ChatMessage, ClientOp, ServerFrame, Target, decode_client_op,
};
use std::borrow::Cow;
use std::rc::Rc;

impl Chat {
    /// A text frame from chat socket `conn` of a chat that stores no
    /// history (tests, and fuzzing of the message path): as
    /// [`Chat::ws_frame`] with no stored message to find.
    pub fn ws_text(
        &mut self,
        conn: ConnId,
        text: &str,
        now: Millis,
        out: &mut impl Outbox,
    ) -> Option<Accepted> {
        match self.ws_frame(conn, text, now, &mut NoHistory, out)? {
            Write::Message(accepted) => Some(accepted),
            _ => None,
        }
    }

    /// A text frame from chat socket `conn`: exactly one ack to the
    /// sender (a success ack after the turn's commit, or an error ack),
    /// and whatever the frame does (a message or event to its
    /// conversation, a typing notice, a read marker to the sender's other
    /// sockets). Returns what to store, if anything; `look` answers what
    /// the chat must know of stored messages.
    pub fn ws_frame(
        &mut self,
        conn: ConnId,
        text: &str,
        now: Millis,
        look: &mut impl Lookup,
        out: &mut impl Outbox,
    ) -> Option<Write> {
        self.clock = self.clock.max(now);
        let (user, name, op) = self.admit(conn, text, now, out)?;
        let me = (conn, user, &*name);
        match op {
            ClientOp::Message(frame) => self.message(conn, user, &name, frame, now, out),
            ClientOp::Edit { target, text } => self.edit(me, target, &text, now, look, out),
            ClientOp::Delete { target } => self.delete(me, target, now, look, out),
            ClientOp::React { target, emoji } => self.react(me, target, &emoji, now, look, out),
            ClientOp::Typing { on, target } => {
                self.typing(me, on, &target, now, out);
                None
            }
            ClientOp::Read { id, target } => self.read((conn, user), id, &target, look, out),
        }
    }

    /// A message frame: broadcast and acked, or an error ack.
    fn message(
        &mut self,
        conn: ConnId,
        user: UserId,
        name: &str,
        frame: ChatFrame<'_>,
        now: Millis,
        out: &mut impl Outbox,
    ) -> Option<Write> {
        match self.post(Some(conn), user, name, frame, now, out) {
            Ok((id, accepted)) => {
                self.ack(conn, id, out);
                accepted.map(Write::Message)
            }
            Err(e) => {
                self.ack_error(conn, e, out);
                None
            }
        }
    }

    /// A message of `user`, sent on socket `from` or (`None`) over HTTP,
    /// that passed admission: its id, and what to store unless it is the
    /// resend of a message already accepted (by its `client_id`), which
    /// is sent to nobody. The one path of every chat message.
    pub(super) fn post(
        &mut self,
        from: Option<ConnId>,
        user: UserId,
        name: &str,
        frame: ChatFrame<'_>,
        now: Millis,
        out: &mut impl Outbox,
    ) -> Result<(i64, Option<Accepted>), AckError> {
        let known = frame
            .client_id
            .as_ref()
            .and_then(|c| self.recent.get(&(user, (**c).into())));
        if let Some(&id) = known {
            // A resend of a message we have: ack it again, send nothing.
            return Ok((id, None));
        }
        let dest = self.destination(user, &frame.target)?;
        self.check_mute(user, Some(&dest), now)?;
        let (id, ts) = self.next_event(now);
        let message = ChatMessage {
            message: &frame.text,
            author: name,
            id,
            ts,
            room: None,
            to: None,
        };
        self.send_message(from, user, &dest, &message, out);
        if let Some(client_id) = &frame.client_id {
            self.remember_client_id(user, client_id, id, now);
        }
        let client_id = frame.client_id.map(Cow::into_owned);
        let (room, to) = match dest {
            Dest::General => (None, None),
            Dest::Room(r) => (Some(r), None),
            Dest::Direct(u) => (None, Some(u)),
        };
        let accepted = Accepted {
            id,
            user,
            ts,
            text: frame.text.into_owned(),
            client_id,
            room,
            to,
        };
        Ok((id, Some(accepted)))
    }

    /// Queues an accepted message for its conversation: every other
    /// socket in general, the room's other online members, or the two
    /// sides of a direct message ("other": all but the sending socket
    /// `from`, if it came on one). Framed once whatever the count.
    fn send_message(
        &mut self,
        from: Option<ConnId>,
        user: UserId,
        dest: &Dest,
        message: &ChatMessage<'_>,
        out: &mut impl Outbox,
    ) {
        // Presence first, as before every delivery (see `flush_presence`).
        self.flush_presence(out);
        let mut message = message.clone();
        let delivered = &mut self.stats.messages_delivered;
        match *dest {
            Dest::General => {
                self.general_last_id = message.id;
                self.general_count += 1;
                let json = ServerFrame::Message(&message).to_json();
                let others = self.online.iter().filter(|&c| Some(c) != from);
                let to = others.chain(self.streams.all());
                out.deliver_event(to.inspect(|_| *delivered += 1), &json);
            }
            Dest::Room(room) => {
                let r = self.rooms.rooms.get_mut(&room).expect("resolved");
                r.last_id = message.id;
                r.count += 1;
                message.room = Some(&r.name);
                let json = ServerFrame::Message(&message).to_json();
                let members = r.online.iter().copied().filter(|&c| Some(c) != from);
                let to = members.chain(self.streams.of_room(room));
                out.deliver_event(to.inspect(|_| *delivered += 1), &json);
            }
            Dest::Direct(to) => {
                let to_name = self.directory.name(to).cloned().unwrap_or_default();
                message.to = Some(&to_name);
                let json = ServerFrame::Message(&message).to_json();
                // The recipient's sockets and the sender's others; a note
                // to oneself reaches one's other sockets once.
                let all = &self.user_sockets;
                let of = |u| all.get(&u).map_or(&[][..], Vec::as_slice);
                let sender = if to == user { &[][..] } else { of(user) };
                let sockets = of(to).iter().chain(sender);
                let others = sockets.copied().filter(|&c| Some(c) != from);
                let streams = self.streams.of_user(to).iter().copied();
                let sender = if to == user {
                    &[][..]
                } else {
                    self.streams.of_user(user)
                };
                let others = others.chain(streams).chain(sender.iter().copied());
                out.deliver_event(others.inspect(|_| *delivered += 1), &json);
            }
        }
    }

    /// The conversation a frame names, as its sender may use it.
    pub(super) fn destination(&self, user: UserId, target: &Target<'_>) -> Result<Dest, AckError> {
        match target {
            Target::General => Ok(Dest::General),
            Target::Room(name) => match self.rooms.visible(name, user) {
                Ok(GENERAL) => Ok(Dest::General),
                Ok(id) if self.rooms.role(id, user).is_some() => Ok(Dest::Room(id)),
                Ok(_) => Err(AckError::NotAMember),
                Err(_) => Err(AckError::RoomNotFound),
            },
            Target::To(name) => match self.directory.find(name) {
                Some((to, _)) => Ok(Dest::Direct(to)),
                None => Err(AckError::UserNotFound),
            },
        }
    }

    /// The next event's id and time: ids increase by one, and times never
    /// go back.
    pub(super) fn next_event(&mut self, now: Millis) -> (i64, i64) {
        self.last_id += 1;
        self.last_ts = self.last_ts.max(self.unix_ms(now));
        (self.last_id, self.last_ts)
    }

    /// What every frame must pass: the rate limit and the decoding
    /// rules. `None` when the frame is answered already (an error ack).
    fn admit<'t>(
        &mut self,
        conn: ConnId,
        text: &'t str,
        now: Millis,
        out: &mut impl Outbox,
    ) -> Option<(UserId, Rc<str>, ClientOp<'t>)> {
        let sock = self.sockets.get_mut(&conn)?;
        self.stats.messages_received += 1;
        if !sock.bucket.take(self.cfg.burst, self.cfg.rate_per_sec, now) {
            self.ack_error(conn, AckError::RateLimited, out);
            return None;
        }
        let (user, name) = (sock.user, sock.name.clone());
        let op = decode_client_op(text, self.cfg.max_chars)
            .map_err(|e| self.ack_error(conn, e, out))
            .ok()?;
        Some((user, name, op))
    }

    /// Queues `json` for every open socket but `from`'s: serialized once,
    /// the same bytes for all.
    pub(super) fn broadcast(&mut self, from: ConnId, json: &[u8], out: &mut impl Outbox) {
        self.flush_presence(out);
        let delivered = &mut self.stats.messages_delivered;
        let others = self
            .online
            .iter()
            .filter(|&c| c != from)
            .chain(self.streams.all())
            .inspect(|_| *delivered += 1);
        out.deliver_event(others, json);
    }

    fn remember_client_id(&mut self, user: UserId, client_id: &str, id: i64, at: Millis) {
        let key: Box<str> = client_id.into();
        let expires = at + self.cfg.dedupe_window;
        self.wheel
            .insert(expires, Due::Dedupe(user, key.clone(), id));
        self.recent.insert((user, key), id);
    }

    /// Brings back a `client_id` stored at `at` (the server's restart), so
    /// a resend after a crash is still recognized.
    pub fn restore_client_id(&mut self, user: UserId, client_id: &str, id: i64, at: Millis) {
        self.remember_client_id(user, client_id, id, at);
    }

    /// Event ids continue after `id` and times do not go below `ts`
    /// (the newest stored event's).
    pub fn continue_after(&mut self, id: i64, ts: i64) {
        self.last_id = self.last_id.max(id);
        self.stored_id = self.last_id;
        self.last_ts = self.last_ts.max(ts);
    }

    /// The largest event id handed out.
    pub fn last_id(&self) -> i64 {
        self.last_id
    }

    /// The largest message id known to be stored; the ids above it belong
    /// to the current turn and wait for its commit.
    pub fn stored_id(&self) -> i64 {
        self.stored_id
    }

    /// Unix milliseconds of `now`.
    pub fn unix_ms(&self, now: Millis) -> i64 {
        i64::try_from(now.0)
            .unwrap_or(i64::MAX)
            .saturating_add(self.unix_offset)
    }

    /// `{"status": true, "id": ...}` to the sender. It is queued now, in
    /// the order of the frames, and written after the turn's commit.
    pub(super) fn ack(&mut self, conn: ConnId, id: i64, out: &mut impl Outbox) {
        self.stats.acks_ok += 1;
        let json = ServerFrame::AckOk { status: true, id }.to_json();
        out.reply(conn, &json);
        if id > self.stored_id {
            // The ack of a stored message (a resend) holds whatever the
            // commit does.
            self.unconfirmed.push(conn);
        }
    }

    /// The turn is over, and its commit `stored` its messages or not.
    /// Returns the sockets sent a success ack for a message of the turn.
    ///
    /// The caller commits the turn's batch before writing any output. If
    /// the commit failed, it drops these sockets with their queued output
    /// and takes the turn's broadcasts back out of every queue, so nothing
    /// of an unstored message ever leaves the server; here its `client_id`s
    /// are forgotten, so the client's resend (after reconnecting) is a new
    /// message, not the ack of one that does not exist. Its id is not
    /// handed out again by this process (`last_id` stays): see the README
    /// on ids after a failed commit.
    pub fn end_turn(&mut self, stored: bool) -> Vec<ConnId> {
        if stored {
            self.stored_id = self.last_id;
        } else {
            let stored_id = self.stored_id;
            self.recent.retain(|_, id| *id <= stored_id);
        }
        std::mem::take(&mut self.unconfirmed)
    }
}
