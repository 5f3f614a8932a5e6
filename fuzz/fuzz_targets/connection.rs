//! Arbitrary client bytes through the whole request path (HTTP → upgrade →
//! WebSocket frames) of the real connection code, over an in-memory socket
//! with an in-memory database, driven turn by turn like the server's loop
//! (see `conn_driver`).
//!
//! Input: a flags byte (echo endpoint, peer address, slow reader, time per
//! turn, and "upgrade first"), a chunk-size byte, a failing-commit byte (0:
//! none; else the turn at which the store refuses a commit, and whether
//! the disk stays full from then on), then the client's bytes.
//! With "upgrade first" the harness sends a valid upgrade request ahead of
//! them, so the rest is a WebSocket stream from the first byte.
//!
//! Properties: never panics; the wheel, chat and gauge invariants hold
//! after every turn; nothing is written after our FIN; output stays within
//! the outlet limit and is bounded by the input; a 101 only answers a
//! request carrying a live session (or `/echo` when it is served), and the
//! socket is then in the online list; the connection ends once the input
//! has ended and its timers have run, and then nobody is online for it;
//! bob sees alice `join` at most once and `leave` exactly as often; nothing
//! of a message whose commit failed is ever written to any socket (checked
//! by `run`), nor stored, and with the disk full from the first turn no
//! 201 and no session cookie goes out. With
//! "upgrade first", the server's answers match the reference reading of
//! the stream: one ack per chat message (the echo for `/echo`), and a
//! violation answered with a close frame with the right code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use piratchat::server::ConnKind;
use piratchat_fuzz::conn_driver::{ALICE_TOKEN, Setup, run, upgrade_request};
use piratchat_fuzz::ws_model::{CHAT_LIMIT, ECHO_LIMIT, End, Msg, expect, server_frames};

fuzz_target!(|data: &[u8]| {
    let [flags, chunk, refuse, rest @ ..] = data else {
        return;
    };
    let setup = Setup::from_bytes(*flags, *chunk).with_refusal(*refuse);
    let upgrade_first = flags & 4 != 0;
    let mut input = Vec::new();
    if upgrade_first {
        input = upgrade_request(setup.echo);
    }
    let head_len = input.len();
    input.extend_from_slice(rest);
    let d = run(input.clone(), setup);

    let written = d.written();
    // Bounded output: a response per request is at most a few KiB
    // (`/metrics` is the largest), and a WebSocket answers each frame (at
    // least 6 bytes from the client) with at most an ack or an echo.
    let requests = 1 + count(&input, b"\r\n\r\n") + count(&input, b"\n\n");
    assert!(
        written.len() <= 8 * 1024 * requests + 2 * input.len() + 1024,
        "{} bytes out for {} in",
        written.len(),
        input.len()
    );
    let joins = count_presence(&d.bob_got, "join");
    let leaves = count_presence(&d.bob_got, "leave");
    assert!(joins <= 1, "alice joined {joins} times");
    assert_eq!(joins, leaves, "joins and leaves");

    let Some(pos) = find(written, b"HTTP/1.1 101 ") else {
        // A slow reader may not have taken the whole 101 before the end.
        if setup.room != usize::MAX {
            return;
        }
        if d.refused > 0 {
            // A failed commit drops a socket acked for an unstored message
            // with everything it has queued, the 101 too when the message
            // came in the turn of the upgrade (the real turn serves what
            // follows the upgrade in that same turn).
            return;
        }
        assert!(d.upgraded.is_none(), "upgraded without a 101");
        assert_eq!(joins, 0);
        return;
    };
    match d.upgraded {
        Some(ConnKind::Chat) => {
            let sent = &input[..d.upgraded_after];
            assert!(
                find(sent, ALICE_TOKEN.as_bytes()).is_some(),
                "101 without the session"
            );
            assert_eq!(joins, 1, "chat socket without a join");
        }
        Some(ConnKind::Echo) => assert!(setup.echo, "/echo upgraded while off"),
        other => panic!("101 but the connection is {other:?}"),
    }
    if !upgrade_first || setup.step_ms > 1_000 || setup.room != usize::MAX || d.refused > 0 {
        // Timeouts, a slow reader or a failed commit may end the socket
        // before the stream does; the reference says nothing about those.
        return;
    }
    let head_end = find(&written[pos..], b"\r\n\r\n").expect("whole 101 head") + pos + 4;
    let frames = server_frames(&written[head_end..]).expect("clean server frames");
    let limit = if setup.echo { ECHO_LIMIT } else { CHAT_LIMIT };
    let (msgs, end) = expect(&input[head_len..], limit);
    let data_msgs: Vec<&Msg> = msgs
        .iter()
        .filter(|m| matches!(m, Msg::Text(_) | Msg::Binary(_)))
        .collect();
    let answers: Vec<_> = frames
        .iter()
        .filter(|f| f.opcode == 1 || f.opcode == 2)
        .collect();
    if setup.echo {
        let echoed: Vec<Msg> = answers
            .iter()
            .map(|f| match f.opcode {
                1 => Msg::Text(String::from_utf8(f.payload.clone()).expect("UTF-8 echo")),
                _ => Msg::Binary(f.payload.clone()),
            })
            .collect();
        let want: Vec<Msg> = data_msgs.into_iter().cloned().collect();
        assert_eq!(echoed, want, "echoes");
    } else {
        assert_eq!(answers.len(), data_msgs.len(), "one ack per message");
    }
    let close = frames.iter().find(|f| f.opcode == 8);
    match end {
        End::More => assert!(close.is_none(), "close frame {close:?} on a clean stream"),
        End::Fail(code) => {
            let close = close.expect("a violation gets a close frame");
            assert_eq!(close.close_code(), Some(code), "close code");
        }
        End::Close(code) => {
            let close = close.expect("a close is answered");
            assert_eq!(close.close_code(), code, "close reply");
        }
    }
});

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// `{"event":"<event>","username":"alice"}` frames in bob's output.
fn count_presence(bytes: &[u8], event: &str) -> usize {
    let frames = server_frames(bytes).expect("clean frames to bob");
    let want = serde_json::json!({ "event": event, "username": "alice" });
    frames
        .iter()
        .filter(|f| {
            serde_json::from_slice::<serde_json::Value>(&f.payload).ok() == Some(want.clone())
        })
        .count()
}
