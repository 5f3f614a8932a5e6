//! `piratchat-bench`: a load generator for Piratchat-compatible servers.
//!
//! Single-threaded on its own `mio` loop, speaking the public protocol over
//! real sockets (HTTP/1.1 register and login, WebSocket chat), so it measures
//! any compatible server by URL, ours or the original. See `args::USAGE`.
//!
//! Pinning: `--spawn PATH --cpu 0` pins the server; `--bench-cpu 1` pins the
//! bench (via `taskset -p`, or run it as `taskset -c 1 piratchat-bench …`).
#![forbid(unsafe_code)]

mod args;
mod engine;
mod fanout;
mod frames;
mod hist;
mod http;
mod idle;
mod procfs;
mod report;
mod scenario;
mod spawn;
mod sse;
mod upgrades;
mod ws;
mod wsframe;

use std::io::Write;
use std::process::ExitCode;

use args::{Args, ArgsError, Scenario};
use procfs::Proc;
use report::Report;
use scenario::Ctx;

/// File descriptors the bench needs besides one per client.
const SPARE_FDS: u64 = 64;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match args::parse(&argv) {
        Ok(a) => a,
        Err(ArgsError::Help) => {
            // `print!` panics on a closed pipe (`--help | head -1`).
            let _ = write!(std::io::stdout().lock(), "{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(ArgsError::Bad(msg)) => {
            eprintln!("piratchat-bench: {msg}");
            return ExitCode::from(2);
        }
    };
    if let Err(msg) = preflight(&args) {
        eprintln!("piratchat-bench: {msg}");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(report) => finish(&args, &report),
        Err(msg) => {
            eprintln!("piratchat-bench: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Checks that the run can work before starting it: the open-file limit
/// (which the bench cannot raise: that needs a raw setrlimit call) and CPU pinning.
fn preflight(args: &Args) -> Result<(), String> {
    let need = (args.clients + args.sse) as u64 + args.parallel as u64 + SPARE_FDS;
    if let Some(soft) = procfs::open_files_soft().filter(|&s| s < need) {
        return Err(format!(
            "--clients {} needs about {need} open files but the limit is {soft}; \
             run `ulimit -n 65536` in this shell first (a spawned server inherits it)",
            args.clients
        ));
    }
    if let Some(cpu) = args.bench_cpu {
        spawn::pin_self(cpu)?;
    }
    Ok(())
}

/// Starts the server if asked, runs the scenario, stops the server.
fn run(args: &Args) -> Result<Report, String> {
    let spawned = match &args.spawn {
        Some(path) => Some(spawn::spawn(path, args.cpu, &args.server_args)?),
        None => None,
    };
    let addr = spawned
        .as_ref()
        .map_or(args.addr.clone(), |s| s.addr.clone());
    let pid = spawned.as_ref().map(spawn::Spawned::pid).or(args.pid);
    let ctx = Ctx::new(pid.map(Proc::Pid));
    eprintln!(
        "[bench] {:?} against {addr} (server pid {pid:?})",
        args.scenario
    );
    let mut eng = engine::Engine::new(&addr, args.parallel, args.clients)
        .map_err(|e| format!("{addr}: {e}"))?;
    let result = match args.scenario {
        Scenario::Fanout => fanout::run(args, &mut eng, &ctx),
        Scenario::Idle => idle::run(args, &mut eng, &ctx),
        Scenario::Upgrades => upgrades::run(args, &mut eng, &ctx),
    };
    // Close our sockets before stopping the server, so its shutdown sees
    // only its own work.
    drop(eng);
    let mut report = result?;
    if let Some(s) = spawned {
        server_exit(s.stop(), &mut report);
    }
    Ok(report)
}

/// Adds the spawned server's exit and warnings to the report.
fn server_exit(stopped: spawn::Stopped, r: &mut Report) {
    match stopped.status {
        Some(st) if st.success() => r.add("server_exit", "ok", "exited 0 on SIGTERM"),
        Some(st) => r.problem(format!("server exited with {st} on SIGTERM")),
        None => r.problem("server did not exit within the deadline after SIGTERM; killed".into()),
    }
    let log = stopped.log.trim();
    if !log.is_empty() {
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(20)..];
        eprintln!(
            "[bench] server stderr ({} lines, last {}):",
            lines.len(),
            tail.len()
        );
        tail.iter().for_each(|l| eprintln!("  {l}"));
    }
}

/// Prints the report and turns its verdict into the exit code.
fn finish(args: &Args, report: &Report) -> ExitCode {
    // A closed stdout must not turn into a panic; the verdict is the exit
    // code either way.
    let mut stdout = std::io::stdout().lock();
    let _ = if args.json {
        writeln!(stdout, "{}", report.json())
    } else {
        write!(stdout, "{}", report.table())
    };
    if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
