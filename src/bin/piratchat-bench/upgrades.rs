//! `upgrades`: how fast the server lets users in. Two measures, each given
//! half the window, each in rounds of M users (M = `--clients`):
//! - full flows: M new users register, log in and open a socket;
//! - reopens: the last round's users, with their sessions, open sockets again.
//!
//! A round is timed from its first connect to its last 101; then every socket
//! is closed with a close handshake (not timed) so the next round starts
//! from an empty room and each open announces a join to those already in.

use std::time::{Duration, Instant};

use crate::args::Args;
use crate::engine::{Engine, Handler, WsTx};
use crate::frames::{self, Incoming};
use crate::report::Report;
use crate::scenario::{self, CpuSnap, Ctx, Scenario, Waited};

/// Deadline for all sockets of a round to finish their close handshake.
const CLOSE_DEADLINE: Duration = Duration::from_secs(30);

/// Frame counts; presence frames are expected, anything else is odd.
#[derive(Default)]
struct Upgrades {
    presence: u64,
    other: u64,
}

impl Handler for Upgrades {
    fn on_text(&mut self, _u: usize, _ws: &mut WsTx, text: &str, _now: u64) {
        match frames::classify(text) {
            Incoming::Join | Incoming::Leave => self.presence += 1,
            _ => self.other += 1,
        }
    }
}

impl Scenario for Upgrades {
    fn progress(&self, eng: &Engine) -> String {
        format!(
            "opened {} open {} closed {}",
            eng.stats.opened, eng.stats.open_now, eng.stats.closed
        )
    }
}

/// Totals of one measure, over the timed (opening) part of its rounds.
#[derive(Default)]
struct Rounds {
    rounds: u64,
    opens: u64,
    open_time: Duration,
    bench_cpu: Option<f64>,
    server_cpu: Option<f64>,
}

impl Rounds {
    /// Adds one timed round.
    fn add(&mut self, opens: usize, took: Duration, cpu: (Option<f64>, Option<f64>)) {
        let sum = |acc: Option<f64>, x: Option<f64>| x.map(|x| acc.unwrap_or(0.0) + x);
        self.rounds += 1;
        self.opens += opens as u64;
        self.open_time += took;
        self.bench_cpu = sum(self.bench_cpu, cpu.0);
        self.server_cpu = sum(self.server_cpu, cpu.1);
    }

    /// Adds the rate and CPU shares to the report under `name`.
    fn report(&self, name: &str, r: &mut Report) {
        let secs = self.open_time.as_secs_f64();
        r.count(&format!("{name}_rounds"), self.rounds);
        r.count(name, self.opens);
        r.rate(&format!("{name}_per_s"), self.opens as f64 / secs);
        for (who, cpu) in [("bench", self.bench_cpu), ("server", self.server_cpu)] {
            if let Some(cpu) = cpu {
                let pct = (100.0 * cpu / secs).round();
                let human = format!("{pct}% of one core while opening");
                r.add(&format!("{name}_{who}_cpu_pct"), pct, human);
            }
        }
    }
}

/// Opens `users`, times it, closes them again. False when something broke.
fn round(
    eng: &mut Engine,
    s: &mut Upgrades,
    ctx: &Ctx,
    users: &[usize],
    label: &str,
    acc: &mut Rounds,
) -> Result<bool, String> {
    let m = users.len();
    let before = CpuSnap::take(ctx.server);
    let t0 = Instant::now();
    users.iter().for_each(|&u| eng.open(u));
    let open = scenario::run_until(eng, s, label, scenario::setup_deadline(m), |e, _| {
        e.stats.open_now == m
    })?;
    let took = t0.elapsed();
    if open != Waited::Done {
        return Ok(false);
    }
    acc.add(m, took, CpuSnap::take(ctx.server).cpu_since(&before));
    users.iter().for_each(|&u| eng.close(u));
    let deadline = Instant::now() + CLOSE_DEADLINE;
    let closed = scenario::run_until(eng, s, "close", deadline, |e, _| e.stats.open_now == 0)?;
    Ok(closed == Waited::Done)
}

/// Runs the scenario and reports.
pub fn run(args: &Args, eng: &mut Engine, ctx: &Ctx) -> Result<Report, String> {
    let m = args.clients;
    let half = args.duration / 2;
    let mut s = Upgrades::default();
    let mut r = Report::default();
    r.add("scenario", "upgrades", "upgrades");
    r.count("clients", m as u64);
    let start = CpuSnap::take(ctx.server);

    let (mut flows, mut batch, mut users) = (Rounds::default(), 0, Vec::new());
    let t0 = Instant::now();
    while flows.rounds == 0 || t0.elapsed() < half {
        users = (0..m).map(|i| eng.add_user(ctx.name(batch, i))).collect();
        batch += 1;
        if !round(eng, &mut s, ctx, &users, "flows", &mut flows)? {
            return Ok(broken(eng, r, "full flows"));
        }
    }
    let mut reopens = Rounds::default();
    let t1 = Instant::now();
    while reopens.rounds == 0 || t1.elapsed() < half {
        if !round(eng, &mut s, ctx, &users, "reopens", &mut reopens)? {
            return Ok(broken(eng, r, "reopens"));
        }
    }
    flows.report("flows", &mut r);
    reopens.report("reopens", &mut r);
    CpuSnap::take(ctx.server).report_since(&start, &mut r, "run_", None);
    r.count("presence_frames", s.presence);
    if s.other > 0 {
        r.problem(format!("{} unexpected frames", s.other));
    }
    scenario::engine_problems(eng, &mut r);
    Ok(r)
}

/// The report of a run that broke during `what`.
fn broken(eng: &Engine, mut r: Report, what: &str) -> Report {
    r.problem(format!(
        "{what}: a round did not complete ({} sockets open)",
        eng.stats.open_now
    ));
    scenario::engine_problems(eng, &mut r);
    r
}
