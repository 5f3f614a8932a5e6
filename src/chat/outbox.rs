//! Where the chat's output goes: the one interface between the sans-IO
//! chat and whatever carries its frames (the server's sockets, a test's
//! recorder, the fuzzers' models).

use crate::ids::ConnId;

/// Where the chat's output goes.
pub trait Outbox {
    /// Queue `json` as one text frame for each connection of `to`. The
    /// bytes are the same for every recipient, so serialize and frame them
    /// once.
    fn deliver(&mut self, to: impl Iterator<Item = ConnId>, json: &[u8]);
    /// Like [`Outbox::deliver`], for an event that is stored in the turn's
    /// batch (a chat message): should the turn's commit fail, the server
    /// takes these frames back out of every queue before any is written.
    fn deliver_event(&mut self, to: impl Iterator<Item = ConnId>, json: &[u8]) {
        self.deliver(to, json);
    }
    /// Queue `json` as a text frame for `conn` alone, in answer to a frame
    /// it sent (an ack). The same as a delivery to one connection, except
    /// that the server may write it before the turn's broadcasts.
    fn reply(&mut self, conn: ConnId, json: &[u8]) {
        self.deliver(std::iter::once(conn), json);
    }
    /// Queue every one of `jsons`, in order, as text frames for each
    /// connection of `to`: the same as one [`Outbox::deliver`] per json,
    /// except that the server may queue the whole batch as one shared
    /// chunk per recipient (the `leave`s of a mass disconnect).
    fn deliver_batch(&mut self, to: impl Iterator<Item = ConnId>, jsons: &[Vec<u8>]) {
        let to: Vec<ConnId> = to.collect();
        for json in jsons {
            self.deliver(to.iter().copied(), json);
        }
    }
    /// Close the WebSocket of `conn` with this close code and reason.
    fn close(&mut self, conn: ConnId, code: u16, reason: &'static str);
}
