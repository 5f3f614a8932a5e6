//! The chat's [`Outbox`] over the server's outlets: a broadcast is framed
//! once and every recipient's queue takes a reference to the same bytes.

use super::outlet::{Accepts, OP_TEXT, Outlet, ws_frame, ws_frame_into};
use super::sse::SharedEvent;
use crate::chat::Outbox;
use crate::ids::ConnId;
use std::rc::Rc;

/// Mutable access to every connection's outlet, and the list of outlets to
/// flush before the loop sleeps.
pub struct Fanout<'a> {
    /// Outlets by slot.
    pub outlets: &'a mut [Outlet],
    /// The generation living in each slot; a `ConnId` of another
    /// generation is stale and gets nothing.
    pub generations: &'a [u32],
    /// Slots whose outlet has something new to flush.
    pub dirty: &'a mut Vec<usize>,
    /// The frames of this turn's events (one reference per event, not per
    /// recipient), for taking them back should the turn's commit fail.
    pub events: &'a mut Vec<Rc<[u8]>>,
}

impl Fanout<'_> {
    /// The outlet of `id`, marked for flushing; `None` when `id` is stale.
    pub fn outlet(&mut self, id: ConnId) -> Option<&mut Outlet> {
        let slot = id.slot();
        if self.generations.get(slot) != Some(&id.generation()) {
            return None;
        }
        let outlet = &mut self.outlets[slot];
        if !outlet.dirty {
            outlet.dirty = true;
            self.dirty.push(slot);
        }
        Some(outlet)
    }
}

impl Fanout<'_> {
    /// Queues one shared frame for every live connection of `to`.
    fn push_all(&mut self, to: impl Iterator<Item = ConnId>, frame: &Rc<[u8]>) {
        for id in to {
            if let Some(outlet) = self.outlet(id) {
                outlet.push_frame(frame);
            }
        }
    }
}

impl Outbox for Fanout<'_> {
    fn deliver(&mut self, to: impl Iterator<Item = ConnId>, json: &[u8]) {
        self.push_all(to, &ws_frame(OP_TEXT, json).into());
    }

    /// An event goes to sockets and streams alike: the sockets share one
    /// frame, the streams one SSE form, built only if a stream is among
    /// the recipients.
    fn deliver_event(&mut self, to: impl Iterator<Item = ConnId>, json: &[u8]) {
        let frame: Rc<[u8]> = ws_frame(OP_TEXT, json).into();
        let mut sse = SharedEvent::new(json);
        for id in to {
            if let Some(outlet) = self.outlet(id) {
                match outlet.accepts {
                    Accepts::Events(framing) => outlet.push_event(sse.get(framing)),
                    _ => outlet.push_frame(&frame),
                }
            }
        }
        self.events.push(frame);
        self.events.extend(sse.built());
    }

    /// The batch is framed once into one buffer, and each recipient's
    /// queue takes one reference to it: a mass disconnect costs every
    /// survivor one chunk per turn, not one per `leave`.
    fn deliver_batch(&mut self, to: impl Iterator<Item = ConnId>, jsons: &[Vec<u8>]) {
        let mut bytes = Vec::with_capacity(jsons.iter().map(|j| j.len() + 10).sum());
        for json in jsons {
            ws_frame_into(OP_TEXT, json, &mut bytes);
        }
        let batch: Rc<[u8]> = bytes.into();
        for id in to {
            if let Some(outlet) = self.outlet(id) {
                outlet.push_frame(&batch);
            }
        }
    }

    fn reply(&mut self, conn: ConnId, json: &[u8]) {
        if let Some(outlet) = self.outlet(conn) {
            outlet.push_frame(&ws_frame(OP_TEXT, json).into());
            outlet.urgent = true;
        }
    }

    fn close(&mut self, conn: ConnId, code: u16, reason: &'static str) {
        if let Some(outlet) = self.outlet(conn)
            && matches!(outlet.accepts, Accepts::Frames | Accepts::Events(_))
        {
            // No data frame (or event) may follow the close frame (or the
            // end of the body) the loop writes.
            outlet.accepts = Accepts::Closing;
            outlet.close_request = Some((code, reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_outlets(n: usize) -> Vec<Outlet> {
        (0..n)
            .map(|_| Outlet::new(1 << 20, Accepts::Frames))
            .collect()
    }

    #[test]
    fn replies_are_urgent_and_broadcasts_are_not() {
        let mut outlets = chat_outlets(3);
        let generations = [0, 0, 0];
        let mut dirty = Vec::new();
        let mut events = Vec::new();
        let mut fan = Fanout {
            outlets: &mut outlets,
            generations: &generations,
            dirty: &mut dirty,
            events: &mut events,
        };
        fan.deliver([ConnId::new(1, 0), ConnId::new(2, 0)].into_iter(), b"{}");
        fan.reply(ConnId::new(0, 0), br#"{"status":true}"#);
        // A stale id reaches nobody.
        fan.reply(ConnId::new(2, 7), b"{}");
        assert_eq!(dirty, [1, 2, 0]);
        let urgent: Vec<bool> = outlets.iter().map(|o| o.urgent).collect();
        assert_eq!(urgent, [true, false, false]);
        assert!(outlets.iter().all(|o| !o.is_empty()));
    }

    /// Issue 11, defect 4: 90 of 100 chat sockets close in one turn. The
    /// ones closing get no `leave` at all, and each survivor's queue takes
    /// the turn's 90 leaves as one chunk (it took 90 chunks, and the
    /// closing ones up to 89 each: n²/2 in all).
    #[test]
    fn a_mass_disconnect_queues_one_chunk_per_survivor() {
        use crate::chat::{Chat, ChatConfig, SessionKey};
        use crate::ids::{Millis, UserId};
        let cfg = ChatConfig::from_config(&crate::config::Config::default());
        let mut chat = Chat::new(cfg, Millis(0), 0);
        let mut outlets = chat_outlets(100);
        let generations = [0; 100];
        let mut dirty = Vec::new();
        let mut events = Vec::new();
        let mut fan = Fanout {
            outlets: &mut outlets,
            generations: &generations,
            dirty: &mut dirty,
            events: &mut events,
        };
        for slot in 0..100 {
            let key = SessionKey::of(&format!("{slot:032}"));
            chat.login(
                key.clone(),
                UserId(slot as i64),
                &format!("u{slot}"),
                Millis(0),
            );
            chat.ws_open(ConnId::new(slot, 0), &key, Millis(0));
        }
        chat.flush_presence(&mut fan);
        for o in fan.outlets.iter_mut() {
            o.clear();
        }
        for slot in 0..90 {
            chat.ws_closed(ConnId::new(slot, 0), Millis(1));
        }
        chat.flush_presence(&mut fan);
        let leave = |c: usize| {
            ws_frame(
                OP_TEXT,
                format!(r#"{{"event":"leave","username":"u{c}"}}"#).as_bytes(),
            )
        };
        let batch: usize = (0..90).map(|c| leave(c).len()).sum();
        for (slot, o) in outlets.iter().enumerate() {
            let want = if slot < 90 { (0, 0) } else { (1, batch) };
            assert_eq!((o.chunk_count(), o.queued()), want, "slot {slot}");
        }
        let mut got = Vec::new();
        outlets[95].write_to(&mut got).unwrap();
        assert_eq!(got, (0..90).flat_map(leave).collect::<Vec<u8>>());
    }

    #[test]
    fn own_responses_are_urgent() {
        let mut o = Outlet::new(1 << 20, Accepts::Http);
        assert!(!o.urgent);
        o.push_copy(b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
        assert!(o.urgent);
        let mut o = Outlet::new(1 << 20, Accepts::Frames);
        o.push_owned(vec![0; 4096]);
        assert!(o.urgent);
    }
}
