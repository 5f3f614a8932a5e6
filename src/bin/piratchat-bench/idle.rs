//! `idle`: N authenticated sockets held open for the window. With a server
//! pid, reads its resident memory before setup and after the sockets have
//! settled, and reports bytes per socket (user, session and connection
//! state together: what one more idle user costs).

use std::time::{Duration, Instant};

use crate::args::Args;
use crate::engine::{Engine, Handler, WsTx};
use crate::frames::{self, Incoming};
use crate::procfs::{self, Proc};
use crate::report::{self, Report};
use crate::scenario::{self, CpuSnap, Ctx, Scenario};

/// Time for the server to finish the join storm and free transient buffers
/// before memory is sampled.
const SETTLE: Duration = Duration::from_secs(1);

/// Frame counts of idle sockets (joins from the setup, nothing else expected).
#[derive(Default)]
struct Idle {
    joins: u64,
    other: u64,
}

impl Handler for Idle {
    fn on_text(&mut self, _u: usize, _ws: &mut WsTx, text: &str, _now: u64) {
        match frames::classify(text) {
            Incoming::Join => self.joins += 1,
            _ => self.other += 1,
        }
    }
}

impl Scenario for Idle {
    fn progress(&self, eng: &Engine) -> String {
        format!("open {} joins {}", eng.stats.open_now, self.joins)
    }
}

/// Runs the scenario and reports.
pub fn run(args: &Args, eng: &mut Engine, ctx: &Ctx) -> Result<Report, String> {
    let n = args.clients;
    let mut s = Idle::default();
    let mut r = Report::default();
    r.add("scenario", "idle", "idle");
    r.count("clients", n as u64);
    let rss = |p: Option<Proc>| p.and_then(procfs::rss_bytes);
    let (server_before, me_before) = (rss(ctx.server), rss(Some(Proc::Me)));

    if !scenario::open_room(eng, &mut s, ctx, n, &mut r, |s: &Idle| s.joins)? {
        return Ok(r);
    }
    let never = |_: &Engine, _: &Idle| false;
    scenario::run_until(eng, &mut s, "settle", Instant::now() + SETTLE, never)?;

    memory(
        &mut r,
        n,
        (server_before, rss(ctx.server)),
        (me_before, rss(Some(Proc::Me))),
    );

    let start = CpuSnap::take(ctx.server);
    scenario::run_until(eng, &mut s, "hold", Instant::now() + args.duration, never)?;
    CpuSnap::take(ctx.server).report_since(&start, &mut r, "hold_", None);
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

/// Reports resident memory (before, after) of the server and of the bench,
/// per socket.
fn memory(
    r: &mut Report,
    n: usize,
    server: (Option<u64>, Option<u64>),
    me: (Option<u64>, Option<u64>),
) {
    if let (Some(before), Some(after)) = server {
        r.add(
            "server_rss_before_bytes",
            before,
            report::bytes(before as f64),
        );
        r.add("server_rss_after_bytes", after, report::bytes(after as f64));
    }
    let per = |(b, a): (Option<u64>, Option<u64>)| {
        a.zip(b).map(|(a, b)| (a as f64 - b as f64) / n as f64)
    };
    if let Some(b) = per(server) {
        r.add("server_bytes_per_socket", b.round(), report::bytes(b));
    }
    if let Some(b) = per(me) {
        r.add("bench_bytes_per_socket", b.round(), report::bytes(b));
    }
}
