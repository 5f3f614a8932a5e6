//! Who is asking: the client address and scheme, believing forwarding
//! headers only from trusted proxies.

use crate::config::IpNet;
use crate::http::Request;
use std::net::IpAddr;

/// The peer of one request, after proxy handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The TCP peer.
    pub tcp: IpAddr,
    /// The client: the TCP peer, or what a trusted proxy says it is.
    pub client: IpAddr,
    /// The request reached the proxy over HTTPS (`X-Forwarded-Proto: https`
    /// from a trusted proxy).
    pub https: bool,
    /// The request carries `X-Forwarded-For` at all (trusted or not).
    pub forwarded: bool,
}

impl Peer {
    /// Works out the peer of `req` arriving from `tcp`.
    pub fn of(req: &Request, tcp: IpAddr, trusted: &[IpNet]) -> Peer {
        let forwarded = req.header("x-forwarded-for").is_some();
        let mut peer = Peer {
            tcp,
            client: tcp,
            https: false,
            forwarded,
        };
        if !trusted.iter().any(|net| net.contains(tcp)) {
            return peer;
        }
        if let Some(addr) = last_forwarded_for(req).or_else(|| real_ip(req)) {
            peer.client = addr;
        }
        peer.https = req
            .header("x-forwarded-proto")
            .is_some_and(|p| p.trim_ascii().eq_ignore_ascii_case(b"https"));
        peer
    }

    /// Whether `/metrics` may be answered: a loopback peer, not forwarded.
    pub fn may_see_metrics(&self) -> bool {
        let loopback = match self.tcp {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        };
        loopback && !self.forwarded
    }
}

/// The last address of the last `X-Forwarded-For` header: the one the
/// trusted proxy itself appended (earlier ones are the client's word).
fn last_forwarded_for(req: &Request) -> Option<IpAddr> {
    let last = req
        .headers
        .iter()
        .rev()
        .find(|(n, _)| n == "x-forwarded-for")?;
    let text = std::str::from_utf8(&last.1).ok()?;
    parse_addr(text.rsplit(',').next()?)
}

fn real_ip(req: &Request) -> Option<IpAddr> {
    parse_addr(req.header_str("x-real-ip")?)
}

/// An address as proxies write it: bare, or IPv6 in brackets.
fn parse_addr(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Limits, Parsed, parse_request};

    fn req(extra: &str) -> Request {
        let text = format!("GET / HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        let limits = Limits {
            max_head_bytes: 8192,
            max_headers: 64,
            max_body_bytes: 0,
        };
        match parse_request(text.as_bytes(), &limits) {
            Ok(Parsed::Complete(r, _)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn peer_table() {
        let trusted: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let remote: IpAddr = "203.0.113.9".parse().unwrap();
        let cases = [
            (local, "", "127.0.0.1", false),
            (
                local,
                "X-Forwarded-For: 1.1.1.1, 2.2.2.2\r\n",
                "2.2.2.2",
                false,
            ),
            (
                local,
                "X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 3.3.3.3\r\n",
                "3.3.3.3",
                false,
            ),
            (local, "X-Real-IP: 4.4.4.4\r\n", "4.4.4.4", false),
            (
                local,
                "X-Forwarded-For: [2001:db8::1]\r\n",
                "2001:db8::1",
                false,
            ),
            (local, "X-Forwarded-For: junk\r\n", "127.0.0.1", false),
            (local, "X-Forwarded-Proto: https\r\n", "127.0.0.1", true),
            (
                remote,
                "X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-Proto: https\r\n",
                "203.0.113.9",
                false,
            ),
        ];
        for (tcp, headers, client, https) in cases {
            let p = Peer::of(&req(headers), tcp, &trusted);
            assert_eq!(p.client, client.parse::<IpAddr>().unwrap(), "{headers}");
            assert_eq!(p.https, https, "{headers}");
        }
    }

    #[test]
    fn metrics_only_for_local_unforwarded_peers() {
        let trusted: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(Peer::of(&req(""), local, &trusted).may_see_metrics());
        let fwd = req("X-Forwarded-For: 127.0.0.1\r\n");
        assert!(!Peer::of(&fwd, local, &trusted).may_see_metrics());
        let remote: IpAddr = "203.0.113.9".parse().unwrap();
        assert!(!Peer::of(&req(""), remote, &trusted).may_see_metrics());
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(Peer::of(&req(""), mapped, &trusted).may_see_metrics());
    }
}
