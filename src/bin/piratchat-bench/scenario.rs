//! What every scenario shares: the run context, the loop that turns the
//! engine until a condition holds or a deadline passes (with progress on
//! stderr), opening many users, and CPU-time snapshots.

use std::time::{Duration, Instant};

use crate::engine::{Engine, Handler};
use crate::procfs::{self, Proc};
use crate::report::{self, Report};

/// A quiet spell that ends the wait for join frames when a server sends
/// fewer than N(N-1)/2 of them.
const JOIN_QUIET: Duration = Duration::from_secs(1);
/// Longest single wait in the loop, so deadlines and progress stay timely.
const MAX_WAIT: Duration = Duration::from_millis(50);
/// Interval between progress lines on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What a scenario needs besides its flags.
pub struct Ctx {
    /// The server process to sample, when known.
    pub server: Option<Proc>,
    /// Random per-run tag that keeps usernames unique across runs.
    pub run_tag: String,
}

impl Ctx {
    /// A fresh context with a random run tag.
    pub fn new(server: Option<Proc>) -> Self {
        let mut r = [0u8; 4];
        // Without randomness, the pid and time still make names unlikely to clash.
        if getrandom::fill(&mut r).is_err() {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            r = (std::process::id() ^ now.map_or(0, |d| d.subsec_nanos())).to_le_bytes();
        }
        Self {
            server,
            run_tag: r.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// The username of user `i` of batch `batch` (letters and digits only,
    /// at most 1 + 8 + 1 + 3 + 1 + 7 characters).
    pub fn name(&self, batch: usize, i: usize) -> String {
        format!("b{}r{batch}n{i}", self.run_tag)
    }
}

/// A scenario's side of the loop, beyond reacting to frames.
pub trait Scenario: Handler {
    /// Called every turn: sends what is due; returns how long the loop may
    /// sleep before calling again.
    fn tick(&mut self, _eng: &mut Engine) -> Duration {
        MAX_WAIT
    }
    /// One progress line for stderr.
    fn progress(&self, eng: &Engine) -> String;
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The condition held.
    Done,
    /// The deadline passed first.
    Timeout,
    /// A walk failed or a socket closed unexpectedly.
    Broken,
}

/// Turns the engine until `cond` holds, `deadline` passes, or something
/// breaks; prints `label` progress each second. Loop I/O errors are fatal.
pub fn run_until<S: Scenario>(
    eng: &mut Engine,
    s: &mut S,
    label: &str,
    deadline: Instant,
    mut cond: impl FnMut(&Engine, &S) -> bool,
) -> Result<Waited, String> {
    let mut next_progress = Instant::now() + PROGRESS_EVERY;
    loop {
        if eng.stats.failed > 0 || eng.stats.unexpected_closes > 0 {
            return Ok(Waited::Broken);
        }
        if cond(eng, s) {
            return Ok(Waited::Done);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Waited::Timeout);
        }
        if now >= next_progress {
            eprintln!("[{label}] {}", s.progress(eng));
            next_progress = now + PROGRESS_EVERY;
        }
        let wait = s.tick(eng).min(deadline - now).min(MAX_WAIT);
        eng.turn(s, wait).map_err(|e| format!("event loop: {e}"))?;
    }
}

/// Adds users `0..n` of `batch` and opens them all; returns their indices.
pub fn add_and_open(eng: &mut Engine, ctx: &Ctx, batch: usize, n: usize) -> Vec<usize> {
    (0..n)
        .map(|i| {
            let u = eng.add_user(ctx.name(batch, i));
            eng.open(u);
            u
        })
        .collect()
}

/// Opens `n` sockets and waits for the join storm to pass (`joins` reads
/// the scenario's join count); reports setup time and rate. False when
/// setup broke (the report says why).
pub fn open_room<S: Scenario>(
    eng: &mut Engine,
    s: &mut S,
    ctx: &Ctx,
    n: usize,
    r: &mut Report,
    joins: impl Fn(&S) -> u64,
) -> Result<bool, String> {
    let t0 = Instant::now();
    add_and_open(eng, ctx, 0, n);
    let w = run_until(eng, s, "setup", setup_deadline(n), |e, _| {
        e.stats.open_now == n
    })?;
    let secs = t0.elapsed().as_secs_f64();
    r.add("setup_s", report::round2(secs), format!("{secs:.2} s"));
    if w != Waited::Done {
        r.problem(format!(
            "setup: {} of {n} sockets open ({w:?})",
            eng.stats.open_now
        ));
        engine_problems(eng, r);
        return Ok(false);
    }
    r.rate("setup_flows_per_s", n as f64 / secs);
    // Each socket's open announces a join to every socket already
    // connected (event streams neither announce nor hear one).
    let sockets = eng.socket_users().min(n);
    let want = (sockets * sockets.saturating_sub(1) / 2) as u64;
    let (mut last, mut quiet_since) = (0, Instant::now());
    run_until(eng, s, "joins", setup_deadline(n), |_, s| {
        if joins(s) != last {
            (last, quiet_since) = (joins(s), Instant::now());
        }
        joins(s) >= want || quiet_since.elapsed() > JOIN_QUIET
    })?;
    r.count("join_frames", joins(s));
    Ok(true)
}

/// A generous deadline for opening `n` sockets from scratch.
pub fn setup_deadline(n: usize) -> Instant {
    Instant::now() + Duration::from_secs(30) + Duration::from_millis(10 * n as u64)
}

/// Adds the engine's failure counters and messages to the report.
pub fn engine_problems(eng: &Engine, r: &mut Report) {
    let st = &eng.stats;
    if st.failed > 0 {
        r.problem(format!("{} register/login/open walks failed", st.failed));
    }
    if st.unexpected_closes > 0 {
        r.problem(format!(
            "{} sockets closed unexpectedly",
            st.unexpected_closes
        ));
    }
    for e in &st.errors {
        r.problem(e.clone());
    }
}

/// Wall clock and CPU times at one instant.
#[derive(Clone, Copy)]
pub struct CpuSnap {
    wall: Instant,
    me: Option<f64>,
    server: Option<f64>,
    /// Busy CPU seconds of the whole machine (all processes, softirq).
    machine: Option<f64>,
}

impl CpuSnap {
    /// Samples now.
    pub fn take(server: Option<Proc>) -> Self {
        let server = server.and_then(procfs::cpu_seconds);
        Self {
            wall: Instant::now(),
            me: procfs::cpu_seconds(Proc::Me),
            server,
            machine: procfs::machine_busy_seconds(),
        }
    }

    /// CPU seconds of the bench and of the server since `earlier`.
    pub fn cpu_since(&self, earlier: &CpuSnap) -> (Option<f64>, Option<f64>) {
        let d = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
        (d(self.me, earlier.me), d(self.server, earlier.server))
    }

    /// Seconds of wall time since `earlier`.
    pub fn wall_since(&self, earlier: &CpuSnap) -> f64 {
        (self.wall - earlier.wall).as_secs_f64()
    }

    /// Adds wall time, bench and server CPU between `earlier` and `self` to
    /// the report under `prefix`; with `per` units of work (deliveries,
    /// opens) also CPU µs per unit.
    pub fn report_since(
        &self,
        earlier: &CpuSnap,
        r: &mut Report,
        prefix: &str,
        per: Option<(&str, u64)>,
    ) {
        let wall = self.wall_since(earlier);
        r.add(
            &format!("{prefix}wall_s"),
            report::round2(wall),
            format!("{wall:.2} s"),
        );
        let who = [
            ("bench", self.me.zip(earlier.me)),
            ("server", self.server.zip(earlier.server)),
        ];
        for (name, pair) in who {
            let Some((now, then)) = pair else { continue };
            let cpu = now - then;
            let pct = 100.0 * cpu / wall.max(1e-9);
            r.add(
                &format!("{prefix}{name}_cpu_s"),
                report::round2(cpu),
                format!("{cpu:.2} s ({pct:.0}% of one core)"),
            );
            if let Some((unit, n)) = per.filter(|p| p.1 > 0) {
                let us = cpu * 1e6 / n as f64;
                r.add(
                    &format!("{prefix}{name}_cpu_us_per_{unit}"),
                    (us * 1e4).round() / 1e4,
                    format!("{us:.4} µs"),
                );
            }
        }
        self.report_others(earlier, r, prefix, wall);
    }

    /// Adds the machine's busy time beyond bench and server: other
    /// processes (on a shared machine they skew a run) and softirq work,
    /// which the kernel charges to no process.
    fn report_others(&self, earlier: &CpuSnap, r: &mut Report, prefix: &str, wall: f64) {
        let d = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
        let (Some(busy), Some(me)) = (d(self.machine, earlier.machine), d(self.me, earlier.me))
        else {
            return;
        };
        // Per-process times and /proc/stat are sampled differently and may
        // disagree by a few percent; a negative remainder means "none".
        let other = (busy - me - d(self.server, earlier.server).unwrap_or(0.0)).max(0.0);
        let pct = 100.0 * other / wall.max(1e-9);
        let human = format!("{other:.2} s ({pct:.0}% of one core: other processes and softirq)");
        r.add(
            &format!("{prefix}other_cpu_s"),
            report::round2(other),
            human,
        );
    }
}
