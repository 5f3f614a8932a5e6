//! Client-side WebSocket framing (RFC 6455 §5), sans-IO: a push parser for
//! the server's frames and an encoder for our masked frames.
//!
//! Why not tungstenite's `WebSocket` for reading: profiled at 5 M
//! deliveries/s, its generic reader (frame codec, `BytesMut` splits,
//! zero-filling the read buffer before every `read`) took a third of the
//! bench's CPU and made the bench, not the server, the bottleneck. The bench
//! only needs unmasked frames from a server parsed in place, which this does
//! without copies. tungstenite still supplies the handshake key helpers.

use std::ops::Range;

/// Continuation frame.
pub const OP_CONT: u8 = 0x0;
/// Text frame.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame.
pub const OP_PING: u8 = 0x9;
/// Pong frame.
pub const OP_PONG: u8 = 0xA;

/// One parsed frame: where its payload lies in the parsed buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Final fragment of a message.
    pub fin: bool,
    /// One of the `OP_*` codes.
    pub opcode: u8,
    /// Payload bytes within the buffer given to `parse`; the frame ends at
    /// `payload.end`.
    pub payload: Range<usize>,
}

/// A frame the client must refuse; the bench fails that socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A server frame with the mask bit set (§5.1 forbids it).
    Masked,
    /// RSV bits set without a negotiated extension.
    Reserved,
    /// An opcode RFC 6455 does not define.
    Opcode(u8),
    /// A control frame that is fragmented or longer than 125 bytes.
    BadControl,
    /// Payload longer than the bench accepts.
    TooLarge(u64),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Masked => f.write_str("masked frame from the server"),
            FrameError::Reserved => f.write_str("reserved bits set"),
            FrameError::Opcode(op) => write!(f, "unknown opcode {op:#x}"),
            FrameError::BadControl => f.write_str("fragmented or oversized control frame"),
            FrameError::TooLarge(n) => write!(f, "frame of {n} bytes is too large"),
        }
    }
}

/// Parses the frame at the front of `buf`: `Ok(None)` until all of it is
/// there (nothing consumed), then its `Head`.
pub fn parse(buf: &[u8], max_payload: usize) -> Result<Option<Head>, FrameError> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0F);
    if b0 & 0x70 != 0 {
        return Err(FrameError::Reserved);
    }
    if b1 & 0x80 != 0 {
        return Err(FrameError::Masked);
    }
    match opcode {
        OP_CONT | OP_TEXT | OP_BINARY => {}
        OP_CLOSE | OP_PING | OP_PONG if fin && b1 & 0x7F <= 125 => {}
        OP_CLOSE | OP_PING | OP_PONG => return Err(FrameError::BadControl),
        op => return Err(FrameError::Opcode(op)),
    }
    let (len, start) = match b1 & 0x7F {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap_or_default()),
            10,
        ),
        126 | 127 => return Ok(None),
        n => (u64::from(n), 2),
    };
    if len > max_payload as u64 {
        return Err(FrameError::TooLarge(len));
    }
    let end = start + len as usize;
    Ok((buf.len() >= end).then_some(Head {
        fin,
        opcode,
        payload: start..end,
    }))
}

/// Appends a final, masked client frame to `out`.
pub fn encode(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// Masking keys. RFC 6455 wants them unpredictable to stop cache poisoning
/// through proxies that misread frames; a bench talking straight to a server
/// only needs them varied, so a xorshift seeded from the OS is enough and
/// saves a `getrandom` syscall per frame.
pub struct Masker(u64);

impl Masker {
    /// A generator seeded from the OS.
    pub fn new() -> Self {
        let mut seed = [0u8; 8];
        // A fixed seed still yields valid (just predictable) masks.
        let _ = getrandom::fill(&mut seed);
        Self(u64::from_le_bytes(seed) | 1)
    }

    /// The next key.
    pub fn next_key(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x as u32).to_le_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unmasked server frame.
    fn server_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![b0];
        match payload.len() {
            n @ 0..=125 => f.push(n as u8),
            n @ 126..=0xFFFF => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn every_prefix_is_partial_for_each_length_form() {
        for len in [0usize, 5, 125, 126, 300, 65_535, 65_536] {
            let payload = vec![b'a'; len];
            let frame = server_frame(0x81, &payload);
            for n in 0..frame.len() {
                assert_eq!(
                    parse(&frame[..n], 1 << 20),
                    Ok(None),
                    "len {len} prefix {n}"
                );
            }
            let mut two = frame.clone();
            two.extend_from_slice(&[0x8A, 0]);
            let head = parse(&two, 1 << 20).unwrap().unwrap();
            assert_eq!(
                head,
                Head {
                    fin: true,
                    opcode: OP_TEXT,
                    payload: frame.len() - len..frame.len()
                }
            );
        }
    }

    #[test]
    fn table_of_bad_frames() {
        let table: &[(&[u8], FrameError)] = &[
            (&[0x81, 0x80, 0, 0, 0, 0], FrameError::Masked),
            (&[0xC1, 0x00], FrameError::Reserved),
            (&[0x83, 0x00], FrameError::Opcode(3)),
            (&[0x09, 0x00], FrameError::BadControl),
            (&[0x89, 126, 0, 126], FrameError::BadControl),
            (
                &[0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0],
                FrameError::TooLarge(1 << 32),
            ),
        ];
        for (raw, want) in table {
            assert_eq!(parse(raw, 1 << 20), Err(*want), "{raw:?}");
        }
        assert!(!parse(&[0x01, 0x01, b'a'], 16).unwrap().unwrap().fin);
    }

    #[test]
    fn encoded_frames_unmask_to_the_payload() {
        let mut m = Masker::new();
        for len in [0usize, 100, 125, 126, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = Vec::new();
            let key = m.next_key();
            encode(&mut out, OP_TEXT, &payload, key);
            let head_len = out.len() - len - 4;
            assert_eq!(out[0], 0x81);
            assert_eq!(out[1] & 0x80, 0x80, "client frames are masked");
            // Unmasked and with the mask bit cleared, it parses as a server frame.
            let mut plain = out[..head_len].to_vec();
            plain[1] &= 0x7F;
            plain.extend(
                out[head_len + 4..]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ key[i & 3]),
            );
            let head = parse(&plain, 1 << 20).unwrap().unwrap();
            assert_eq!(&plain[head.payload], &payload[..]);
        }
        assert_ne!(m.next_key(), m.next_key());
    }
}
