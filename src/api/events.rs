//! `GET /api/events`: who may open an event stream, and from where it
//! resumes. The stream itself is the server's (a phase of the
//! connection); its events come from the same deliveries and the same
//! replay as a WebSocket's.

use super::{Ctx, Routed, authenticate};
use crate::chat::Outbox;
use crate::http::{Request, Response, query_param};

/// Why a resume point was refused (422 `invalid_request`, this detail).
const BAD_RESUME: &str = "since and Last-Event-ID must be an event id, an integer from 0";

/// A `since` or `Last-Event-ID` that is not an event id: 422
/// `invalid_request`, and no stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadResume;

/// `GET /api/events?since=ID`: authenticated like every endpoint (the
/// same `authenticate`), at most `streams_per_user` open streams per user
/// (409 `too_many_streams` past it: a state to change by closing one,
/// not a rate to wait out), resuming after `Last-Event-ID` or `since`.
pub(super) fn events<O: Outbox>(req: &Request, ctx: &mut Ctx<'_, O>) -> Routed {
    let me = match authenticate(req, ctx) {
        Ok(me) => me,
        Err(r) => return r.into(),
    };
    if ctx.chat.streams_of(me.user).len() >= ctx.cfg.streams_per_user {
        let detail = format!(
            "at most {} event streams per user are open at once; close one",
            ctx.cfg.streams_per_user
        );
        return Response::error_detail(409, "too_many_streams", &detail).into();
    }
    match resume_point(req) {
        Ok(since) => Routed::Stream { chat: me, since },
        Err(BadResume) => Response::error_detail(422, "invalid_request", BAD_RESUME).into(),
    }
}

/// Where a stream resumes: after the `Last-Event-ID` header when there is
/// one (a browser's `EventSource` reconnects to the URL it was opened
/// with, `since` and all, and names the last event it got in the
/// header: that one is newer), else after `?since=`; `None`: live only.
/// An empty header counts as none, as `EventSource` sends none before
/// its first event.
pub fn resume_point(req: &Request) -> Result<Option<i64>, BadResume> {
    let header = req
        .header("last-event-id")
        .map(|v| v.trim_ascii())
        .filter(|v| !v.is_empty());
    let text = match header {
        Some(v) => Some(std::str::from_utf8(v).map_err(|_| BadResume)?),
        // Other query parameters are left alone: clients add cache-busters.
        None => req.query().and_then(|q| query_param(q, "since")),
    };
    match text {
        None => Ok(None),
        Some(t) => t
            .parse::<i64>()
            .ok()
            .filter(|&v| v >= 0)
            .map(Some)
            .ok_or(BadResume),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Limits, Parsed, parse_request};

    fn req(target: &str, headers: &str) -> Request {
        let head = format!("GET {target} HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
        let limits = Limits {
            max_head_bytes: 8192,
            max_headers: 64,
            max_body_bytes: 16384,
        };
        match parse_request(head.as_bytes(), &limits) {
            Ok(Parsed::Complete(r, _)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resume_point_table() {
        type Want = Result<Option<i64>, BadResume>;
        let cases: &[(&str, &str, Want)] = &[
            ("/api/events", "", Ok(None)),
            ("/api/events?since=5", "", Ok(Some(5))),
            ("/api/events?since=0&_=123", "", Ok(Some(0))),
            ("/api/events", "Last-Event-ID: 7\r\n", Ok(Some(7))),
            ("/api/events?since=5", "Last-Event-ID: 9\r\n", Ok(Some(9))),
            ("/api/events?since=5", "Last-Event-ID:\r\n", Ok(Some(5))),
            ("/api/events", "Last-Event-ID:  12 \r\n", Ok(Some(12))),
            ("/api/events?since=-1", "", Err(BadResume)),
            ("/api/events?since=x", "", Err(BadResume)),
            ("/api/events?since=", "", Err(BadResume)),
            (
                "/api/events?since=5",
                "Last-Event-ID: abc\r\n",
                Err(BadResume),
            ),
            ("/api/events", "Last-Event-ID: -3\r\n", Err(BadResume)),
            (
                "/api/events",
                "Last-Event-ID: 99999999999999999999\r\n",
                Err(BadResume),
            ),
        ];
        for (target, headers, want) in cases {
            assert_eq!(
                resume_point(&req(target, headers)),
                *want,
                "{target} {headers}"
            );
        }
    }
}
