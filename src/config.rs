//! Every setting of the server, each with its default and a doc line.
//!
//! Settings come from command-line flags, each with an environment variable
//! of the same name (`--session-ttl` / `PIRATCHAT_SESSION_TTL`); a flag wins
//! over its variable. Parsing is pure: it takes the argument list and an
//! environment lookup, so it is unit-testable without touching the process.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// A trusted proxy: one address, or a CIDR block such as `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// The network address.
    pub addr: IpAddr,
    /// Prefix length in bits (32 or 128 for a single address).
    pub prefix: u8,
}

impl IpNet {
    /// Whether `ip` lies inside this block. IPv4-mapped IPv6 addresses
    /// (`::ffff:127.0.0.1`) are compared as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        todo!("helper: config")
    }
}

/// The log levels, in increasing verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings.
    Warn,
    /// Plus start-up, shutdown, access lines and WebSocket open/close.
    Info,
    /// Plus per-connection detail.
    Debug,
}

/// Every setting, limit and timeout. `Config::default()` is what
/// `cargo run --release` runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on. Default `0.0.0.0:7777` (the original's port).
    pub listen: SocketAddr,
    /// SQLite database file, created on first start. Default `piratchat.db`.
    pub db: PathBuf,
    /// A session ends after this long without activity. Default 3600 s.
    pub session_ttl: Duration,
    /// Longest chat message in Unicode scalar values. Default 300.
    pub max_message_chars: usize,
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` / `X-Forwarded-Proto` are
    /// believed. Default: loopback (`127.0.0.0/8`, `::1`).
    pub trusted_proxies: Vec<IpNet>,
    /// Extra origins (`https://chat.example.org`) allowed to open `/ws`
    /// besides the request's own `Host`. Default: none.
    pub allowed_origins: Vec<String>,
    /// Open connections at most; past it new ones get 503. Default 10,000
    /// (lowered at start-up to fit the open-file limit).
    pub max_connections: usize,
    /// Request line plus headers, in bytes. Default 8 KiB.
    pub max_head_bytes: usize,
    /// Header lines per request. Default 64.
    pub max_headers: usize,
    /// Request body, in bytes. Default 16 KiB.
    pub max_body_bytes: usize,
    /// A request head must arrive within this. Default 10 s.
    pub head_timeout: Duration,
    /// A request body must arrive within this once the head is in. Default 10 s.
    pub body_timeout: Duration,
    /// An idle keep-alive connection is closed after this. Default 60 s.
    pub idle_timeout: Duration,
    /// Largest WebSocket message or frame payload on `/ws`. Default 16 KiB.
    pub ws_max_message_bytes: usize,
    /// Outgoing bytes queued for one connection before it is dropped as a
    /// slow consumer. Default 1 MiB.
    pub max_output_bytes: usize,
    /// Chat messages a connection may send in a burst. Default 20; 0 turns
    /// the chat rate limit off.
    pub chat_burst: u32,
    /// Chat messages per second a connection may sustain. Default 10.
    pub chat_rate_per_sec: u32,
    /// Registrations per client address per `register_window`. Default 10;
    /// 0 turns the limit off.
    pub register_limit: u32,
    /// Window of the registration limit. Default 1 h.
    pub register_window: Duration,
    /// Failed logins per client address per `login_window`. Default 20; 0
    /// turns the limit off.
    pub login_fail_limit: u32,
    /// Window of the failed-login limit. Default 10 min.
    pub login_window: Duration,
    /// Ping a WebSocket that has sent nothing for this long. Default 30 s.
    pub ping_interval: Duration,
    /// Close a pinged WebSocket when nothing arrives within this. Default 30 s.
    pub ping_timeout: Duration,
    /// On SIGTERM/SIGINT, wait this long for close replies and pending
    /// writes. Default 5 s.
    pub shutdown_grace: Duration,
    /// Serve the unauthenticated `/echo` WebSocket for conformance tests.
    /// Default off.
    pub echo_endpoint: bool,
    /// Log verbosity. Default `info`.
    pub log_level: LogLevel,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 7777)),
            db: PathBuf::from("piratchat.db"),
            session_ttl: Duration::from_secs(3600),
            max_message_chars: 300,
            trusted_proxies: vec![
                IpNet { addr: IpAddr::from([127, 0, 0, 0]), prefix: 8 },
                IpNet { addr: IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]), prefix: 128 },
            ],
            allowed_origins: Vec::new(),
            max_connections: 10_000,
            max_head_bytes: 8 * 1024,
            max_headers: 64,
            max_body_bytes: 16 * 1024,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ws_max_message_bytes: 16 * 1024,
            max_output_bytes: 1024 * 1024,
            chat_burst: 20,
            chat_rate_per_sec: 10,
            register_limit: 10,
            register_window: Duration::from_secs(3600),
            login_fail_limit: 20,
            login_window: Duration::from_secs(600),
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            echo_endpoint: false,
            log_level: LogLevel::Info,
        }
    }
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    /// Run the server with this configuration.
    Run(Box<Config>),
    /// Print this help text (`--help`) and exit 0.
    Help(String),
    /// Print this version line (`--version`) and exit 0.
    Version(String),
}

/// A setting that could not be understood. Its `Display` is the one-line
/// message printed before exiting with code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses the arguments (without the program name) over the environment
    /// looked up through `env` (called with e.g. `"PIRATCHAT_LISTEN"`).
    pub fn parse(
        args: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Command, ConfigError> {
        todo!("helper: config")
    }

    /// The settings that differ from the defaults, as `name=value` pairs,
    /// for the start-up log line.
    pub fn non_defaults(&self) -> Vec<String> {
        todo!("helper: config")
    }
}
