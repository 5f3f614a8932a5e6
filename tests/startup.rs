//! Start-up and the command line: help, version, and one-line errors with
//! exit code 2.

mod util;

use std::process::Command;
use util::{Server, TempDir};

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_piratchat"))
        .args(args)
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.code(), text(out.stdout), text(out.stderr))
}

#[test]
fn help_and_version() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    for flag in [
        "--listen",
        "PIRATCHAT_LISTEN",
        "--db",
        "--session-ttl",
        "--trusted-proxies",
        "--max-connections",
    ] {
        assert!(out.contains(flag), "--help lacks {flag}");
    }
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("piratchat "), "{out}");
}

#[test]
fn bad_settings_fail_with_one_line_and_code_2() {
    let dir = TempDir::new();
    let db = dir.0.join("x.db");
    let db = db.to_str().unwrap();
    let cases: &[&[&str]] = &[
        &["--listen", "nonsense"],
        &["--session-ttl", "-1"],
        &["--max-connections", "0"],
        &["--no-such-flag"],
        &["--db", "/nonexistent-dir/sub/x.db"],
        // Issue 11 #9: accepted once, then a panic (exit 101) on the first
        // request, 3 GB for one request, and a resume that never resyncs.
        &["--max-headers", "18446744073709551615"],
        &["--max-headers", "100000000"],
        &["--resume-max", "18446744073709551615"],
        &["--max-body-bytes", "4096MiB"],
    ];
    for args in cases {
        let mut all = vec!["--db", db];
        all.extend_from_slice(args);
        let (code, _, err) = run(&all);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        if args[0] != "--db" && args[0] != "--no-such-flag" {
            assert!(err.contains(args[0]), "names the flag: {err}");
        }
    }
}

/// Issue 11 #9: `--help` shows each number's range.
#[test]
fn help_shows_ranges() {
    let (_, out, _) = run(&["--help"]);
    let row = out.lines().find(|l| l.contains("--max-headers")).unwrap();
    assert!(row.ends_with("default 64, 1 to 1024]"), "{row}");
}

#[test]
fn port_in_use_fails_with_code_2() {
    let s = Server::start(&[]);
    let dir = TempDir::new();
    let db = dir.0.join("y.db");
    let addr = s.addr.to_string();
    let (code, _, err) = run(&["--listen", &addr, "--db", db.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&addr), "{err}");
}

#[test]
fn environment_variables_are_settings() {
    let dir = TempDir::new();
    let out = Command::new(env!("CARGO_BIN_EXE_piratchat"))
        .env("PIRATCHAT_LISTEN", "not an address")
        .env("PIRATCHAT_DB", dir.0.join("z.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PIRATCHAT_LISTEN"));
}

/// Issue 11 #11: `piratchat --help | head -1` panicked (exit 101 and a
/// backtrace) when the reader had gone. A shell waits on stdin until the
/// test has closed the read end of the stdout pipe, then runs the binary,
/// so its write always meets a closed pipe.
#[test]
fn help_and_version_on_a_closed_pipe_do_not_panic() {
    use std::io::Write;
    use std::process::Stdio;
    for flag in ["--help", "--version"] {
        let mut child = Command::new("sh")
            .args(["-c", "read go; exec \"$0\" \"$1\""])
            .arg(env!("CARGO_BIN_EXE_piratchat"))
            .arg(flag)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{flag}: {err}");
        assert!(!err.contains("panicked"), "{flag}: {err}");
    }
}

/// `--listen 7778` and `--listen :7778` were refused: a bare port listens
/// on every IPv4 address, `localhost:PORT` on 127.0.0.1.
#[test]
fn listen_takes_a_bare_port_and_localhost() {
    for (listen, host) in [
        ("0", "0.0.0.0:"),
        (":0", "0.0.0.0:"),
        ("localhost:0", "127.0.0.1:"),
    ] {
        let mut s = Server::start(&["--listen", listen]);
        assert!(s.addr.to_string().starts_with(host), "{listen}: {}", s.addr);
        s.addr = ([127, 0, 0, 1], s.addr.port()).into();
        assert_eq!(s.get("/healthz", None).status, 200, "{listen}");
    }
}
