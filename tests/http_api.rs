//! Every endpoint of SPEC §4 with every status it can answer, against the
//! real binary.

mod util;

use std::io::Write;
use util::{Server, read_response, read_response_to};

/// `HEAD path` with the session cookie on a new connection; the connection
/// (still open) and the response.
fn head_with_session(s: &Server, path: &str, token: &str) -> (std::net::TcpStream, util::Resp) {
    let cookie = format!("session={token}");
    let mut c = s.connect();
    c.write_all(util::raw("HEAD", path, &[("Cookie", &cookie)], "").as_bytes())
        .unwrap();
    let r = read_response_to(&mut c, true).unwrap();
    (c, r)
}

fn status_and_error(r: &util::Resp) -> (u16, String) {
    (
        r.status,
        if r.status >= 400 {
            r.error()
        } else {
            String::new()
        },
    )
}

#[test]
fn register_statuses() {
    let s = Server::start(&["--register-limit", "0"]);
    let r = s.post("/api/register", r#"{"username":"alice"}"#);
    assert_eq!(r.status, 201);
    let key = r.json()["key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 64);
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let cases: &[(&str, u16, &str)] = &[
        (r#"{"username":"Alice"}"#, 409, "username_taken"),
        (r#"{"username":"ALICE"}"#, 409, "username_taken"),
        (r#"{"username":"alice\n"}"#, 400, "invalid_username"),
        (r#"{"username":"al ice"}"#, 400, "invalid_username"),
        (r#"{"username":"ålice"}"#, 400, "invalid_username"),
        (
            &format!(r#"{{"username":"{}"}}"#, "a".repeat(33)),
            400,
            "invalid_username",
        ),
        (r#"{"username":""}"#, 422, "invalid_request"),
        (r#"{"username":5}"#, 422, "invalid_request"),
        (r#"{"username":"bob","x":1}"#, 422, "invalid_request"),
        (r#"{}"#, 422, "invalid_request"),
        (r#"["bob"]"#, 422, "invalid_request"),
        ("username=bob", 422, "invalid_request"),
        ("", 422, "invalid_request"),
        (r#"{"username":"bob""#, 422, "invalid_request"),
    ];
    for (body, status, code) in cases {
        let r = s.post("/api/register", body);
        assert_eq!(status_and_error(&r), (*status, code.to_string()), "{body}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{body}");
    }
    let long = "b".repeat(32);
    assert_eq!(
        s.post("/api/register", &format!(r#"{{"username":"{long}"}}"#))
            .status,
        201
    );
}

#[test]
fn register_is_rate_limited_per_address() {
    let s = Server::start(&["--register-limit", "3", "--register-window", "1h"]);
    for i in 0..2 {
        s.register(&format!("user{i}"));
    }
    // A refused registration counts too.
    assert_eq!(s.post("/api/register", "{}").status, 422);
    let r = s.post("/api/register", r#"{"username":"late"}"#);
    assert_eq!(status_and_error(&r), (429, "rate_limited".into()));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&retry), "{retry}");
    // The limit is checked before anything else.
    assert_eq!(s.post("/api/register", "nonsense").status, 429);
}

#[test]
fn login_statuses_and_cookie() {
    let s = Server::start(&["--session-ttl", "1234s"]);
    let key = s.register("carol");
    let r = s.post("/api/login", &format!(r#"{{"key":"{key}"}}"#));
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"username": "carol"}));
    let cookie = r.header("set-cookie").unwrap();
    let token = r.session_cookie().unwrap();
    assert_eq!(token.len(), 32);
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(
        cookie,
        format!("session={token}; Path=/; Max-Age=1234; HttpOnly; SameSite=Lax")
    );
    let cases: &[(&str, u16, &str)] = &[
        (
            &format!(r#"{{"key":"{}"}}"#, "0".repeat(64)),
            401,
            "invalid_key",
        ),
        (r#"{"key":"short"}"#, 401, "invalid_key"),
        (r#"{"key":""}"#, 422, "invalid_request"),
        (r#"{"key":1}"#, 422, "invalid_request"),
        (
            &format!(r#"{{"key":"{key}","extra":true}}"#),
            422,
            "invalid_request",
        ),
        ("{", 422, "invalid_request"),
    ];
    for (body, status, code) in cases {
        let r = s.post("/api/login", body);
        assert_eq!(status_and_error(&r), (*status, code.to_string()), "{body}");
    }
    // Every login is a new session; both stay valid (several devices).
    let t1 = s.login(&key);
    let t2 = s.login(&key);
    assert_ne!(t1, t2);
    assert_eq!(s.get("/api/user/@me", Some(&t1)).status, 200);
    assert_eq!(s.get("/api/user/@me", Some(&t2)).status, 200);
}

#[test]
fn secure_cookie_only_when_a_trusted_proxy_says_https() {
    let s = Server::start(&[]);
    let key = s.register("dave");
    let body = format!(r#"{{"key":"{key}"}}"#);
    let r = s.request(
        "POST",
        "/api/login",
        &[("X-Forwarded-Proto", "https")],
        &body,
    );
    assert!(r.header("set-cookie").unwrap().ends_with("; Secure"));
    let r = s.request(
        "POST",
        "/api/login",
        &[("X-Forwarded-Proto", "http")],
        &body,
    );
    assert!(!r.header("set-cookie").unwrap().contains("Secure"));
    // Loopback is not trusted here, so the header is the client's word.
    let s = Server::start(&["--trusted-proxies", "10.0.0.0/8"]);
    let key = s.register("dave");
    let body = format!(r#"{{"key":"{key}"}}"#);
    let r = s.request(
        "POST",
        "/api/login",
        &[("X-Forwarded-Proto", "https")],
        &body,
    );
    assert!(!r.header("set-cookie").unwrap().contains("Secure"));
}

#[test]
fn failed_logins_are_rate_limited_per_address() {
    let s = Server::start(&["--login-fail-limit", "2", "--login-window", "10m"]);
    let key = s.register("erin");
    let bad = format!(r#"{{"key":"{}"}}"#, "f".repeat(64));
    for _ in 0..2 {
        assert_eq!(s.post("/api/login", &bad).status, 401);
    }
    let r = s.post("/api/login", &format!(r#"{{"key":"{key}"}}"#));
    assert_eq!(
        status_and_error(&r),
        (429, "rate_limited".into()),
        "even a good key waits"
    );
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((590..=600).contains(&retry), "{retry}");
    // Another client address (through the trusted loopback proxy) is not limited.
    let r = s.request(
        "POST",
        "/api/login",
        &[("X-Forwarded-For", "192.0.2.7")],
        &bad,
    );
    assert_eq!(r.status, 401);
}

#[test]
fn logout_get_and_post() {
    let s = Server::start(&[]);
    let key = s.register("frank");
    for method in ["GET", "POST"] {
        let token = s.login(&key);
        let cookie = format!("session={token}");
        let r = s.request(method, "/api/logout", &[("Cookie", &cookie)], "");
        assert_eq!(r.status, 200, "{method}");
        assert_eq!(r.body, "{}");
        let clear = "session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax";
        assert_eq!(r.header("set-cookie"), Some(clear));
        let me = s.get("/api/user/@me", Some(&token));
        assert_eq!(
            status_and_error(&me),
            (401, "invalid_session".into()),
            "{method}"
        );
    }
    // Without a cookie, or with an unknown one, logout is still 200.
    assert_eq!(s.get("/api/logout", None).status, 200);
    assert_eq!(s.get("/api/logout", Some("nope")).status, 200);
}

/// Issue 11 #7: a link or image on another site could log a user out
/// through `GET /api/logout` (a Lax cookie rides along). Browsers mark such
/// requests `Sec-Fetch-Site: cross-site`; they are refused with 403 and the
/// session lives on. Same-origin, same-site and header-less (curl) logouts
/// keep working.
#[test]
fn cross_site_logout_is_refused() {
    let s = Server::start(&[]);
    let token = s.user("cora");
    let cookie = format!("session={token}");
    for method in ["GET", "POST"] {
        for site in ["cross-site", "Cross-Site"] {
            let headers = [("Cookie", cookie.as_str()), ("Sec-Fetch-Site", site)];
            let r = s.request(method, "/api/logout", &headers, "");
            assert_eq!(
                status_and_error(&r),
                (403, "cross_site_request".into()),
                "{method} {site}"
            );
            assert_eq!(r.header("set-cookie"), None, "the cookie stays");
        }
    }
    assert_eq!(s.get("/api/user/@me", Some(&token)).status, 200);
    for site in ["same-origin", "same-site", "none"] {
        let token = s.user(&format!("cora{}", site.len()));
        let cookie = format!("session={token}");
        let headers = [("Cookie", cookie.as_str()), ("Sec-Fetch-Site", site)];
        assert_eq!(s.request("GET", "/api/logout", &headers, "").status, 200);
        assert_eq!(s.get("/api/user/@me", Some(&token)).status, 401, "{site}");
    }
}

#[test]
fn head_logout_is_405_and_has_no_side_effect() {
    let s = Server::start(&[]);
    let token = s.user("gina");
    let (_, r) = head_with_session(&s, "/api/logout", &token);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
    assert_eq!(
        s.get("/api/user/@me", Some(&token)).status,
        200,
        "still logged in"
    );
}

#[test]
fn authenticated_endpoints_need_a_live_session() {
    let s = Server::start(&[]);
    for path in ["/api/online", "/api/user/@me", "/api/user/x"] {
        let r = s.get(path, None);
        assert_eq!(
            status_and_error(&r),
            (422, "missing_session".into()),
            "{path}"
        );
        let r = s.request("GET", path, &[("Cookie", "session=")], "");
        assert_eq!(
            status_and_error(&r),
            (422, "missing_session".into()),
            "{path}"
        );
        let r = s.request("GET", path, &[("Cookie", "other=1")], "");
        assert_eq!(
            status_and_error(&r),
            (422, "missing_session".into()),
            "{path}"
        );
        let r = s.get(path, Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        assert_eq!(
            status_and_error(&r),
            (401, "invalid_session".into()),
            "{path}"
        );
        assert!(
            r.header("set-cookie").unwrap().contains("Max-Age=0"),
            "{path}"
        );
    }
    let r = s.request("GET", "/ws", &[("Cookie", "session=nope")], "");
    assert_eq!(status_and_error(&r), (401, "invalid_session".into()));
    assert_eq!(s.get("/ws", None).status, 422);
}

#[test]
fn online_and_user_lookups() {
    let s = Server::start(&[]);
    let token = s.user("Henry");
    s.register("ivy");
    let r = s.get("/api/online", Some(&token));
    assert_eq!(r.json(), serde_json::json!({"online_clients": []}));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let me = serde_json::json!({"username": "Henry", "online": false});
    // `@me` also says how many sockets the user holds and may hold.
    let mine = serde_json::json!({
        "username": "Henry", "online": false, "sockets": 0, "sockets_per_user": 1
    });
    assert_eq!(s.get("/api/user/@me", Some(&token)).json(), mine);
    assert_eq!(s.get("/api/user/%40me", Some(&token)).json(), mine);
    assert_eq!(
        s.get("/api/user/henry", Some(&token)).json(),
        me,
        "shown as registered"
    );
    assert_eq!(
        s.get("/api/user/IVY", Some(&token)).json()["username"],
        "ivy"
    );
    // The exact field order of the original.
    assert_eq!(
        s.get("/api/user/ivy", Some(&token)).body,
        r#"{"username":"ivy","online":false}"#
    );
    for missing in ["/api/user/nobody", "/api/user/", "/api/user/%zz"] {
        let r = s.get(missing, Some(&token));
        assert_eq!(
            status_and_error(&r),
            (404, "user_not_found".into()),
            "{missing}"
        );
    }
    assert_eq!(s.get("/api/user/a/b", Some(&token)).status, 404);
}

#[test]
fn operations_endpoints() {
    let s = Server::start(&[]);
    let r = s.get("/healthz", None);
    assert_eq!(
        (r.status, r.json()),
        (200, serde_json::json!({"status": "ok"}))
    );
    let r = s.get("/metrics", None);
    assert_eq!(r.status, 200);
    for family in [
        "piratchat_open_connections{kind=\"http\"} ",
        "piratchat_open_websockets 0",
        "piratchat_sessions 0",
        "piratchat_messages_received_total 0",
        "piratchat_http_responses_total{status=\"200\"} 1",
        "piratchat_uptime_seconds",
        "piratchat_bytes_in_total",
        "piratchat_acks_total{code=\"ok\"} 0",
    ] {
        assert!(r.body.contains(family), "missing {family}:\n{}", r.body);
    }
    let r = s.request("GET", "/metrics", &[("X-Forwarded-For", "127.0.0.1")], "");
    assert_eq!(status_and_error(&r), (404, "not_found".into()));
}

#[test]
fn unknown_paths_and_methods() {
    let s = Server::start(&[]);
    let cases: &[(&str, &str, u16, Option<&str>)] = &[
        ("GET", "/nope", 404, None),
        ("GET", "/api", 404, None),
        ("GET", "/echo", 404, None),
        ("GET", "/api/register", 405, Some("POST")),
        ("PUT", "/api/login", 405, Some("POST")),
        ("DELETE", "/api/logout", 405, Some("GET, POST")),
        ("OPTIONS", "/api/online", 405, Some("GET, HEAD")),
        ("POST", "/api/online", 405, Some("GET, HEAD")),
        ("POST", "/healthz", 405, Some("GET, HEAD")),
        ("POST", "/ws", 405, Some("GET")),
        ("HEAD", "/ws", 405, Some("GET")),
    ];
    for (method, path, status, allow) in cases {
        let mut c = s.connect();
        c.write_all(util::raw(method, path, &[], "").as_bytes())
            .unwrap();
        let r = read_response_to(&mut c, *method == "HEAD").unwrap();
        assert_eq!(r.status, *status, "{method} {path}");
        assert_eq!(r.header("allow"), *allow, "{method} {path}");
        if *method != "HEAD" {
            let code = if *status == 404 {
                "not_found"
            } else {
                "method_not_allowed"
            };
            assert_eq!(r.error(), code, "{method} {path}");
        }
        // Not a protocol error: the connection stays open for more.
        c.write_all(util::raw("GET", "/healthz", &[], "").as_bytes())
            .unwrap();
        assert_eq!(
            read_response(&mut c).unwrap().status,
            200,
            "{method} {path}"
        );
    }
}

#[test]
fn head_has_the_headers_of_get_without_the_body() {
    let s = Server::start(&[]);
    let token = s.user("jack");
    let (mut c, head) = head_with_session(&s, "/api/user/@me", &token);
    let get = s.get("/api/user/@me", Some(&token));
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), get.header("content-length"));
    assert_eq!(head.body, "");
    // The next response on the connection starts right after the headers.
    c.write_all(util::raw("GET", "/healthz", &[], "").as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut c).unwrap().json()["status"], "ok");
}

#[test]
fn the_web_client_is_served_from_the_binary() {
    let s = Server::start(&[]);
    for (path, kind, needle) in [
        ("/", "text/html; charset=utf-8", "<!doctype html>"),
        ("/app.js", "text/javascript; charset=utf-8", "WebSocket"),
        ("/style.css", "text/css; charset=utf-8", "{"),
    ] {
        let r = s.get(path, None);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(kind), "{path}");
        assert!(r.body.contains(needle), "{path}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert!(
            r.header("content-security-policy")
                .unwrap()
                .contains("default-src 'none'")
        );
    }
    let r = s.request("POST", "/", &[], "x");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(s.get("/index.html", None).status, 404);
}

#[test]
fn regression_access_log_duration_excluded_keep_alive_idle_time() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.write_all(util::raw("GET", "/healthz", &[], "").as_bytes())
        .unwrap();
    read_response(&mut c).unwrap();
    // Idle on the kept-alive connection, then a second, instant request.
    let idle_until = std::time::Instant::now() + std::time::Duration::from_millis(400);
    util::wait_for("idle time", util::PATIENCE, || {
        (std::time::Instant::now() >= idle_until).then_some(())
    });
    c.write_all(util::raw("GET", "/healthz?second", &[], "").as_bytes())
        .unwrap();
    read_response(&mut c).unwrap();
    let lines = util::wait_for("two access lines", util::PATIENCE, || {
        let lines: Vec<String> = s
            .log_lines()
            .into_iter()
            .filter(|l| l.contains("GET \"/healthz\" 200"))
            .collect();
        (lines.len() == 2).then_some(lines)
    });
    let took: u64 = lines[1]
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches("ms")
        .parse()
        .unwrap();
    assert!(
        took < 300,
        "the second request took {took}ms by the log: {}",
        lines[1]
    );
}

/// Issue 11 #8: uptime counted from the loop clock's origin, which starts
/// past zero (session TTL + dedupe window + 1 s: 4,201 s with the defaults).
#[test]
fn uptime_counts_from_start_not_from_the_clock_origin() {
    let started = std::time::Instant::now();
    let s = Server::start(&[]);
    let body = s.get("/metrics", None).body;
    let line = body
        .lines()
        .find(|l| l.starts_with("piratchat_uptime_seconds "))
        .unwrap_or_else(|| panic!("no uptime in\n{body}"));
    let secs: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        secs <= started.elapsed().as_secs(),
        "{line}: the test has run only {:?}",
        started.elapsed()
    );
}
