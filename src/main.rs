//! The `piratchat` binary: settings from flags and environment, the
//! database, the server loop, and exit codes (0 after a clean shutdown, 2
//! for a start-up error). `piratchat admin ...` is the operator's client
//! of a running server instead (see `admin_cli`).

use piratchat::config::{Command, Config, LogLevel};
use piratchat::log::{Logger, escape};
use piratchat::server::Server;
use piratchat::store::Store;
use std::io::{ErrorKind, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("admin") {
        let env = |name: &str| std::env::var(name).ok();
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
        let code = piratchat::admin_cli::run(&args[1..], &env, &mut out, &mut err);
        return ExitCode::from(code as u8);
    }
    let cfg = match Config::parse(&args, &|name| std::env::var(name).ok()) {
        Ok(Command::Run(cfg)) => *cfg,
        Ok(Command::Help(text)) | Ok(Command::Version(text)) => return print_out(&text),
        Err(e) => return start_failed(&e.to_string()),
    };
    let log = Logger::new(cfg.log_level);
    let store = match Store::open(&cfg.db) {
        Ok(s) => s,
        Err(e) => return start_failed(&e.to_string()),
    };
    if store.imported_users() > 0 {
        let n = store.imported_users();
        log.log(
            LogLevel::Info,
            format_args!(
                "imported {n} user{} from the original keys table",
                if n == 1 { "" } else { "s" }
            ),
        );
    }
    let changed = cfg.non_defaults().join(" ");
    let db = cfg.db.display().to_string();
    let server = match Server::bind(cfg, store, log) {
        Ok(s) => s,
        Err(e) => return start_failed(&e.to_string()),
    };
    let addr = server.local_addr();
    log.log(
        LogLevel::Info,
        format_args!("listening on {addr} db={}", escape(&db)),
    );
    if !changed.is_empty() {
        log.log(LogLevel::Info, format_args!("settings: {changed}"));
    }
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log.log(LogLevel::Error, format_args!("event loop failed: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Prints `text` and a newline on stdout. `println!` panics when stdout is
/// a closed pipe (`piratchat --help | head -1`: Rust ignores SIGPIPE, so
/// the write fails with EPIPE); a reader that stopped reading is not an
/// error, any other write failure is exit 1.
fn print_out(text: &str) -> ExitCode {
    match writeln!(std::io::stdout().lock(), "{text}") {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "piratchat: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One line on stderr and exit code 2. A failed write to stderr is
/// dropped (`eprintln!` would panic on a closed pipe); the exit code
/// still says it.
fn start_failed(msg: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "piratchat: {msg}");
    ExitCode::from(2)
}
