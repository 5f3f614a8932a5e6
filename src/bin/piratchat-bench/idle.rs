//! `idle`: what one more idle user costs, the way an operator sees it.
//!
//! N users register and log in first (not measured). Then their sockets
//! open in batches, each batch waiting until every join it caused has
//! reached every socket, so each open is announced to all the sockets
//! before it: the join storm of a chat filling up. The server's CPU over
//! that ramp and each open's latency (upgrade request to 101) are
//! reported. Resident memory is sampled at half and at all N sockets,
//! each time once settled and once more after a round of chat (S senders,
//! one message each, delivered to everyone); the growth over the second
//! half, divided by its sockets, is the memory per socket without the
//! fixed costs of the first sockets (tables, SQLite's cache, the
//! allocator's arenas). Then the sockets are held, with memory sampled
//! every `--sample`.

use std::time::{Duration, Instant};

use crate::args::Args;
use crate::engine::{Engine, Handler, WsTx};
use crate::frames::{self, Incoming};
use crate::procfs;
use crate::report::{self, Report};
use crate::scenario::{self, CpuSnap, Ctx, Scenario, Waited};

/// Time for the server to finish a storm and free transient buffers
/// before memory is sampled.
const SETTLE: Duration = Duration::from_secs(1);

/// A quiet spell that ends a wait for frames a server may not send.
const QUIET: Duration = Duration::from_secs(2);

/// Frame counts of the sockets.
#[derive(Default)]
struct Idle {
    joins: u64,
    deliveries: u64,
    other: u64,
}

impl Handler for Idle {
    fn on_text(&mut self, _u: usize, _ws: &mut WsTx, text: &str, _now: u64) {
        match frames::classify(text) {
            Incoming::Join => self.joins += 1,
            Incoming::Delivery { .. } => self.deliveries += 1,
            Incoming::Ack => {}
            _ => self.other += 1,
        }
    }
}

impl Scenario for Idle {
    fn progress(&self, eng: &Engine) -> String {
        format!(
            "prepared {} open {} joins {} deliveries {}",
            eng.stats.prepared, eng.stats.open_now, self.joins, self.deliveries
        )
    }
}

/// Resident memory of the server, once settled and after a chat round.
#[derive(Clone, Copy, Default)]
struct Sample {
    idle: Option<u64>,
    chat: Option<u64>,
}

/// Runs the scenario and reports.
pub fn run(args: &Args, eng: &mut Engine, ctx: &Ctx) -> Result<Report, String> {
    let n = args.clients;
    let half = n / 2;
    let mut s = Idle::default();
    let mut r = Report::default();
    r.add("scenario", "idle", "idle");
    r.count("clients", n as u64);
    let rss = || ctx.server.and_then(procfs::rss_bytes);
    let server_before = rss();

    // Users and sessions first, so that the ramp is the sockets alone.
    let t0 = Instant::now();
    let users: Vec<usize> = (0..n).map(|i| eng.add_user(ctx.name(0, i))).collect();
    for &u in &users {
        eng.prepare(u);
    }
    let w = scenario::run_until(eng, &mut s, "login", scenario::setup_deadline(n), |e, _| {
        e.stats.prepared == n as u64
    })?;
    if w != Waited::Done {
        r.problem(format!(
            "login: {} of {n} users ready ({w:?})",
            eng.stats.prepared
        ));
        scenario::engine_problems(eng, &mut r);
        return Ok(r);
    }
    let secs = t0.elapsed().as_secs_f64();
    r.add("login_s", report::round2(secs), format!("{secs:.2} s"));

    let (mut ramp_wall, mut ramp_cpu) = (0.0, Some(0.0));
    let mut samples = [Sample::default(); 2];
    let mut opened = 0;
    for (i, target) in [half, n].into_iter().enumerate() {
        while opened < target {
            let end = (opened + args.batch).min(target);
            let start = CpuSnap::take(ctx.server);
            if !open_batch(eng, &mut s, &users[opened..end], end, &mut r)? {
                return Ok(r);
            }
            let done = CpuSnap::take(ctx.server);
            ramp_wall += done.wall_since(&start);
            ramp_cpu = ramp_cpu.zip(done.cpu_since(&start).1).map(|(a, b)| a + b);
            opened = end;
        }
        settle(eng, &mut s)?;
        samples[i].idle = rss();
        if !chat_round(
            eng,
            &mut s,
            &users[..args.senders.min(target)],
            target,
            &mut r,
        )? {
            return Ok(r);
        }
        settle(eng, &mut s)?;
        samples[i].chat = rss();
    }

    r.count("join_frames", s.joins);
    r.add(
        "ramp_wall_s",
        report::round2(ramp_wall),
        format!("{ramp_wall:.2} s"),
    );
    if let Some(cpu) = ramp_cpu {
        let human = format!("{cpu:.2} s ({:.0}% of one core)", 100.0 * cpu / ramp_wall);
        r.add("ramp_server_cpu_s", report::round2(cpu), human);
    }
    let lat = &eng.stats.open_latency;
    r.latency("open_p50_us", lat.quantile(0.5));
    r.latency("open_p99_us", lat.quantile(0.99));
    memory(&mut r, n, server_before, samples);

    hold(args, eng, &mut s, ctx, &mut r)?;
    if eng.stats.open_now != n {
        r.problem(format!(
            "{} of {n} sockets still open after the hold",
            eng.stats.open_now
        ));
    }
    if s.other > 0 {
        r.problem(format!("{} unexpected frames on idle sockets", s.other));
    }
    scenario::engine_problems(eng, &mut r);
    Ok(r)
}

/// Opens `batch` and waits until all `open` sockets are up and every join
/// they caused has arrived (or the joins stop coming: a server may not
/// announce). False when setup broke (the report says why).
fn open_batch(
    eng: &mut Engine,
    s: &mut Idle,
    batch: &[usize],
    open: usize,
    r: &mut Report,
) -> Result<bool, String> {
    for &u in batch {
        eng.open(u);
    }
    let w = scenario::run_until(
        eng,
        s,
        "ramp",
        scenario::setup_deadline(batch.len()),
        |e, _| e.stats.open_now == open,
    )?;
    if w != Waited::Done {
        r.problem(format!(
            "ramp: {} of {open} sockets open ({w:?})",
            eng.stats.open_now
        ));
        scenario::engine_problems(eng, r);
        return Ok(false);
    }
    // Each open announces a join to everyone already connected.
    let want = (open * open.saturating_sub(1) / 2) as u64;
    wait_for(eng, s, "joins", want, |s| s.joins)?;
    Ok(true)
}

/// One message from each of `senders`, delivered to the `n - 1` others.
fn chat_round(
    eng: &mut Engine,
    s: &mut Idle,
    senders: &[usize],
    n: usize,
    r: &mut Report,
) -> Result<bool, String> {
    let mut text = String::new();
    let before = s.deliveries;
    for (seq, &u) in senders.iter().enumerate() {
        frames::chat_frame(&mut text, seq as u64, eng.now_ns(), 100, None);
        if let Err(e) = eng.send(u, &text) {
            r.problem(format!("chat round: {e}"));
            return Ok(false);
        }
    }
    let want = before + (senders.len() * (n - 1)) as u64;
    if wait_for(eng, s, "chat", want, |s| s.deliveries)? < want {
        r.problem(format!(
            "chat round: {} of {} deliveries",
            s.deliveries - before,
            want - before
        ));
        return Ok(false);
    }
    Ok(true)
}

/// Turns the engine until `count` reaches `want` or stays put for
/// [`QUIET`]; returns the count.
fn wait_for(
    eng: &mut Engine,
    s: &mut Idle,
    label: &str,
    want: u64,
    count: impl Fn(&Idle) -> u64,
) -> Result<u64, String> {
    let (mut last, mut quiet_since) = (count(s), Instant::now());
    let deadline = scenario::setup_deadline(eng.stats.open_now);
    scenario::run_until(eng, s, label, deadline, |_, s| {
        if count(s) != last {
            (last, quiet_since) = (count(s), Instant::now());
        }
        count(s) >= want || quiet_since.elapsed() > QUIET
    })?;
    Ok(count(s))
}

/// Lets the server go quiet before a memory sample.
fn settle(eng: &mut Engine, s: &mut Idle) -> Result<(), String> {
    let never = |_: &Engine, _: &Idle| false;
    scenario::run_until(eng, s, "settle", Instant::now() + SETTLE, never)?;
    Ok(())
}

/// Holds the sockets for the window, sampling the server's memory.
fn hold(
    args: &Args,
    eng: &mut Engine,
    s: &mut Idle,
    ctx: &Ctx,
    r: &mut Report,
) -> Result<(), String> {
    let start = CpuSnap::take(ctx.server);
    let end = Instant::now() + args.duration;
    let mut rss = Vec::new();
    loop {
        let next = (Instant::now() + args.sample).min(end);
        let never = |_: &Engine, _: &Idle| false;
        scenario::run_until(eng, s, "hold", next, never)?;
        if let Some(b) = ctx.server.and_then(procfs::rss_bytes) {
            rss.push(b);
        }
        if Instant::now() >= end {
            break;
        }
    }
    CpuSnap::take(ctx.server).report_since(&start, r, "hold_", None);
    if !rss.is_empty() {
        let human = rss
            .iter()
            .map(|&b| report::bytes(b as f64))
            .collect::<Vec<_>>()
            .join(", ");
        r.add("hold_rss_bytes", rss, human);
    }
    Ok(())
}

/// Reports the server's resident memory at each sample and per socket:
/// over all N sockets from the start (users and sessions included), and
/// over the second half, settled and after chat.
fn memory(r: &mut Report, n: usize, before: Option<u64>, samples: [Sample; 2]) {
    let [half, full] = samples;
    let named = [
        ("server_rss_before_bytes", before),
        ("server_rss_half_bytes", half.idle),
        ("server_rss_after_bytes", full.idle),
        ("server_rss_half_chat_bytes", half.chat),
        ("server_rss_after_chat_bytes", full.chat),
    ];
    for (key, v) in named {
        if let Some(b) = v {
            r.add(key, b, report::bytes(b as f64));
        }
    }
    let per = |from: Option<u64>, to: Option<u64>, sockets: usize| {
        from.zip(to)
            .map(|(a, b)| (b as f64 - a as f64) / sockets.max(1) as f64)
    };
    let second = n - n / 2;
    let rows = [
        ("server_bytes_per_socket", per(before, full.idle, n)),
        (
            "server_bytes_per_socket_second_half",
            per(half.idle, full.idle, second),
        ),
        (
            "server_bytes_per_socket_after_chat",
            per(half.chat, full.chat, second),
        ),
    ];
    for (key, b) in rows {
        if let Some(b) = b {
            r.add(key, b.round(), report::bytes(b));
        }
    }
}
