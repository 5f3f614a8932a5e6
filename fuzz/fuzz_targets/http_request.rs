//! Arbitrary bytes through the request framing (head, body, chunked).
//!
//! Properties: never panics; never consumes more than it was given; a
//! `Partial` answer never comes for more than `max_request_bytes`; a
//! complete request stays within every limit; each strict prefix of a
//! complete request is `Partial`, and the request parses the same with
//! nothing after it; each prefix of a refused input is `Partial` or the
//! same refusal (every byte is judged when it first arrives). The helpers
//! the routes apply to a request (path, query, percent-decoding, cookies,
//! the event stream's `Last-Event-ID` / `since`) run on every complete
//! one, and so do the ones of the curl endpoints: the `Authorization:
//! Bearer` parser (its credentials are part of the header), the
//! `POST /api/messages` body (a message frame, or an error code with a 4xx
//! status), and the search parameters (whatever `q` holds, the FTS5 query
//! is only quoted phrases of letters, digits and spaces, each perhaps a
//! prefix, so it can never be FTS5 syntax).
#![no_main]

use libfuzzer_sys::fuzz_target;
use piratchat::api::bearer::bearer_credentials;
use piratchat::api::events::resume_point;
use piratchat::api::post::ack_status;
use piratchat::api::search::search_params;
use piratchat::http::{
    HttpError, Limits, Parsed, cookie_value, parse_request, percent_decode, query_param,
};
use piratchat::protocol::decode_client_op;

/// The server's defaults, and tiny ones so that every limit is reachable.
const LIMITS: [Limits; 3] = [
    Limits {
        max_head_bytes: 8 * 1024,
        max_headers: 64,
        max_body_bytes: 16 * 1024,
    },
    Limits {
        max_head_bytes: 96,
        max_headers: 4,
        max_body_bytes: 16,
    },
    Limits {
        max_head_bytes: 64,
        max_headers: 1,
        max_body_bytes: 0,
    },
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, buf)) = data.split_first() else {
        return;
    };
    let limits = &LIMITS[usize::from(pick) % LIMITS.len()];
    let full = parse_request(buf, limits);
    match &full {
        Ok(Parsed::Complete(req, used)) => {
            assert!(
                *used > 0 && *used <= buf.len(),
                "used {used} of {}",
                buf.len()
            );
            assert!(*used <= limits.max_request_bytes());
            assert!(req.headers.len() <= limits.max_headers);
            assert!(req.body.len() <= limits.max_body_bytes);
            assert!(
                req.target.starts_with('/'),
                "not origin-form: {:?}",
                req.target
            );
            // Nothing after the request changes it.
            match parse_request(&buf[..*used], limits) {
                Ok(Parsed::Complete(again, u)) => {
                    assert_eq!(u, *used);
                    assert_eq!(again.body, req.body);
                    assert_eq!(again.target, req.target);
                }
                other => panic!("the request alone gives {other:?}"),
            }
            exercise_helpers(req);
        }
        Ok(Parsed::Partial { .. }) => assert!(buf.len() <= limits.max_request_bytes()),
        Err(_) => {}
    }
    for n in prefixes(buf.len()) {
        let prefix = parse_request(&buf[..n], limits);
        match (&full, prefix) {
            (_, Ok(Parsed::Partial { .. })) => {}
            (Ok(Parsed::Complete(_, used)), Ok(Parsed::Complete(_, u))) if u == *used => {
                assert!(n >= *used, "a strict prefix ({n} of {used}) is complete");
            }
            (Err(e), Err(p)) if *e == p => {}
            (full, prefix) => panic!("prefix {n}: {prefix:?}, whole input: {full:?}"),
        }
    }
});

/// The prefix lengths to check: all of them for short inputs, else the
/// first and last 64 and 64 spread between (parsing is O(n), so checking
/// every prefix of a long input would be O(n²) per run).
fn prefixes(len: usize) -> Vec<usize> {
    if len <= 256 {
        return (0..len).collect();
    }
    let mut ns: Vec<usize> = (0..64).chain(len - 64..len).collect();
    ns.extend((1..64).map(|i| i * len / 64));
    ns
}

/// The parsers the routes run on a request's parts: never panic, and what
/// they return is part of their input (or its decoding).
fn exercise_helpers(req: &piratchat::http::Request) {
    let path = req.path();
    assert!(req.target.starts_with(path));
    if let Some(decoded) = percent_decode(path) {
        assert!(decoded.len() <= path.len());
    }
    if let Some(query) = req.query() {
        let _ = query_param(query, "session");
        check_search(query);
    }
    for (name, value) in &req.headers {
        assert_eq!(name, &name.to_ascii_lowercase());
        if let Some(v) = cookie_value(value, "session") {
            assert!(v.len() <= value.len());
        }
        if name == "authorization" {
            if let Some(key) = bearer_credentials(value) {
                // A subslice of the value, trimmed.
                assert!(key.len() + 6 <= value.len());
                assert!(key.first().is_none_or(|b| !b.is_ascii_whitespace()));
                assert!(key.last().is_none_or(|b| !b.is_ascii_whitespace()));
            }
        }
    }
    if let Ok(body) = std::str::from_utf8(&req.body) {
        if let Err(e) = decode_client_op(body, 300) {
            assert!((400..500).contains(&ack_status(e)), "{e:?}");
        }
    }
    // The resume point of `GET /api/events`: `Last-Event-ID` wins over
    // `?since=`, and whatever it takes is an event id from 0.
    let header = req.header("last-event-id").map(<[u8]>::trim_ascii);
    match resume_point(req) {
        Ok(Some(id)) => {
            assert!(id >= 0);
            if let Some(h) = header.filter(|h| !h.is_empty()) {
                let text = std::str::from_utf8(h).expect("taken as text");
                assert_eq!(text.parse::<i64>(), Ok(id), "the header wins");
            }
        }
        Ok(None) => assert!(header.is_none_or(<[u8]>::is_empty)),
        Err(_) => {}
    }
    let _ = HttpError::HeadTooLarge.response();
}

/// The search parameters: a refusal is a 4xx with a code; an accepted
/// query's FTS5 text is quoted phrases (`"..."` or `"..."*`) of letters,
/// digits and single spaces, separated by single spaces.
fn check_search(query: &str) {
    match search_params(query) {
        Err((status, code, _)) => {
            assert!(status == 400 || status == 422, "{status}");
            assert!(!code.is_empty());
        }
        Ok(s) => {
            assert!(!s.fts.is_empty());
            assert!((1..=100).contains(&s.limit) && s.before > 0);
            let mut rest = s.fts.as_str();
            loop {
                rest = rest.strip_prefix('"').expect("a phrase opens");
                let end = rest.find('"').expect("a phrase closes");
                let inner = &rest[..end];
                assert!(
                    inner
                        .split(' ')
                        .all(|t| !t.is_empty() && t.chars().all(char::is_alphanumeric)),
                    "{}",
                    s.fts
                );
                rest = &rest[end + 1..];
                rest = rest.strip_prefix('*').unwrap_or(rest);
                if rest.is_empty() {
                    break;
                }
                rest = rest.strip_prefix(' ').expect("one space between phrases");
            }
        }
    }
}
