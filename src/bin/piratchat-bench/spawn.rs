//! `--spawn`: run our server binary as a child on a free loopback port, with
//! a temporary database and the rate limits off, optionally pinned to a CPU;
//! stop it with SIGTERM at the end and hand back its stderr.

use std::fs::{self, File};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to accept its first connection.
const READY_DEADLINE: Duration = Duration::from_secs(15);
/// How long a SIGTERM'd server may take before it is killed (its own
/// shutdown grace is 5 s by default).
const STOP_DEADLINE: Duration = Duration::from_secs(8);

/// A running server child; killed on drop if `stop` was not called.
pub struct Spawned {
    child: Child,
    /// `127.0.0.1:<port>` it listens on.
    pub addr: String,
    dir: PathBuf,
    log: PathBuf,
}

/// What `stop` saw.
pub struct Stopped {
    /// Exit status, `None` when it had to be killed.
    pub status: Option<ExitStatus>,
    /// The server's stderr (its log).
    pub log: String,
}

/// A loopback port nobody listens on right now. The port is free again
/// when this returns; the server binds it a moment later (a tiny race that
/// the readiness check turns into a clear error).
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A fresh private directory for the database and the log.
fn temp_dir() -> std::io::Result<PathBuf> {
    let mut r = [0u8; 6];
    getrandom::fill(&mut r).map_err(std::io::Error::other)?;
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join(format!("piratchat-bench-{}-{hex}", std::process::id()));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// True when `taskset` is on the PATH.
pub fn have_taskset() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Starts `binary` and waits until it accepts connections.
pub fn spawn(binary: &Path, cpu: Option<usize>, extra: &[String]) -> Result<Spawned, String> {
    let port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let dir = temp_dir().map_err(|e| format!("temp dir: {e}"))?;
    let log = dir.join("server.log");
    let stderr = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let addr = format!("127.0.0.1:{port}");
    let db = dir.join("bench.db");
    let mut cmd = command(binary, cpu, &addr, &db);
    cmd.args(extra);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn();
    let child = child.map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let mut s = Spawned {
        child,
        addr,
        dir,
        log,
    };
    s.wait_ready()?;
    Ok(s)
}

/// The server command line: limits off, quiet log, pinned via taskset.
fn command(binary: &Path, cpu: Option<usize>, addr: &str, db: &Path) -> Command {
    let mut cmd = match cpu {
        // taskset execs the server, so the child's pid is the server's.
        Some(n) if have_taskset() => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(n.to_string()).arg(binary);
            c
        }
        Some(_) => {
            eprintln!("warning: taskset not found; --cpu ignored");
            Command::new(binary)
        }
        None => Command::new(binary),
    };
    cmd.args(["--listen", addr, "--db"]).arg(db);
    cmd.args([
        "--register-limit",
        "0",
        "--login-fail-limit",
        "0",
        "--chat-burst",
        "0",
    ]);
    // Below our own open-file limit (the server inherits it), so the
    // server does not have to lower it and warn.
    let fds = crate::procfs::open_files_soft().unwrap_or(u64::MAX);
    let max_conns = fds.saturating_sub(128).clamp(1, 20_000).to_string();
    cmd.args(["--max-connections", &max_conns, "--log-level", "warn"]);
    cmd
}

impl Spawned {
    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls with a deadline until a TCP connect succeeds.
    fn wait_ready(&mut self) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < READY_DEADLINE {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!("server exited at start ({status}):\n{log}"));
            }
            if TcpStream::connect(&self.addr).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "server did not accept on {} within {READY_DEADLINE:?}",
            self.addr
        ))
    }

    /// Sends SIGTERM (graceful shutdown), waits, kills if it hangs, and
    /// removes the temporary directory.
    pub fn stop(mut self) -> Stopped {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let start = Instant::now();
        let mut status = None;
        while start.elapsed() < STOP_DEADLINE {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        Stopped { status, log }
        // Drop kills a server that is still running and removes the dir.
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Pins this process to `cpu` with `taskset -p`.
pub fn pin_self(cpu: usize) -> Result<(), String> {
    let out = Command::new("taskset")
        .args([
            "-p",
            "-c",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("taskset: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "taskset: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
