//! Shared helpers for the black-box tests: the real `piratchat` binary on
//! `127.0.0.1:0` with a temporary database, raw HTTP over `TcpStream`,
//! WebSocket clients, and polling with a deadline (never a fixed sleep).
#![allow(dead_code)]

pub mod chat;
pub mod sse;
pub mod ws;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `f` until it returns `Some`, failing the test after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::yield_now();
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).unwrap();
        let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("piratchat-test-{name}"));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running server process.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: Arc<TempDir>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the server with these extra flags and a new database.
    pub fn start(args: &[&str]) -> Server {
        Server::start_in(Arc::new(TempDir::new()), args)
    }

    /// Starts the server on the database of `dir` (reused across restarts).
    pub fn start_in(dir: Arc<TempDir>, args: &[&str]) -> Server {
        let db = dir.0.join("chat.db");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_piratchat"));
        cmd.args(["--listen", "127.0.0.1:0", "--db"])
            .arg(&db)
            .args(args);
        Server::spawn(dir, cmd)
    }

    /// Starts the server on the database of `dir` on a "disk" that takes
    /// files up to `max_file_bytes`: `prlimit --fsize` (util-linux), with
    /// SIGXFSZ ignored so a write past it fails with `EFBIG` instead of
    /// killing the process, as a full disk fails a write with `ENOSPC`.
    pub fn start_on_small_disk(dir: Arc<TempDir>, max_file_bytes: u64, args: &[&str]) -> Server {
        let prlimit = Command::new("prlimit").arg("--version").output();
        assert!(
            prlimit.is_ok_and(|o| o.status.success()),
            "these tests need prlimit (util-linux)"
        );
        let db = dir.0.join("chat.db");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"trap '' XFSZ; exec prlimit --fsize="$0" "$@""#)
            .arg(max_file_bytes.to_string())
            .arg(env!("CARGO_BIN_EXE_piratchat"))
            .args(["--listen", "127.0.0.1:0", "--db"])
            .arg(&db)
            .args(args);
        Server::spawn(dir, cmd)
    }

    /// Runs `cmd` (the server, perhaps wrapped) and waits for it to listen.
    fn spawn(dir: Arc<TempDir>, mut cmd: Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn piratchat");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let addr = wait_for("the listening line", PATIENCE, || {
            let lines = log.lock().unwrap();
            let line = lines.iter().find(|l| l.contains("listening on "))?;
            let rest = line.split("listening on ").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        });
        Server {
            child,
            addr,
            dir,
            log,
        }
    }

    /// Lines the server logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        wait_for(needle, PATIENCE, || {
            self.log
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
                .cloned()
        })
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let status = wait_for("exit", PATIENCE, || self.child.try_wait().unwrap());
        status.code()
    }

    /// A new TCP connection with a read timeout, so no test hangs.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// One request on a new connection; the response.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let mut s = self.connect();
        s.write_all(raw(method, path, headers, body).as_bytes())
            .unwrap();
        read_response(&mut s).expect("a response")
    }

    pub fn get(&self, path: &str, cookie: Option<&str>) -> Resp {
        let c = cookie.map(|t| format!("session={t}"));
        let headers: Vec<(&str, &str)> = c.iter().map(|c| ("Cookie", c.as_str())).collect();
        self.request("GET", path, &headers, "")
    }

    /// The value of the unlabelled metric `name` in `/metrics`.
    pub fn metric(&self, name: &str) -> u64 {
        let body = self.get("/metrics", None).body;
        let value = body
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '));
        let value = value.unwrap_or_else(|| panic!("no {name} in\n{body}"));
        value.parse().unwrap()
    }

    pub fn post(&self, path: &str, body: &str) -> Resp {
        self.request("POST", path, &[], body)
    }

    /// Registers `name`; returns the key.
    pub fn register(&self, name: &str) -> String {
        let r = self.post("/api/register", &format!(r#"{{"username":"{name}"}}"#));
        assert_eq!(r.status, 201, "register {name}: {}", r.body);
        r.json()["key"].as_str().unwrap().to_string()
    }

    /// Logs in with `key`; returns the session token.
    pub fn login(&self, key: &str) -> String {
        let r = self.post("/api/login", &format!(r#"{{"key":"{key}"}}"#));
        assert_eq!(r.status, 200, "login: {}", r.body);
        r.session_cookie().expect("a session cookie")
    }

    /// Registers and logs in `name`; returns the session token.
    pub fn user(&self, name: &str) -> String {
        let key = self.register(name);
        self.login(&key)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request as bytes, with Host and Content-Length.
pub fn raw(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut s = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        s.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    s.push_str("\r\n");
    s.push_str(body);
    s
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The `error` code of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The value of the `session` cookie this response sets.
    pub fn session_cookie(&self) -> Option<String> {
        let v = self.header("set-cookie")?;
        let v = v.strip_prefix("session=")?;
        Some(v.split(';').next()?.to_string())
    }
}

/// Reads one response (Content-Length framed; HEAD-less) from `s`. `None`
/// when the connection closes before a status line.
pub fn read_response(s: &mut impl Read) -> Option<Resp> {
    read_response_to(s, false)
}

/// Like `read_response`, for a HEAD request (no body follows).
pub fn read_response_to(s: &mut impl Read, head: bool) -> Option<Resp> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let text = String::from_utf8(buf).unwrap();
    let mut lines = text.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; if head || status < 200 { 0 } else { len }];
    s.read_exact(&mut body).ok()?;
    Some(Resp {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    })
}

/// Reads until EOF (or error); true when the peer closed the connection.
pub fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}
