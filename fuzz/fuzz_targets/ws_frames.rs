//! Arbitrary bytes as a client's byte stream into the server-role
//! tungstenite reader configured as `src/server/ws.rs` configures it, over
//! an in-memory stream handed over in chunks.
//!
//! Properties: never panics; the messages handed up are exactly those of
//! an independent RFC 6455 reading of the bytes (`ws_model`), none over the
//! limit; a violation ends the stream with the close code the reference
//! expects, as the server maps the error (1002, 1007, 1009), and the close
//! frame the server then writes carries it; a client's close frame is
//! answered with its code; and the memory held while reading stays under
//! a bound set by the limits, however long the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use piratchat_fuzz::Counting;
use piratchat_fuzz::ws_model::{
    CHAT_LIMIT, Chunked, Duplex, End, Msg, close_code_for, expect, server_context, server_frames,
};
use tungstenite::Message;
use tungstenite::error::Error as WsError;
use tungstenite::protocol::frame::{CloseFrame, coding::CloseCode};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Memory the reader may hold at once beyond what was live before it
/// started: its read buffer, one frame, one message being assembled and
/// one handed up, each at most the limit, with room for `Vec` doubling.
const MEMORY_BOUND: usize = 2 * 1024 + 8 * CHAT_LIMIT + 16 * 1024;

/// Longest stream a run builds (the input may ask to repeat its body).
const MAX_STREAM: usize = 512 * 1024;

fuzz_target!(|data: &[u8]| {
    let [chunk, leftover, repeat, rest @ ..] = data else {
        return;
    };
    // A small input can stand for a long stream: its body repeated, so the
    // memory bound is tested on streams far longer than the bound.
    let times = usize::from(*repeat % 64) + 1;
    let mut stream = Vec::with_capacity((rest.len() * times).min(MAX_STREAM));
    for _ in 0..times {
        if stream.len() + rest.len() > MAX_STREAM {
            break;
        }
        stream.extend_from_slice(rest);
    }
    let (want_msgs, want_end) = expect(&stream, CHAT_LIMIT);
    // Bytes that arrived with the upgrade request go in up front.
    let split = usize::from(*leftover).min(stream.len());
    let early = stream[..split].to_vec();
    let mut input = Chunked::new(stream[split..].to_vec(), usize::from(*chunk) * 16 + 1);
    let mut output = Vec::new();

    Counting::reset_peak();
    let base = Counting::live();
    let mut ctx = server_context(CHAT_LIMIT, early);
    // Compared as they come: keeping them would count as the reader's memory.
    let mut got = 0;
    let mut io = Duplex {
        input: &mut input,
        output: &mut output,
    };
    let end = loop {
        match ctx.read(&mut io) {
            Ok(Message::Close(frame)) => {
                break End::Close(frame.map(|f| u16::from(f.code)));
            }
            Ok(msg) => {
                // Only the last frames written matter; the pongs before
                // them would count as the reader's memory.
                io.output.clear();
                let msg = model_msg(msg);
                assert_eq!(Some(&msg), want_msgs.get(got), "message {got}");
                got += 1;
            }
            Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if !io.input.release() {
                    io.input.eof();
                }
            }
            Err(e) => {
                break match close_code_for(&e) {
                    Some(code) => End::Fail(code),
                    None => End::More,
                };
            }
        }
        assert!(
            Counting::peak() - base <= MEMORY_BOUND,
            "reader holds {} bytes",
            Counting::peak() - base
        );
    };
    assert_eq!(got, want_msgs.len(), "messages handed up");
    match (&end, &want_end) {
        (End::Close(_), End::Close(code)) => {
            // The reply tungstenite queued: the client's code echoed, 1002
            // for a code no one may send, empty for an empty close.
            let _ = ctx.flush(&mut io);
            let last = last_frame(&output);
            assert_eq!(last.opcode, 8, "no close reply");
            assert_eq!(last.close_code(), *code, "close reply");
        }
        (End::Fail(code), End::Fail(want)) => {
            assert_eq!(code, want, "close code");
            // What `fail` in src/server/ws.rs does next.
            let frame = CloseFrame {
                code: CloseCode::from(*code),
                reason: "x".into(),
            };
            let _ = ctx.close(&mut io, Some(frame));
            let _ = ctx.flush(&mut io);
            let last = last_frame(&output);
            assert_eq!(
                (last.opcode, last.close_code()),
                (8, Some(*code)),
                "close frame"
            );
        }
        (End::More, End::More) => {}
        (end, want) => panic!("stream ended as {end:?}, reference says {want:?}"),
    }
});

fn model_msg(msg: Message) -> Msg {
    match msg {
        Message::Text(t) => {
            assert!(t.len() <= CHAT_LIMIT);
            Msg::Text(t.as_str().to_owned())
        }
        Message::Binary(b) => {
            assert!(b.len() <= CHAT_LIMIT);
            Msg::Binary(b.to_vec())
        }
        Message::Ping(p) => Msg::Ping(p.to_vec()),
        Message::Pong(p) => Msg::Pong(p.to_vec()),
        other => panic!("unexpected {other:?}"),
    }
}

fn last_frame(output: &[u8]) -> piratchat_fuzz::ws_model::ServerFrame {
    let frames = server_frames(output).expect("the server writes clean frames");
    frames.last().cloned().expect("a frame was written")
}
