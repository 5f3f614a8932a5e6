//! Command-line flags of the bench. Pure (a slice of strings in, `Args` out)
//! so every flag is unit-tested.

use std::path::PathBuf;
use std::time::Duration;

/// The help text; defaults here match `Args::default`.
pub const USAGE: &str = "\
piratchat-bench: load generator for Piratchat-compatible chat servers

USAGE: piratchat-bench [fanout|idle|upgrades] [FLAGS]

SCENARIOS
  fanout    N clients connect; S senders send timestamped messages; every
            client records delivery latency (default)
  idle      N users log in, then open their sockets in batches (every open
            announced to all others), chat one round (S senders, one
            message each), and hold; with --pid/--spawn reports server
            memory per socket over the second half of the sockets, before
            and after the chat, and the CPU of the opening ramp
  upgrades  rounds of M full register->login->open flows, then rounds of
            socket opens (and closes) of M users with existing sessions

FLAGS
  --url URL           server to measure (default http://127.0.0.1:7777)
  --clients N         users / sockets (default 100)
  --senders S         fanout: clients that send (default 10)
  --inflight K        fanout: messages in flight per sender, closed loop (default 4)
  --rooms R           fanout: split the clients into R rooms (client i joins room
                      i mod R before opening its socket); each sender talks in its
                      own room, so a message reaches the room's other members
                      (default 0: everyone in general)
  --sse N             fanout: N more clients that listen on event streams
                      (GET /api/events) instead of WebSockets; deliveries to them
                      are reported apart (sse_*), next to the sockets' (ws_*);
                      not with --rooms (default 0)
  --rate R            fanout: fixed total rate in messages/s instead of closed loop
  --duration SECS     measurement window (default 5)
  --warmup SECS       fanout: sending before the window opens (default 1)
  --size BYTES        fanout: size of each sent JSON frame (default 100, 56..=300)
  --parallel P        connections in setup at once (default 64)
  --batch B           idle: sockets opened per batch; each batch waits for its
                      joins to reach everyone before the next (default 500)
  --sample SECS       idle: resident memory sample interval while holding
                      (default 60)
  --drain SECS        deadline for stragglers after the window (default 10)
  --json              print a one-line JSON summary on stdout instead of the table
  --spawn PATH        start PATH (our piratchat binary) on a free loopback port
                      with a temporary database and the rate limits off
  --cpu N             with --spawn: pin the server to CPU N (taskset)
  --server-arg ARG    with --spawn: one more argument for the server (repeatable),
                      e.g. --server-arg --store-messages=off
  --bench-cpu N       pin the bench itself to CPU N (taskset -p)
  --pid PID           server process to sample for CPU time and memory
  -h, --help          this text

Exit code: 0 on a clean run; 1 when a delivery is lost, an error ack arrives,
a socket closes unexpectedly or setup fails; 2 on bad flags.
";

/// Which load the bench generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Broadcast throughput and latency.
    Fanout,
    /// Memory per idle authenticated socket.
    Idle,
    /// Rate of login flows and socket opens.
    Upgrades,
}

/// Every setting of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    /// Scenario to run.
    pub scenario: Scenario,
    /// `host:port` of the server (ignored with `--spawn`).
    pub addr: String,
    /// Number of users and sockets.
    pub clients: usize,
    /// Fanout: number of sending clients.
    pub senders: usize,
    /// Fanout: closed-loop messages in flight per sender.
    pub inflight: usize,
    /// Fanout: rooms the clients are split into (0: everyone in general).
    pub rooms: usize,
    /// Fanout: event-stream clients besides the `clients` sockets.
    pub sse: usize,
    /// Fanout: total messages per second; `None` is closed loop.
    pub rate: Option<f64>,
    /// Measurement window.
    pub duration: Duration,
    /// Fanout: sending time before the window.
    pub warmup: Duration,
    /// Fanout: bytes per sent frame payload.
    pub size: usize,
    /// Setup connections in flight.
    pub parallel: usize,
    /// Idle: sockets opened per batch.
    pub batch: usize,
    /// Idle: memory sample interval while holding.
    pub sample: Duration,
    /// Deadline for late deliveries after the window.
    pub drain: Duration,
    /// One-line JSON output.
    pub json: bool,
    /// Server binary to start.
    pub spawn: Option<PathBuf>,
    /// CPU for the spawned server.
    pub cpu: Option<usize>,
    /// Extra arguments for the spawned server.
    pub server_args: Vec<String>,
    /// CPU for the bench.
    pub bench_cpu: Option<usize>,
    /// Server process to sample.
    pub pid: Option<u32>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            scenario: Scenario::Fanout,
            addr: "127.0.0.1:7777".into(),
            clients: 100,
            senders: 10,
            inflight: 4,
            rooms: 0,
            sse: 0,
            rate: None,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            size: 100,
            parallel: 64,
            batch: 500,
            sample: Duration::from_secs(60),
            drain: Duration::from_secs(10),
            json: false,
            spawn: None,
            cpu: None,
            bench_cpu: None,
            pid: None,
            server_args: Vec::new(),
        }
    }
}

/// Smallest frame that still holds `{"message":"<seq> <t_ns> "}`.
pub const MIN_SIZE: usize = 56;
/// Largest frame: the server's default limit is 300 characters of text.
pub const MAX_SIZE: usize = 300;

/// Why parsing stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// `-h` / `--help`: print `USAGE`, exit 0.
    Help,
    /// A bad flag or value: print the message, exit 2.
    Bad(String),
}

/// `http://host:port/...` or `ws://host:port` or `host:port` to `host:port`.
pub fn parse_url(url: &str) -> Result<String, String> {
    if url.starts_with("https://") || url.starts_with("wss://") {
        return Err(format!(
            "--url {url}: TLS is not supported; point the bench at the server itself"
        ));
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
        .unwrap_or(url);
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("--url {url}: no host"));
    }
    // A bracketed IPv6 literal has colons of its own; only `]:port` counts.
    let has_port = match host.rfind(']') {
        Some(i) => host[i..].contains(':'),
        None => host.contains(':'),
    };
    Ok(if has_port {
        host.to_string()
    } else {
        format!("{host}:80")
    })
}

/// Parses a value of flag `name`.
fn value<T: std::str::FromStr>(name: &str, v: Option<String>) -> Result<T, ArgsError> {
    let v = v.ok_or_else(|| ArgsError::Bad(format!("{name} needs a value")))?;
    v.parse()
        .map_err(|_| ArgsError::Bad(format!("{name}: bad value {v:?}")))
}

/// Parses seconds (fractions allowed) of flag `name`.
fn seconds(name: &str, v: Option<String>) -> Result<Duration, ArgsError> {
    let s: f64 = value(name, v)?;
    Duration::try_from_secs_f64(s).map_err(|_| ArgsError::Bad(format!("{name}: bad duration {s}")))
}

/// Parses the arguments after the program name.
pub fn parse(argv: &[String]) -> Result<Args, ArgsError> {
    let mut a = Args::default();
    let mut it = argv.iter().flat_map(|s| match s.split_once('=') {
        Some((k, v)) if s.starts_with("--") => vec![k.to_string(), v.to_string()],
        _ => vec![s.clone()],
    });
    while let Some(flag) = it.next() {
        let f = flag.as_str();
        match f {
            "-h" | "--help" => return Err(ArgsError::Help),
            "fanout" => a.scenario = Scenario::Fanout,
            "idle" => a.scenario = Scenario::Idle,
            "upgrades" => a.scenario = Scenario::Upgrades,
            "--url" => {
                a.addr = parse_url(&value::<String>(f, it.next())?).map_err(ArgsError::Bad)?
            }
            "--clients" => a.clients = value(f, it.next())?,
            "--senders" => a.senders = value(f, it.next())?,
            "--inflight" => a.inflight = value(f, it.next())?,
            "--rooms" => a.rooms = value(f, it.next())?,
            "--sse" => a.sse = value(f, it.next())?,
            "--rate" => a.rate = Some(value(f, it.next())?),
            "--duration" => a.duration = seconds(f, it.next())?,
            "--warmup" => a.warmup = seconds(f, it.next())?,
            "--size" => a.size = value(f, it.next())?,
            "--parallel" => a.parallel = value(f, it.next())?,
            "--batch" => a.batch = value(f, it.next())?,
            "--sample" => a.sample = seconds(f, it.next())?,
            "--drain" => a.drain = seconds(f, it.next())?,
            "--json" => a.json = true,
            "--spawn" => a.spawn = Some(value(f, it.next())?),
            "--cpu" => a.cpu = Some(value(f, it.next())?),
            "--server-arg" => a.server_args.push(value(f, it.next())?),
            "--bench-cpu" => a.bench_cpu = Some(value(f, it.next())?),
            "--pid" => a.pid = Some(value(f, it.next())?),
            _ => {
                return Err(ArgsError::Bad(format!(
                    "unknown argument {f:?} (see --help)"
                )));
            }
        }
    }
    check(&a).map_err(ArgsError::Bad)?;
    Ok(a)
}

/// Cross-flag checks, so a run never starts with settings it cannot honour.
fn check(a: &Args) -> Result<(), String> {
    let min_clients = if a.scenario == Scenario::Fanout { 2 } else { 1 };
    if a.clients < min_clients {
        return Err(format!("--clients must be at least {min_clients}"));
    }
    if a.scenario == Scenario::Fanout && (a.senders == 0 || a.senders > a.clients) {
        return Err("--senders must be between 1 and --clients".into());
    }
    if a.sse > 0 && (a.rooms > 0 || a.scenario != Scenario::Fanout) {
        return Err("--sse is for fanout in general (not with --rooms)".into());
    }
    if a.rooms > 0 && a.clients < 2 * a.rooms {
        return Err("--rooms needs at least two clients per room".into());
    }
    if a.inflight == 0 || a.parallel == 0 {
        return Err("--inflight and --parallel must be at least 1".into());
    }
    if a.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err("--rate must be a positive number of messages per second".into());
    }
    if !(MIN_SIZE..=MAX_SIZE).contains(&a.size) {
        return Err(format!("--size must be between {MIN_SIZE} and {MAX_SIZE}"));
    }
    if a.batch == 0 || a.sample.is_zero() {
        return Err("--batch and --sample must be positive".into());
    }
    if a.duration.is_zero() {
        return Err("--duration must be positive".into());
    }
    if a.cpu.is_some() && a.spawn.is_none() {
        return Err("--cpu pins a spawned server; use it with --spawn".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Args, ArgsError> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_and_every_flag() {
        assert_eq!(p(""), Ok(Args::default()));
        let a = p(
            "idle --url http://10.0.0.1:8080/x --clients 2000 --senders 3 --inflight 8 --rooms 10 \
                   --rate 5000 --duration 2.5 --warmup=0 --size 120 --parallel 16 --drain 3 \
                   --batch 50 --sample 2 \
                   --json --spawn target/release/piratchat --cpu 0 --bench-cpu 1 --pid 42 \
                   --server-arg=--store-messages=off --server-arg --echo-endpoint",
        )
        .unwrap();
        let want = Args {
            scenario: Scenario::Idle,
            addr: "10.0.0.1:8080".into(),
            clients: 2000,
            senders: 3,
            inflight: 8,
            rooms: 10,
            sse: 0,
            rate: Some(5000.0),
            duration: Duration::from_millis(2500),
            warmup: Duration::ZERO,
            size: 120,
            parallel: 16,
            batch: 50,
            sample: Duration::from_secs(2),
            drain: Duration::from_secs(3),
            json: true,
            spawn: Some("target/release/piratchat".into()),
            cpu: Some(0),
            bench_cpu: Some(1),
            pid: Some(42),
            server_args: vec!["--store-messages=off".into(), "--echo-endpoint".into()],
        };
        assert_eq!(a, want);
    }

    #[test]
    fn bad_input_is_rejected() {
        let bad = [
            "--clients",
            "--clients x",
            "--clients 1",
            "--senders 0",
            "--senders 101",
            "--inflight 0",
            "--clients 10 --rooms 6",
            "--rooms x",
            "--sse 5 --rooms 2",
            "idle --sse 5",
            "--rate 0",
            "--rate -3",
            "--size 20",
            "--size 301",
            "--duration 0",
            "--duration -1",
            "--cpu 1",
            "--frobnicate",
            "--url https://x",
        ];
        for s in bad {
            assert!(matches!(p(s), Err(ArgsError::Bad(_))), "{s}");
        }
        assert_eq!(p("--help"), Err(ArgsError::Help));
    }

    #[test]
    fn urls() {
        let table = [
            ("http://127.0.0.1:7777", "127.0.0.1:7777"),
            ("ws://h:1/ws", "h:1"),
            ("localhost:9", "localhost:9"),
            ("http://example.org", "example.org:80"),
            ("http://[::1]:7777/", "[::1]:7777"),
            ("http://[::1]", "[::1]:80"),
        ];
        for (url, want) in table {
            assert_eq!(parse_url(url).as_deref(), Ok(want), "{url}");
        }
        assert!(parse_url("http:///").is_err());
    }
}
