//! `fanout`: N clients open sockets, the first S send timestamped messages
//! (closed loop with K in flight each, or a fixed total rate), every client
//! records delivery latency. Phases: setup, join storm, warm-up, measured
//! window, drain (no new sends; wait for stragglers until a deadline).
//!
//! With `--sse N`, N more clients listen on event streams
//! (`GET /api/events`) instead of sockets: every message is expected at
//! each of them too, and their deliveries are counted apart.
//!
//! With `--rooms R`, client i joins room i mod R before opening its
//! socket, and each sender talks in its own room: a message is expected
//! at the other members of that room only.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::args::Args;
use crate::engine::{Engine, Handler, WsTx};
use crate::frames::{self, Incoming};
use crate::hist::Histogram;
use crate::report::Report;
use crate::scenario::{self, CpuSnap, Ctx, Scenario, Waited};

/// A rate-mode sender that falls this many messages behind skips ahead
/// rather than bursting (the bench cannot keep up; the report says so).
const MAX_BEHIND: u64 = 1000;

/// Counters of frames, over the whole run.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    sent: u64,
    /// Deliveries the sent messages must make (their rooms' other members).
    expected: u64,
    acks: u64,
    nacks: u64,
    delivered: u64,
    /// Of `delivered`, the ones that came over an event stream.
    delivered_sse: u64,
    joins: u64,
    leaves: u64,
    foreign: u64,
    other: u64,
    stray_acks: u64,
    send_errors: u64,
    skipped: u64,
}

/// The scenario's state, also the engine's frame handler.
struct Fanout {
    size: usize,
    senders: usize,
    closed_loop: bool,
    sending: bool,
    epoch: Instant,
    seq: u64,
    /// The frame being sent (reused).
    buf: String,
    /// Room names (empty: general).
    rooms: Vec<String>,
    /// How many others each client's message reaches.
    peers: Vec<u64>,
    /// Send times of unacknowledged messages, per sender (acks are FIFO).
    outstanding: Vec<VecDeque<u64>>,
    /// Rate mode: when each sender sends next, and the spacing.
    next_due: Vec<u64>,
    interval_ns: u64,
    /// Messages sent inside `[start, end)` are the measured ones.
    window: (u64, u64),
    c: Counts,
    nack_codes: Vec<String>,
    ack_lat: Histogram,
    delivery_lat: Histogram,
    /// Delivery latency over event streams alone.
    sse_lat: Histogram,
}

impl Fanout {
    fn new(args: &Args, epoch: Instant, rooms: Vec<String>) -> Self {
        let interval_ns = args
            .rate
            .map_or(0, |r| (1e9 * args.senders as f64 / r) as u64);
        let n = args.clients;
        let peers = (0..n)
            .map(|u| match rooms.len() {
                // Every other socket, and every stream.
                0 => n as u64 - 1 + args.sse as u64,
                r => (n - u % r).div_ceil(r) as u64 - 1,
            })
            .collect();
        Self {
            rooms,
            peers,
            size: args.size,
            senders: args.senders,
            closed_loop: args.rate.is_none(),
            sending: false,
            epoch,
            seq: 0,
            buf: String::with_capacity(args.size),
            outstanding: vec![VecDeque::new(); args.senders],
            next_due: vec![0; args.senders],
            interval_ns: interval_ns.max(1),
            window: (u64::MAX, u64::MAX),
            c: Counts::default(),
            nack_codes: Vec::new(),
            ack_lat: Histogram::default(),
            delivery_lat: Histogram::default(),
            sse_lat: Histogram::default(),
        }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn measured(&self, t_ns: u64) -> bool {
        t_ns >= self.window.0 && t_ns < self.window.1
    }

    /// Writes sender `u`'s next message, stamped now, into `self.buf`;
    /// returns the stamp.
    fn next_frame(&mut self, u: usize) -> u64 {
        self.seq += 1;
        let now = self.now_ns();
        let room = (!self.rooms.is_empty()).then(|| self.rooms[u % self.rooms.len()].as_str());
        frames::chat_frame(&mut self.buf, self.seq, now, self.size, room);
        now
    }

    /// Bookkeeping for one send attempt by sender `u` stamped `t`.
    fn sent(&mut self, u: usize, t: u64, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.c.sent += 1;
                self.c.expected += self.peers[u];
                self.outstanding[u].push_back(t);
            }
            Err(_) => self.c.send_errors += 1,
        }
    }

    /// An ack (`ok`) or error ack arrived on `u`'s socket.
    fn on_ack(&mut self, u: usize, ws: &mut WsTx, now: u64, ok: bool) {
        let Some(t) = self.outstanding.get_mut(u).and_then(VecDeque::pop_front) else {
            self.c.stray_acks += 1;
            return;
        };
        if ok {
            self.c.acks += 1;
            if self.measured(t) {
                self.ack_lat.record(now.saturating_sub(t));
            }
        }
        if self.sending && self.closed_loop {
            let t = self.next_frame(u);
            let result = ws.send_text(&self.buf);
            self.sent(u, t, result);
        }
    }

    /// Starts sending: K per sender in closed loop, or the rate schedule.
    fn start(&mut self, eng: &mut Engine, inflight: usize) {
        self.sending = true;
        let now = self.now_ns();
        for u in 0..self.senders {
            // Spread the senders over one interval so the rate is smooth.
            self.next_due[u] = now + self.interval_ns * u as u64 / self.senders as u64;
            if self.closed_loop {
                for _ in 0..inflight {
                    let t = self.next_frame(u);
                    let result = eng.send(u, &self.buf);
                    self.sent(u, t, result);
                }
            }
        }
    }

    /// Everything sent has been acknowledged and delivered to every other
    /// client of its room.
    fn settled(&self) -> bool {
        let answered = self.c.acks + self.c.nacks + self.c.stray_acks >= self.c.sent;
        answered && self.c.delivered >= self.c.expected
    }
}

impl Handler for Fanout {
    fn on_text(&mut self, u: usize, ws: &mut WsTx, text: &str, now: u64) {
        match frames::classify(text) {
            Incoming::Delivery { t_ns } => {
                self.c.delivered += 1;
                if self.measured(t_ns) {
                    self.delivery_lat.record(now.saturating_sub(t_ns));
                }
            }
            Incoming::Ack => self.on_ack(u, ws, now, true),
            Incoming::Nack(code) => {
                self.c.nacks += 1;
                if self.nack_codes.len() < 5 {
                    self.nack_codes.push(code);
                }
                self.on_ack(u, ws, now, false);
            }
            Incoming::Join => self.c.joins += 1,
            Incoming::Leave => self.c.leaves += 1,
            Incoming::Foreign => self.c.foreign += 1,
            Incoming::Other => self.c.other += 1,
        }
    }

    fn on_event(&mut self, _u: usize, data: &str, now: u64) {
        match frames::classify(data) {
            Incoming::Delivery { t_ns } => {
                self.c.delivered += 1;
                self.c.delivered_sse += 1;
                if self.measured(t_ns) {
                    let lat = now.saturating_sub(t_ns);
                    self.delivery_lat.record(lat);
                    self.sse_lat.record(lat);
                }
            }
            Incoming::Foreign => self.c.foreign += 1,
            _ => self.c.other += 1,
        }
    }
}

impl Scenario for Fanout {
    fn tick(&mut self, eng: &mut Engine) -> Duration {
        if !self.sending || self.closed_loop {
            return Duration::from_millis(50);
        }
        let now = self.now_ns();
        for u in 0..self.senders {
            let behind = now.saturating_sub(self.next_due[u]) / self.interval_ns;
            if behind > MAX_BEHIND {
                self.c.skipped += behind;
                self.next_due[u] += behind * self.interval_ns;
            }
            while self.next_due[u] <= now {
                let t = self.next_frame(u);
                let result = eng.send(u, &self.buf);
                self.sent(u, t, result);
                self.next_due[u] += self.interval_ns;
            }
        }
        let next = self.next_due.iter().min().copied().unwrap_or(now);
        Duration::from_nanos(next.saturating_sub(now))
    }

    fn progress(&self, eng: &Engine) -> String {
        let c = &self.c;
        format!(
            "open {} sent {} acks {} delivered {} joins {}",
            eng.stats.open_now, c.sent, c.acks, c.delivered, c.joins
        )
    }
}

/// Runs the scenario and reports.
pub fn run(args: &Args, eng: &mut Engine, ctx: &Ctx) -> Result<Report, String> {
    let n = args.clients;
    let rooms: Vec<String> = (0..args.rooms)
        .map(|k| format!("bench{}-{k}", ctx.run_tag))
        .collect();
    for u in 0..n {
        if !rooms.is_empty() {
            // Users are added in order by `open_room`, so user u is index u.
            eng.plan_room(u, rooms[u % rooms.len()].clone());
        }
    }
    let mut s = Fanout::new(args, Instant::now(), rooms);
    let mut r = Report::default();
    r.add("scenario", "fanout", "fanout");
    r.count("clients", n as u64);
    r.count("sse_clients", args.sse as u64);
    r.count("rooms", args.rooms as u64);
    r.count("senders", args.senders as u64);
    match args.rate {
        Some(rate) => r.rate("target_rate", rate),
        None => r.count("inflight_per_sender", args.inflight as u64),
    }
    r.count("message_bytes", args.size as u64);

    // Streams after the sockets: the senders are sockets 0..S.
    eng.streams_from(n);
    let all = n + args.sse;
    if !scenario::open_room(eng, &mut s, ctx, all, &mut r, |s: &Fanout| s.c.joins)? {
        return Ok(r);
    }
    let window = measure(args, eng, &mut s, ctx)?;
    let drained = drain(args, eng, &mut s)?;
    results(&s, eng, &window, drained, &mut r);
    Ok(r)
}

/// CPU and counters at both ends of the measured window.
struct Window {
    start: CpuSnap,
    end: CpuSnap,
    before: Counts,
    after: Counts,
}

/// Warm-up, then the measured window.
fn measure(args: &Args, eng: &mut Engine, s: &mut Fanout, ctx: &Ctx) -> Result<Window, String> {
    s.start(eng, args.inflight);
    let never = |_: &Engine, _: &Fanout| false;
    scenario::run_until(eng, s, "warmup", Instant::now() + args.warmup, never)?;
    let start = CpuSnap::take(ctx.server);
    let before = s.c;
    s.window = (s.now_ns(), u64::MAX);
    scenario::run_until(eng, s, "measure", Instant::now() + args.duration, never)?;
    s.window.1 = s.now_ns();
    let end = CpuSnap::take(ctx.server);
    Ok(Window {
        start,
        end,
        before,
        after: s.c,
    })
}

/// Stops sending and waits for every ack and delivery; true when all came.
fn drain(args: &Args, eng: &mut Engine, s: &mut Fanout) -> Result<bool, String> {
    s.sending = false;
    let deadline = Instant::now() + args.drain;
    let w = scenario::run_until(eng, s, "drain", deadline, |_, s| s.settled())?;
    Ok(w == Waited::Done)
}

/// Fills the report and its problems.
fn results(s: &Fanout, eng: &Engine, w: &Window, drained: bool, r: &mut Report) {
    let c = &s.c;
    let expected = c.expected;
    r.count("sent", c.sent);
    r.count("acks", c.acks);
    r.count("error_acks", c.nacks);
    r.count("deliveries_expected", expected);
    r.count("deliveries_received", c.delivered);
    r.count("lost", expected.saturating_sub(c.delivered));
    let secs = w.end.wall_since(&w.start);
    let delivered = w.after.delivered - w.before.delivered;
    r.rate("sent_per_s", (w.after.sent - w.before.sent) as f64 / secs);
    r.rate("deliveries_per_s", delivered as f64 / secs);
    if s.sse_lat.count() > 0 || w.after.delivered_sse > 0 {
        let sse = w.after.delivered_sse - w.before.delivered_sse;
        r.rate("ws_deliveries_per_s", (delivered - sse) as f64 / secs);
        r.rate("sse_deliveries_per_s", sse as f64 / secs);
        r.latency("sse_delivery_p50_us", s.sse_lat.quantile(0.5));
        r.latency("sse_delivery_p99_us", s.sse_lat.quantile(0.99));
    }
    for (name, h) in [("ack", &s.ack_lat), ("delivery", &s.delivery_lat)] {
        r.count(&format!("{name}_samples"), h.count());
        r.latency(&format!("{name}_mean_us"), h.mean());
        for (q, label) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p999")] {
            r.latency(&format!("{name}_{label}_us"), h.quantile(q));
        }
        r.latency(&format!("{name}_max_us"), h.max());
    }
    w.end
        .report_since(&w.start, r, "window_", Some(("delivery", delivered)));
    fanout_problems(s, eng, drained, r);
}

/// Everything that makes a fanout run fail.
fn fanout_problems(s: &Fanout, eng: &Engine, drained: bool, r: &mut Report) {
    let c = &s.c;
    let expected = c.expected;
    if !drained || c.delivered != expected {
        r.problem(format!(
            "deliveries: expected {expected}, received {}",
            c.delivered
        ));
    }
    if c.nacks > 0 {
        r.problem(format!("{} error acks, e.g. {:?}", c.nacks, s.nack_codes));
    }
    if c.acks + c.nacks != c.sent {
        r.problem(format!(
            "{} messages sent, {} answered",
            c.sent,
            c.acks + c.nacks
        ));
    }
    if c.stray_acks > 0 || c.send_errors > 0 {
        r.problem(format!(
            "{} acks without a message, {} failed sends",
            c.stray_acks, c.send_errors
        ));
    }
    if c.skipped > 0 {
        r.problem(format!(
            "rate mode fell behind and skipped {} sends (the bench is the bottleneck)",
            c.skipped
        ));
    }
    if c.leaves > 0 || c.other > 0 || c.foreign > 0 {
        let (l, o, f) = (c.leaves, c.other, c.foreign);
        eprintln!(
            "note: {l} leave frames, {o} unrecognised frames, {f} messages from other clients"
        );
    }
    scenario::engine_problems(eng, r);
}
