//! `piratchat admin ...`: the operator's command line. Each subcommand is
//! one call of the running server's admin API over plain HTTP (the
//! server listens on loopback on the VPS), authenticated with the
//! operator's key from `PIRATCHAT_KEY` or `--key-file`, never from the
//! command line, where `ps` and the shell history would show it.
//!
//! The client is a few lines of blocking HTTP/1.1 over one
//! `std::net::TcpStream`: one request with the key as its bearer key
//! (`Authorization: Bearer`), so no session is made or left behind.
//! The server always frames its answers with `Content-Length`, so no
//! other framing is needed. Exit codes tell the failures apart for
//! scripts: see [`Exit`].

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The server asked when `--server` is not given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7777";

/// How long connecting, and each read or write, may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer read (a page of 200 users or audit rows is far less).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// How a run ended, as the process's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done.
    Ok = 0,
    /// 2: the command line was wrong (nothing was sent).
    Usage = 2,
    /// 3: the server answered with an error (refused, not found, ...).
    Refused = 3,
    /// 4: the server could not be reached, or did not answer HTTP.
    Connection = 4,
}

/// A failure: its exit code and its one line for stderr.
#[derive(Debug)]
pub struct Failure(pub Exit, pub String);

fn usage(msg: impl Into<String>) -> Failure {
    Failure(Exit::Usage, msg.into())
}

const HELP: &str = "\
Usage: piratchat admin [--server URL] [--key-file PATH] [--json] COMMAND [ARGS]

Calls the admin API of a running piratchat server. The key of an admin
comes from the environment variable PIRATCHAT_KEY or from the file named
by --key-file; it is never taken from the command line.

Commands:
  users [--prefix P] [--limit N] [--after NAME]   list users
  ban USER [--reason R]                           ban; their sockets close
  unban USER                                      lift a ban
  mute USER DURATION [--reason R]                 mute (10m, 1h, 2d, 1w)
  unmute USER                                     lift a mute
  reset-key USER                                  new key (printed); old one and sessions end
  purge USER [--reason R]                         delete every message of USER
  delete USER [--reason R]                        purge, then remove the account
  role USER admin|user                            grant or take back the admin role
  audit [--limit N] [--before ID]                 the audit log, newest first
  invite [--uses N] [--expires DURATION]          a new invite code (printed)

Options:
  --server URL      the server (default http://127.0.0.1:7777)
  --key-file PATH   read the key from this file
  --json            print the server's JSON answer as it is
  -h, --help        this help; `piratchat admin COMMAND --help` for one command

Exit codes: 0 done, 2 usage error, 3 refused by the server, 4 cannot reach the server.";

/// One command's usage line and what it does.
fn command_help(name: &str) -> Option<&'static str> {
    Some(match name {
        "users" => {
            "Usage: piratchat admin users [--prefix P] [--limit N] [--after NAME]\n\
             Lists users whose name starts with P (any case), N per page (1-200),\n\
             after NAME (the last of the previous page)."
        }
        "ban" => {
            "Usage: piratchat admin ban USER [--reason R]\n\
             Bans USER: their sessions end, their sockets close (1008 banned),\n\
             and login is refused until `unban`."
        }
        "unban" => "Usage: piratchat admin unban USER\nLifts the ban of USER.",
        "mute" => {
            "Usage: piratchat admin mute USER DURATION [--reason R]\n\
             Mutes USER server-wide for DURATION (30s, 10m, 1h, 2d, 1w): their\n\
             messages are refused with `muted`."
        }
        "unmute" => "Usage: piratchat admin unmute USER\nLifts the mute of USER.",
        "reset-key" => {
            "Usage: piratchat admin reset-key USER\n\
             Gives USER a new key and prints it; the old key and every session\n\
             of USER stop working."
        }
        "purge" => {
            "Usage: piratchat admin purge USER [--reason R]\n\
             Deletes every message of USER (clients get a delete event each)."
        }
        "delete" => {
            "Usage: piratchat admin delete USER [--reason R]\n\
             Purges USER, ends their sessions and removes the account; the\n\
             name becomes free."
        }
        "role" => {
            "Usage: piratchat admin role USER admin|user\n\
             Grants or takes back the server admin role."
        }
        "audit" => {
            "Usage: piratchat admin audit [--limit N] [--before ID]\n\
             Prints the audit log, newest first, N per page (1-200), below ID."
        }
        "invite" => {
            "Usage: piratchat admin invite [--uses N] [--expires DURATION]\n\
             Prints a new invite code for --registration invite, good for N\n\
             registrations (default 1) within DURATION (default: no expiry)."
        }
        _ => return None,
    })
}

/// The parsed command line.
#[derive(Debug, Default)]
struct Args {
    server: Option<String>,
    key_file: Option<String>,
    json: bool,
    help: bool,
    /// The command and its positional arguments.
    words: Vec<String>,
    /// `--name value` options of the command.
    opts: Vec<(String, String)>,
}

/// Options of the commands that take a value.
const VALUE_OPTS: [&str; 8] = [
    "reason", "prefix", "limit", "after", "before", "uses", "expires", "server",
];

fn parse_args(argv: &[String]) -> Result<Args, Failure> {
    let mut a = Args::default();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            if arg == "-h" {
                a.help = true;
            } else {
                a.words.push(arg.clone());
            }
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        match name {
            "help" => a.help = true,
            "json" => a.json = true,
            "key" => {
                return Err(usage(
                    "--key: the key is never taken from the command line (ps and the shell \
                     history would show it); set PIRATCHAT_KEY or use --key-file",
                ));
            }
            _ if name == "key-file" || VALUE_OPTS.contains(&name) => {
                let value = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| usage(format!("--{name}: missing value")))?,
                };
                match name {
                    "server" => a.server = Some(value),
                    "key-file" => a.key_file = Some(value),
                    _ => a.opts.push((name.to_string(), value)),
                }
            }
            _ => return Err(usage(format!("--{name}: unknown option (see --help)"))),
        }
    }
    Ok(a)
}

/// Runs `piratchat admin` with the arguments after `admin`; `env` reads
/// an environment variable. Returns the exit code; what to print on
/// stdout goes to `out`, the one-line error to `err`.
pub fn run(
    argv: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    match run_inner(argv, env, out) {
        Ok(()) => Exit::Ok,
        Err(Failure(code, msg)) => {
            let _ = writeln!(err, "piratchat admin: {msg}");
            code
        }
    }
}

fn run_inner(
    argv: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let args = parse_args(argv)?;
    let command = args.words.first().map(String::as_str);
    if args.help {
        let text = command.and_then(command_help).unwrap_or(HELP);
        let _ = writeln!(out, "{text}");
        return Ok(());
    }
    let Some(command) = command else {
        return Err(usage("no command given (see --help)"));
    };
    let call = build_call(command, &args)?;
    let key = read_key(&args, env)?;
    let server = args.server.as_deref().unwrap_or(DEFAULT_SERVER);
    let addr = server_addr(server)?;
    let body = call_server(&addr, &key, &call)?;
    let text = if args.json {
        body.to_string()
    } else {
        render(command, &args, &body)
    };
    let _ = writeln!(out, "{text}");
    Ok(())
}

/// One API call: method, path and body.
#[derive(Debug)]
struct Call {
    method: &'static str,
    path: String,
    body: String,
}

/// The option `name`, if given.
fn opt<'a>(args: &'a Args, name: &str) -> Option<&'a str> {
    args.opts
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A username as a path segment (letters and digits pass as they are;
/// anything else is percent-encoded).
fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn build_call(command: &str, args: &Args) -> Result<Call, Failure> {
    let words = &args.words[1..];
    let (positional, allowed): (usize, &[&str]) = match command {
        "users" => (0, &["prefix", "limit", "after"]),
        "audit" => (0, &["limit", "before"]),
        "invite" => (0, &["uses", "expires"]),
        "ban" | "purge" | "delete" => (1, &["reason"]),
        "mute" => (2, &["reason"]),
        "role" => (2, &[]),
        "unban" | "unmute" | "reset-key" => (1, &[]),
        other => return Err(usage(format!("{other}: unknown command (see --help)"))),
    };
    let shape = || {
        let line = command_help(command).and_then(|h| h.lines().next());
        usage(line.unwrap_or("see --help").to_string())
    };
    if words.len() != positional {
        return Err(shape());
    }
    if let Some((name, _)) = args
        .opts
        .iter()
        .find(|(n, _)| !allowed.contains(&n.as_str()))
    {
        return Err(usage(format!(
            "{command}: --{name} does not apply (see --help)"
        )));
    }
    let user = words.first().map(|u| segment(u)).unwrap_or_default();
    let reason = opt(args, "reason").unwrap_or("");
    let post = |path: String, body: Value| Call {
        method: "POST",
        path,
        body: body.to_string(),
    };
    let get = |path: &str, names: &[&str]| {
        let query: Vec<String> = names
            .iter()
            .filter_map(|n| opt(args, n).map(|v| format!("{n}={}", segment(v))))
            .collect();
        let sep = if query.is_empty() { "" } else { "?" };
        Call {
            method: "GET",
            path: format!("{path}{sep}{}", query.join("&")),
            body: String::new(),
        }
    };
    let admin = |action: &str| format!("/api/admin/users/{user}/{action}");
    Ok(match command {
        "users" => get("/api/admin/users", &["prefix", "limit", "after"]),
        "audit" => get("/api/admin/audit", &["limit", "before"]),
        "invite" => {
            let mut body = json!({});
            if let Some(uses) = opt(args, "uses") {
                let n: u32 = uses
                    .parse()
                    .map_err(|_| usage("--uses: not a whole number"))?;
                body["uses"] = json!(n);
            }
            if let Some(expires) = opt(args, "expires") {
                body["expires"] = json!(expires);
            }
            post("/api/admin/invites".into(), body)
        }
        "ban" | "purge" => post(admin(command), json!({ "reason": reason })),
        "delete" => Call {
            method: "DELETE",
            path: format!("/api/admin/users/{user}"),
            body: json!({ "reason": reason }).to_string(),
        },
        "mute" => post(
            admin("mute"),
            json!({ "duration": words[1], "reason": reason }),
        ),
        "role" => match words[1].as_str() {
            "admin" | "user" => post(admin("role"), json!({ "role": words[1] })),
            _ => return Err(shape()),
        },
        _ => post(admin(command), json!({})),
    })
}

/// The key: `--key-file` wins over `PIRATCHAT_KEY`; surrounding
/// whitespace (a file's newline) is dropped.
fn read_key(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Failure> {
    let key = match &args.key_file {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| usage(format!("--key-file {path}: {e}")))?
        }
        None => env("PIRATCHAT_KEY")
            .ok_or_else(|| usage("no key: set PIRATCHAT_KEY or use --key-file (see --help)"))?,
    };
    let key = key.trim().to_string();
    if key.is_empty() {
        return Err(usage("the key is empty"));
    }
    Ok(key)
}

/// `host:port` of an `http://host[:port][/]` URL.
fn server_addr(url: &str) -> Result<String, Failure> {
    let bad = || {
        usage(format!(
            "--server {url}: not a URL like http://127.0.0.1:7777 (plain HTTP: the admin \
             API is meant for loopback)"
        ))
    };
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.is_empty() || host.contains(['/', '?', '#', '@']) {
        return Err(bad());
    }
    let has_port = host.rsplit_once(':').is_some_and(|(_, p)| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(']')
    });
    Ok(if has_port {
        host.to_string()
    } else {
        format!("{host}:80")
    })
}

/// A response: status and JSON body.
struct Answer {
    status: u16,
    body: Value,
}

/// Makes `call` with `key` as its bearer key (no session is made); the
/// answer's JSON, or a failure (refused: exit 3; unreachable or not
/// HTTP: exit 4).
fn call_server(addr: &str, key: &str, call: &Call) -> Result<Value, Failure> {
    let unreachable = |e: std::io::Error| Failure(Exit::Connection, format!("{addr}: {e}"));
    let sock = connect(addr).map_err(unreachable)?;
    let mut conn = Conn {
        reader: BufReader::new(sock.try_clone().map_err(unreachable)?),
        sock,
        addr,
    };
    let answer = conn.send(call.method, &call.path, &call.body, key)?;
    if answer.status >= 300 {
        return Err(refused(&call.path, &answer));
    }
    Ok(answer.body)
}

fn connect(addr: &str) -> std::io::Result<TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, TIMEOUT) {
            Ok(s) => {
                s.set_read_timeout(Some(TIMEOUT))?;
                s.set_write_timeout(Some(TIMEOUT))?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
}

/// The one line of a refusal: status, code and the server's detail.
fn refused(what: &str, a: &Answer) -> Failure {
    let code = a.body["error"].as_str().unwrap_or("error");
    let detail = a.body["detail"]
        .as_str()
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    let hint = match (what, a.status) {
        (_, 401) => " (is PIRATCHAT_KEY or --key-file the right key?)",
        (_, 403) if code == "forbidden" => " (the key is not an admin's)",
        _ => "",
    };
    Failure(
        Exit::Refused,
        format!("{what}: {} {code}{detail}{hint}", a.status),
    )
}

/// One keep-alive connection to the server.
struct Conn<'a> {
    sock: TcpStream,
    reader: BufReader<TcpStream>,
    addr: &'a str,
}

impl Conn<'_> {
    fn send(&mut self, method: &str, path: &str, body: &str, key: &str) -> Result<Answer, Failure> {
        let addr = self.addr;
        let lost = |e: std::io::Error| Failure(Exit::Connection, format!("{addr}: {e}"));
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
            body.len()
        );
        head.push_str(&format!("Authorization: Bearer {key}\r\n"));
        head.push_str("\r\n");
        self.sock
            .write_all(format!("{head}{body}").as_bytes())
            .map_err(lost)?;
        self.read_answer().map_err(|why| {
            Failure(
                Exit::Connection,
                format!("{addr}: not a piratchat answer ({why})"),
            )
        })
    }

    fn read_answer(&mut self) -> Result<Answer, String> {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let status: u16 = line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|s| s.parse().ok())
            .ok_or("no HTTP/1.1 status line")?;
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (name, value) = l.split_once(':').ok_or("a bad header")?;
            if name.eq_ignore_ascii_case("content-length") {
                len = value.trim().parse().map_err(|_| "a bad Content-Length")?;
            }
        }
        if len > MAX_BODY {
            return Err("an answer too large".into());
        }
        let mut body = vec![0; len];
        self.reader
            .read_exact(&mut body)
            .map_err(|e| e.to_string())?;
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }
}

/// What a command prints when `--json` is not given.
fn render(command: &str, args: &Args, body: &Value) -> String {
    let user = args.words.get(1).map(String::as_str).unwrap_or("");
    let s = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match command {
        // Alone on its line, so `KEY=$(piratchat admin reset-key bob)` works.
        "reset-key" => s(&body["key"]),
        "invite" => s(&body["code"]),
        "users" => {
            let rows = body["users"].as_array().cloned().unwrap_or_default();
            let mut lines = vec!["USERNAME ROLE BANNED MUTED_UNTIL ONLINE LAST_SEEN".to_string()];
            for u in &rows {
                lines.push(format!(
                    "{} {} {} {} {} {}",
                    s(&u["username"]),
                    s(&u["role"]),
                    s(&u["banned"]),
                    s(&u["muted_until"]),
                    s(&u["online"]),
                    s(&u["last_seen"])
                ));
            }
            lines.join("\n")
        }
        "audit" => {
            let rows = body["audit"].as_array().cloned().unwrap_or_default();
            let mut lines = vec!["ID TS BY ACTION TARGET ROOM REASON DETAIL".to_string()];
            for r in &rows {
                lines.push(format!(
                    "{} {} {} {} {} {} {:?} {:?}",
                    s(&r["id"]),
                    s(&r["ts"]),
                    s(&r["by"]),
                    s(&r["action"]),
                    s(&r["target"]),
                    s(&r["room"]),
                    s(&r["reason"]),
                    s(&r["detail"])
                ));
            }
            lines.join("\n")
        }
        "mute" => format!("muted {user} until {}", s(&body["until"])),
        "purge" | "delete" => format!(
            "{command}d {user}: {} messages deleted",
            s(&body["deleted"])
        ),
        "role" => format!("{user} is now {}", s(&body["role"])),
        "ban" => format!("banned {user}"),
        _ => format!("{command} {user}: done"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn calls_of_each_command() {
        let cases = [
            ("ban bob --reason spam", "POST", "/api/admin/users/bob/ban"),
            ("unban bob", "POST", "/api/admin/users/bob/unban"),
            ("mute bob 10m", "POST", "/api/admin/users/bob/mute"),
            ("delete bob", "DELETE", "/api/admin/users/bob"),
            (
                "users --prefix b --limit 5",
                "GET",
                "/api/admin/users?prefix=b&limit=5",
            ),
            ("audit", "GET", "/api/admin/audit"),
            ("invite --uses 3", "POST", "/api/admin/invites"),
            ("role bob admin", "POST", "/api/admin/users/bob/role"),
            ("reset-key b.b", "POST", "/api/admin/users/b%2Eb/reset-key"),
        ];
        for (line, method, path) in cases {
            let args = parse_args(&argv(line)).unwrap();
            let call = build_call(&args.words[0], &args).unwrap();
            assert_eq!((call.method, call.path.as_str()), (method, path), "{line}");
        }
    }

    #[test]
    fn usage_errors() {
        for line in [
            "ban",
            "ban a b",
            "mute bob",
            "role bob king",
            "users --reason x",
            "frobnicate",
            "invite --uses many",
        ] {
            let args = parse_args(&argv(line)).unwrap();
            let got = build_call(&args.words[0], &args);
            assert!(matches!(got, Err(Failure(Exit::Usage, _))), "{line}");
        }
        for line in ["--key abc ban bob", "ban bob --nope 1", "ban bob --reason"] {
            assert!(parse_args(&argv(line)).is_err(), "{line}");
        }
    }

    #[test]
    fn server_urls() {
        let ok = [
            ("http://127.0.0.1:7777", "127.0.0.1:7777"),
            ("http://localhost/", "localhost:80"),
            ("http://[::1]:8080", "[::1]:8080"),
        ];
        for (url, want) in ok {
            assert_eq!(server_addr(url).unwrap(), want, "{url}");
        }
        for url in ["https://x", "127.0.0.1:7777", "http://", "http://a/b"] {
            assert!(server_addr(url).is_err(), "{url}");
        }
    }
}
