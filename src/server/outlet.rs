//! The output side of one connection: a bounded queue of byte chunks,
//! shared (`Rc`) for broadcast frames so a message serialized once is never
//! copied per recipient, and written with one vectored write.

use super::sse::Framing;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

/// Most chunks handed to one `writev`.
const MAX_IOVECS: usize = 64;

/// Small owned writes are appended to the last owned chunk up to this size,
/// so a burst of small frames does not become a burst of tiny chunks.
const COALESCE_LIMIT: usize = 16 * 1024;

/// Queue slots an empty outlet keeps. A burst (a mass disconnect, a join
/// storm, a slow reader catching up) grows the queue; once drained, a
/// larger one is given back, so that the memory of a burst does not stay
/// with every socket that saw it.
const KEEP_CHUNKS: usize = 64;

/// What the connection behind an outlet accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// No connection (free slot) or one that is gone: drop everything.
    Nothing,
    /// HTTP responses only (chat frames are never addressed to it).
    Http,
    /// An open WebSocket: data frames welcome.
    Frames,
    /// An open event stream: events welcome, in its framing.
    Events(Framing),
    /// A WebSocket whose close frame is queued, or a stream whose body
    /// has ended: nothing more after it.
    Closing,
}

#[derive(Debug)]
enum Chunk {
    Owned(Vec<u8>),
    Shared(Rc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(r) => r,
        }
    }
}

/// One connection's queued output and the flags the loop acts on before
/// sleeping.
#[derive(Debug)]
pub struct Outlet {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    front_written: usize,
    queued: usize,
    limit: usize,
    /// What may be queued.
    pub accepts: Accepts,
    /// Over its limit: the connection is a slow consumer and is dropped.
    pub overflow: bool,
    /// On the loop's list of outlets to flush this turn.
    pub dirty: bool,
    /// Holds a response of this connection's own (an HTTP response, the
    /// 101, a control frame), not only broadcasts: flushed first.
    pub urgent: bool,
    /// A close frame the chat asked for (logout), applied by the loop.
    pub close_request: Option<(u16, &'static str)>,
}

impl Outlet {
    /// An empty outlet that holds at most `limit` bytes.
    pub fn new(limit: usize, accepts: Accepts) -> Outlet {
        Outlet {
            chunks: VecDeque::new(),
            front_written: 0,
            queued: 0,
            limit,
            accepts,
            overflow: false,
            dirty: false,
            urgent: false,
            close_request: None,
        }
    }

    /// Bytes waiting to be written.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Chunks waiting: a shared frame or batch is one, however many
    /// frames it holds.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Changes the byte limit (an `/echo` socket needs room for 16 MiB
    /// messages).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Queues a copy of `bytes` (HTTP responses, control frames): anything
    /// but a data frame, so also after a close frame was queued.
    pub fn push_copy(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.accepts == Accepts::Nothing {
            return;
        }
        match self.chunks.back_mut() {
            Some(Chunk::Owned(v)) if v.len() + bytes.len() <= COALESCE_LIMIT => {
                v.extend_from_slice(bytes)
            }
            _ => self.chunks.push_back(Chunk::Owned(bytes.to_vec())),
        }
        self.urgent = true;
        self.grew(bytes.len());
    }

    /// Queues an owned buffer without copying it.
    pub fn push_owned(&mut self, bytes: Vec<u8>) {
        if bytes.len() <= 256 {
            return self.push_copy(&bytes);
        }
        if self.accepts == Accepts::Nothing {
            return;
        }
        let n = bytes.len();
        self.chunks.push_back(Chunk::Owned(bytes));
        self.urgent = true;
        self.grew(n);
    }

    /// Queues a shared frame (a broadcast): a reference count, no copy.
    /// Dropped unless the outlet takes data frames.
    pub fn push_frame(&mut self, frame: &Rc<[u8]>) {
        if self.accepts != Accepts::Frames || self.overflow {
            return;
        }
        self.chunks.push_back(Chunk::Shared(frame.clone()));
        self.grew(frame.len());
    }

    /// Queues a shared event in its SSE form (see `sse::SharedEvent`).
    /// Dropped unless the outlet is an open event stream.
    pub fn push_event(&mut self, event: &Rc<[u8]>) {
        if !matches!(self.accepts, Accepts::Events(_)) || self.overflow {
            return;
        }
        self.chunks.push_back(Chunk::Shared(event.clone()));
        self.grew(event.len());
    }

    /// Queues a response that stands only if the turn's commit succeeds
    /// (a 201 with a key, a login's cookie): shared, so that the loop can
    /// find it again and swap it for its 503 should the commit fail.
    pub fn push_held(&mut self, response: &Rc<[u8]>) {
        if response.is_empty() || self.accepts == Accepts::Nothing {
            return;
        }
        self.chunks.push_back(Chunk::Shared(response.clone()));
        self.urgent = true;
        self.grew(response.len());
    }

    /// Takes back every queued shared chunk `unstored` picks (the
    /// broadcasts of a turn whose commit failed). Nothing of the turn has
    /// been written yet, since output is written after the commit; a
    /// partly written front chunk is an older turn's and stays.
    pub fn retract(&mut self, unstored: impl Fn(&Rc<[u8]>) -> bool) {
        let keep_front = usize::from(self.front_written > 0);
        let (mut index, mut removed) = (0, 0);
        self.chunks.retain(|chunk| {
            let take = index >= keep_front && matches!(chunk, Chunk::Shared(r) if unstored(r));
            index += 1;
            if take {
                removed += chunk.bytes().len();
            }
            !take
        });
        self.queued -= removed;
    }

    /// Swaps the queued shared chunk `held` (see [`Outlet::push_held`])
    /// for `bytes`; false when it is not queued (the connection was
    /// dropped, or overflowed).
    pub fn replace(&mut self, held: &Rc<[u8]>, bytes: Vec<u8>) -> bool {
        let found = self
            .chunks
            .iter_mut()
            .find(|c| matches!(c, Chunk::Shared(r) if Rc::ptr_eq(r, held)));
        let Some(chunk) = found else {
            return false;
        };
        self.queued = self.queued - held.len() + bytes.len();
        *chunk = Chunk::Owned(bytes);
        true
    }

    fn grew(&mut self, n: usize) {
        self.queued += n;
        if self.queued > self.limit {
            // Past the limit the connection is dropped as a slow consumer;
            // what is queued will never be sent, so free it now.
            self.overflow = true;
            self.clear();
        }
    }

    /// Drops everything queued.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.front_written = 0;
        self.queued = 0;
        self.release();
    }

    /// Gives back the memory of a drained queue that a burst grew.
    fn release(&mut self) {
        if self.chunks.is_empty() && self.chunks.capacity() > KEEP_CHUNKS {
            self.chunks = VecDeque::new();
        }
    }

    /// Writes as much as `w` takes in vectored writes until the queue is
    /// empty or the writer would block. Returns the bytes written.
    pub fn write_to(&mut self, w: &mut impl Write) -> io::Result<usize> {
        let mut total = 0;
        while self.queued > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut n = 0;
            for (i, chunk) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
                let skip = if i == 0 { self.front_written } else { 0 };
                slices[i] = IoSlice::new(&chunk.bytes()[skip..]);
                n += 1;
            }
            let offered: usize = slices[..n].iter().map(|s| s.len()).sum();
            let written = match w.write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.consume(written);
            total += written;
            if written < offered {
                // The socket buffer is full: wait for writability.
                return Ok(total);
            }
        }
        Ok(total)
    }

    fn consume(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let front = self.chunks.front().expect("consumed bytes were queued");
            let left = front.bytes().len() - self.front_written;
            if n < left {
                self.front_written += n;
                return;
            }
            n -= left;
            self.front_written = 0;
            self.chunks.pop_front();
        }
        if self.chunks.is_empty() {
            self.front_written = 0;
            self.release();
        }
    }
}

/// A WebSocket frame as the server sends it (FIN set, never masked): the
/// header for a payload of `len` bytes with `opcode`, then the payload.
pub fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 10);
    ws_frame_into(opcode, payload, &mut f);
    f
}

/// Appends the frame [`ws_frame`] makes to `f`.
pub fn ws_frame_into(opcode: u8, payload: &[u8], f: &mut Vec<u8>) {
    let len = payload.len();
    f.push(0x80 | opcode);
    if len < 126 {
        f.push(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        f.push(126);
        f.extend_from_slice(&short.to_be_bytes());
    } else {
        f.push(127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    f.extend_from_slice(payload);
}

/// Opcode of a text frame.
pub const OP_TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub const OP_BINARY: u8 = 0x2;

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `cap` bytes per call, then blocks once.
    struct Trickle {
        got: Vec<u8>,
        cap: usize,
        block_next: bool,
    }

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if std::mem::take(&mut self.block_next) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = b.len().min(self.cap);
            self.got.extend_from_slice(&b[..n]);
            self.block_next = true;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_order_and_count() {
        let mut o = Outlet::new(1 << 20, Accepts::Frames);
        let shared: Rc<[u8]> = Rc::from(&b"SHARED"[..]);
        o.push_copy(b"ab");
        o.push_frame(&shared);
        o.push_copy(b"cd");
        o.push_owned(vec![b'x'; 300]);
        let mut w = Trickle {
            got: Vec::new(),
            cap: 3,
            block_next: false,
        };
        let mut rounds = 0;
        while !o.is_empty() {
            o.write_to(&mut w).unwrap();
            rounds += 1;
            assert!(rounds < 1000);
        }
        let mut want = b"abSHAREDcd".to_vec();
        want.extend_from_slice(&[b'x'; 300]);
        assert_eq!(w.got, want);
    }

    #[test]
    fn overflow_drops_everything_and_refuses_more() {
        let mut o = Outlet::new(10, Accepts::Frames);
        let frame: Rc<[u8]> = Rc::from(&[0u8; 6][..]);
        o.push_frame(&frame);
        assert!(!o.overflow);
        o.push_frame(&frame);
        assert!(o.overflow);
        assert_eq!(o.queued(), 0);
        o.push_frame(&frame);
        assert_eq!(o.queued(), 0);
    }

    #[test]
    fn frames_only_to_open_websockets() {
        let frame: Rc<[u8]> = Rc::from(&b"x"[..]);
        for (accepts, queued) in [
            (Accepts::Nothing, 0),
            (Accepts::Http, 0),
            (Accepts::Frames, 1),
            (Accepts::Events(Framing::Chunked), 0),
            (Accepts::Closing, 0),
        ] {
            let mut o = Outlet::new(100, accepts);
            o.push_frame(&frame);
            assert_eq!(o.queued(), queued, "{accepts:?}");
        }
    }

    /// Issue 11, defect 4: a queue a burst grew kept its capacity after it
    /// was written or dropped, on every socket that saw the burst.
    #[test]
    fn a_drained_queue_gives_its_memory_back() {
        let frame: Rc<[u8]> = Rc::from(&b"leave"[..]);
        let mut o = Outlet::new(1 << 20, Accepts::Frames);
        for _ in 0..10_000 {
            o.push_frame(&frame);
        }
        assert!(o.chunks.capacity() >= 10_000);
        let mut sink = Vec::new();
        o.write_to(&mut sink).unwrap();
        assert_eq!(sink.len(), 50_000);
        assert!(o.chunks.capacity() <= KEEP_CHUNKS, "written");
        for _ in 0..10_000 {
            o.push_frame(&frame);
        }
        o.clear();
        assert!(o.chunks.capacity() <= KEEP_CHUNKS, "dropped");
        // A small queue keeps its slots: no allocation per turn.
        for _ in 0..KEEP_CHUNKS {
            o.push_frame(&frame);
        }
        let kept = o.chunks.capacity();
        o.write_to(&mut sink).unwrap();
        assert_eq!(o.chunks.capacity(), kept);
    }

    #[test]
    fn retract_takes_only_the_picked_unwritten_frames() {
        let mut o = Outlet::new(1 << 20, Accepts::Frames);
        let frame = |b: &[u8]| -> Rc<[u8]> { Rc::from(b) };
        let (old, new, other) = (frame(b"OLD"), frame(b"NEW"), frame(b"KEEP"));
        o.push_frame(&new);
        let mut w = Trickle {
            got: Vec::new(),
            cap: 1,
            block_next: false,
        };
        o.write_to(&mut w).unwrap();
        assert_eq!(w.got, b"N", "the front chunk is partly written");
        o.push_frame(&old);
        o.push_frame(&other);
        o.push_frame(&new);
        o.push_copy(b"ack");
        o.retract(|r| Rc::ptr_eq(r, &new) || Rc::ptr_eq(r, &old));
        assert_eq!(o.queued(), 2 + 4 + 3);
        while !o.is_empty() {
            o.write_to(&mut w).unwrap();
        }
        assert_eq!(w.got, b"NEWKEEPack");
    }

    #[test]
    fn a_held_response_can_be_swapped() {
        let mut o = Outlet::new(1 << 20, Accepts::Http);
        let held: Rc<[u8]> = Rc::from(&b"201"[..]);
        o.push_copy(b"first ");
        o.push_held(&held);
        o.push_copy(b" next");
        assert!(o.urgent);
        assert!(o.replace(&held, b"503 sorry".to_vec()));
        assert!(!o.replace(&Rc::from(&b"201"[..]), Vec::new()), "another Rc");
        let mut got = Vec::new();
        o.write_to(&mut got).unwrap();
        assert_eq!(got, b"first 503 sorry next");
        assert!(o.is_empty());
    }

    #[test]
    fn frame_header_lengths() {
        assert_eq!(ws_frame(OP_TEXT, b"hi"), [0x81, 2, b'h', b'i']);
        let f = ws_frame(OP_BINARY, &[0; 126]);
        assert_eq!(&f[..4], [0x82, 126, 0, 126]);
        let f = ws_frame(OP_TEXT, &[0; 70_000]);
        assert_eq!(&f[..10], [0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }
}
