//! Every setting of the server, each with its default and a doc line.
//!
//! Settings come from command-line flags, each with an environment variable
//! of the same name (`--session-ttl` / `PIRATCHAT_SESSION_TTL`); a flag wins
//! over its variable. Parsing is pure: it takes the argument list and an
//! environment lookup, so it is unit-testable without touching the process.

mod kinds;
mod values;

pub use kinds::normalize_origin;
use kinds::*;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
pub use values::{ConfigError, IpNet, LogLevel};
use values::{Kind, quote};

/// Who may register (`--registration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Anyone.
    Open,
    /// With an invite code from an admin.
    Invite,
    /// Nobody (403 `registration_closed`).
    Closed,
}

impl Registration {
    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Registration::Open => "open",
            Registration::Invite => "invite",
            Registration::Closed => "closed",
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

impl Config {
    /// Parses the arguments (without the program name) over the environment
    /// looked up through `env` (called with e.g. `"PIRATCHAT_LISTEN"`).
    ///
    /// Flags take `--name value` or `--name=value`; `--echo-endpoint` takes
    /// no value (or `--echo-endpoint=<bool>`). A flag replaces its variable,
    /// which is then not read at all; a repeated flag's last value wins. `--help`/`-h` and `--version`/`-V`
    /// answer even when the environment holds bad values.
    pub fn parse(
        args: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Command, ConfigError> {
        // Read the whole command line first, so `--help` works whatever the
        // environment says.
        let mut flags = Vec::new();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            match arg.as_str() {
                "--help" | "-h" => return Ok(Command::Help(help_text())),
                "--version" | "-V" => return Ok(Command::Version(version_line())),
                _ => flags.push(read_flag(arg, &mut rest)?),
            }
        }
        let mut config = Config::default();
        // A flag replaces its variable outright, so a bad variable can be
        // overridden on the command line instead of failing start-up.
        let unflagged = SETTINGS
            .iter()
            .filter(|s| !flags.iter().any(|(f, _)| f.name == s.name));
        for setting in unflagged {
            let var = env_var(setting.name);
            if let Some(value) = env(&var) {
                (setting.set)(&mut config, &value).map_err(|why| {
                    bad_value(&format!("{var} (--{})", setting.name), &why, &value)
                })?;
            }
        }
        for (setting, value) in flags {
            (setting.set)(&mut config, &value)
                .map_err(|why| bad_value(&format!("--{}", setting.name), &why, &value))?;
        }
        Ok(Command::Run(Box::new(config)))
    }

    /// The settings that differ from the defaults, as `name=value` pairs,
    /// for the start-up log line.
    pub fn non_defaults(&self) -> Vec<String> {
        let default = Config::default();
        SETTINGS
            .iter()
            .filter_map(|s| {
                let value = (s.show)(self);
                (value != (s.show)(&default)).then(|| format!("{}={value}", s.name))
            })
            .collect()
    }
}

/// One row of the settings table: everything `parse`, `--help` and
/// `non_defaults` need to know about a setting.
struct Setting {
    /// The flag without its dashes; the env var is derived from it.
    name: &'static str,
    /// What the value looks like in `--help` (`DURATION`).
    metavar: &'static str,
    /// One line for `--help`.
    help: &'static str,
    /// A switch is set by its bare flag and takes no separate value.
    switch: bool,
    /// Parses a value into the config, or says why it is wrong.
    set: fn(&mut Config, &str) -> Result<(), String>,
    /// Prints the current value in a form `set` accepts back.
    show: fn(&Config) -> String,
    /// The values allowed, for `--help`.
    range: fn() -> Option<String>,
}

/// Declares every setting once: its doc and field (with the field's type)
/// in `Config`, its flag, kind (syntax and range), default and `--help`
/// line. One row each: `/// doc`, `"flag" field: Type as Kind = default,
/// "help";`. Yields `Config`, its `Default` and `SETTINGS`.
macro_rules! settings {
    ($($(#[$doc:meta])* $name:literal $field:ident: $ty:ty as $kind:ty = $default:expr,
        $help:literal;)*) => {
        /// Every setting, limit and timeout. `Config::default()` is what
        /// `cargo run --release` runs with.
        #[derive(Debug, Clone)]
        pub struct Config {
            $($(#[$doc])* pub $field: $ty,)*
        }

        impl Default for Config {
            fn default() -> Self {
                Config { $($field: $default,)* }
            }
        }

        const SETTINGS: &[Setting] = &[$(Setting {
            name: $name,
            metavar: <$kind as Kind>::METAVAR,
            help: $help,
            switch: <$kind as Kind>::SWITCH,
            set: |config, value| {
                config.$field = <$kind as Kind>::parse(value)?;
                Ok(())
            },
            show: |config| <$kind as Kind>::show(&config.$field),
            range: <$kind as Kind>::range,
        },)*];
    };
}

/// Units for the ranges below: durations are bounded in milliseconds,
/// sizes in bytes.
const SEC: u64 = 1000;
const MINUTE: u64 = 60 * SEC;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

// Every numeric setting has a range, chosen so that no value in it can
// overflow the millisecond clock or a counter, or let one request or
// connection claim unbounded memory: the upper ends are far above any
// deployment's need, the lower ends at what still works (tests run with
// sub-second timeouts).
settings! {
    /// Address to listen on. Default `0.0.0.0:7777` (the original's port).
    "listen" listen: SocketAddr as Addr = SocketAddr::from(([0, 0, 0, 0], 7777)),
        "Address to listen on: HOST:PORT, localhost:PORT, or PORT (all IPv4 addresses)";
    /// SQLite database file, created on first start. Default `piratchat.db`.
    "db" db: PathBuf as FilePath = PathBuf::from("piratchat.db"),
        "SQLite database file, created on first start";
    /// A session ends after this long without activity. Default 3600 s.
    "session-ttl" session_ttl: Duration as Within<Dur, 100, { 365 * DAY }> =
        Duration::from_secs(3600),
        "A session ends after this long without activity";
    /// Live sessions one user may hold; a login past it ends that user's
    /// least recently used session (one without an open WebSocket first).
    /// Default 32.
    "sessions-per-user" sessions_per_user: usize as Within<Count<usize>, 1, 1024> = 32,
        "Live sessions per user; a new login past it ends the least recently used";
    /// Open chat WebSockets one user may hold (SPEC §11); past it `/ws` is
    /// 409 `already_connected`. Default 1, the Part 1 rule.
    "sockets-per-user" sockets_per_user: usize as Within<Count<usize>, 1, 64> = 1,
        "Open chat WebSockets per user (devices, tabs); past it /ws is 409";
    /// Open event streams (`GET /api/events`) one user may hold; past it
    /// the request is 409 `too_many_streams`. Streams do not count toward
    /// `sockets_per_user`. Default 4.
    "streams-per-user" streams_per_user: usize as Within<Count<usize>, 1, 64> = 4,
        "Open event streams (/api/events) per user; past it 409";
    /// Longest chat message in Unicode scalar values. Default 300.
    "max-message-chars" max_message_chars: usize as Within<Count<usize>, 1, 10_000> = 300,
        "Longest chat message, in Unicode scalar values";
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` / `X-Forwarded-Proto` are
    /// believed. Default: loopback (`127.0.0.0/8`, `::1`).
    "trusted-proxies" trusted_proxies: Vec<IpNet> as Proxies = vec![
        IpNet { addr: IpAddr::from([127, 0, 0, 0]), prefix: 8 },
        IpNet { addr: IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]), prefix: 128 },
    ],
        "Peers whose X-Forwarded-For / X-Real-IP / X-Forwarded-Proto are believed";
    /// Extra origins (`https://chat.example.org`) allowed to open `/ws`
    /// besides the request's own `Host`. Default: none.
    "allowed-origins" allowed_origins: Vec<String> as Origins = Vec::new(),
        "Origins allowed to open /ws besides the request's own Host";
    /// Open connections at most; past it new ones get 503. Default 10,000
    /// (lowered at start-up to fit the open-file limit).
    "max-connections" max_connections: usize as Within<Count<usize>, 1, 1_000_000> = 10_000,
        "Open connections at most; past it new ones get 503";
    /// Request line plus headers, in bytes. Default 8 KiB.
    "max-head-bytes" max_head_bytes: usize as Within<Size, 256, MIB> = 8 * 1024,
        "Largest request line plus headers";
    /// Header lines per request. Default 64.
    "max-headers" max_headers: usize as Within<Count<usize>, 1, 1024> = 64,
        "Most header lines per request";
    /// Request body, in bytes. Default 16 KiB.
    "max-body-bytes" max_body_bytes: usize as Within<Size, 1, { 16 * MIB }> = 16 * 1024,
        "Largest request body";
    /// A request head must arrive within this. Default 10 s.
    "head-timeout" head_timeout: Duration as Within<Dur, 100, HOUR> = Duration::from_secs(10),
        "A request head must arrive within this";
    /// A request body must arrive within this once the head is in. Default 10 s.
    "body-timeout" body_timeout: Duration as Within<Dur, 100, HOUR> = Duration::from_secs(10),
        "A request body must arrive within this";
    /// An idle keep-alive connection is closed after this. Default 60 s.
    "idle-timeout" idle_timeout: Duration as Within<Dur, 100, DAY> = Duration::from_secs(60),
        "Close an idle keep-alive connection after this";
    /// Largest WebSocket message or frame payload on `/ws`. Default 16 KiB.
    "ws-max-message-bytes" ws_max_message_bytes: usize as Within<Size, 256, { 16 * MIB }> =
        16 * 1024,
        "Largest WebSocket message or frame payload";
    /// Outgoing bytes queued for one connection before it is dropped as a
    /// slow consumer. Default 1 MiB.
    "max-output-bytes" max_output_bytes: usize as Within<Size, { 4 * KIB }, { 256 * MIB }> =
        1024 * 1024,
        "Outgoing bytes queued for one connection before it is dropped";
    /// Chat messages a connection may send in a burst. Default 20; 0 turns
    /// the chat rate limit off.
    "chat-burst" chat_burst: u32 as Within<Count<u32>, 0, 10_000> = 20,
        "Chat messages a connection may send in a burst; 0 = off";
    /// Chat messages per second a connection may sustain. Default 10.
    "chat-rate" chat_rate_per_sec: u32 as Within<Count<u32>, 0, 10_000> = 10,
        "Chat messages per second a connection may sustain";
    /// Registrations per client address per `register_window`. Default 10;
    /// 0 turns the limit off.
    "register-limit" register_limit: u32 as Within<Count<u32>, 0, 1000> = 10,
        "Registrations per client address per window; 0 = off";
    /// Window of the registration limit. Default 1 h.
    "register-window" register_window: Duration as Within<Dur, SEC, { 7 * DAY }> =
        Duration::from_secs(3600),
        "Window of the registration limit";
    /// Failed logins per client address per `login_window`. Default 20; 0
    /// turns the limit off.
    "login-fail-limit" login_fail_limit: u32 as Within<Count<u32>, 0, 1000> = 20,
        "Failed logins per client address per window; 0 = off";
    /// Window of the failed-login limit. Default 10 min.
    "login-window" login_window: Duration as Within<Dur, SEC, { 7 * DAY }> =
        Duration::from_secs(600),
        "Window of the failed-login limit";
    /// Ping a WebSocket that has sent nothing for this long, and send
    /// every event stream a `: ping` comment this often. Default 30 s.
    "ping-interval" ping_interval: Duration as Within<Dur, 100, HOUR> = Duration::from_secs(30),
        "Ping a WebSocket that has sent nothing this long; ping event streams this often";
    /// Close a pinged WebSocket when nothing arrives within this. Default 30 s.
    "ping-timeout" ping_timeout: Duration as Within<Dur, 100, HOUR> = Duration::from_secs(30),
        "Close a pinged WebSocket when nothing arrives within this";
    /// On SIGTERM/SIGINT, wait this long for close replies and pending
    /// writes. Default 5 s.
    "shutdown-grace" shutdown_grace: Duration as Within<Dur, 0, { 10 * MINUTE }> =
        Duration::from_secs(5),
        "On SIGTERM/SIGINT, wait this long for close replies and writes";
    /// Serve the unauthenticated `/echo` WebSocket for conformance tests.
    /// Default off.
    "echo-endpoint" echo_endpoint: bool as Switch = false,
        "Serve the unauthenticated /echo WebSocket (tests)";
    /// Store accepted chat messages (history, resume, dedupe across
    /// restarts). Default on; off is for measuring the cost of storage.
    "store-messages" store_messages: bool as Switch = true,
        "Store chat messages for history and resume; off = live delivery only";
    /// Stored messages older than this are pruned; zero keeps them.
    /// Default zero.
    "history-max-age" history_max_age: Duration as Within<Dur, 0, { 365 * DAY }> = Duration::ZERO,
        "Delete stored messages older than this; 0 = keep";
    /// At most this many stored messages are kept; 0 is no limit. Default
    /// 1,000,000 (a few hundred MB at most).
    "history-max-messages" history_max_messages: usize as Within<Count<usize>, 0, 1_000_000_000> =
        1_000_000,
        "Keep at most this many stored messages; 0 = no limit";
    /// A socket resuming with `?since=` gets at most this many missed
    /// messages replayed; past it, `{"event": "resync"}`. Default 1,000.
    "resume-max" resume_max: usize as Within<Count<usize>, 1, 100_000> = 1000,
        "Most messages replayed to a reconnecting socket before it is told to resync";
    /// A repeated `client_id` from the same user within this is acked with
    /// the original id and not broadcast again. Default 10 min.
    "dedupe-window" dedupe_window: Duration as Within<Dur, SEC, DAY> = Duration::from_secs(600),
        "A repeated client_id within this is acknowledged again, not sent again";
    /// Session activity is written to the database this often (and at
    /// shutdown), not on every request. Default 60 s.
    "session-flush" session_flush: Duration as Within<Dur, 100, HOUR> = Duration::from_secs(60),
        "How often session activity is written to the database";
    /// How often the retention limits are applied (in batches of 500;
    /// while more are due, again at once). Default 60 s.
    "prune-interval" prune_interval: Duration as Within<Dur, 100, DAY> = Duration::from_secs(60),
        "How often messages past the retention limits are deleted";
    /// Users who are server admins whatever the database says (SPEC
    /// §12), by name, any case. Default: none.
    "admins" admins: Vec<String> as Names = Vec::new(),
        "Server admins by username (comma-separated); more can be granted";
    /// Who may register: `open`, `invite` (with a code from an admin) or
    /// `closed`. Default `open`.
    "registration" registration: Registration as RegistrationKind = Registration::Open,
        "Who may register: open, invite (needs an invite code) or closed";
    /// Log verbosity. Default `info`.
    "log-level" log_level: LogLevel as Level = LogLevel::Info,
        "Log verbosity: error, warn, info or debug";
}

/// Reads one flag and its value from the command line.
fn read_flag<'a>(
    arg: &str,
    rest: &mut impl Iterator<Item = &'a String>,
) -> Result<(&'static Setting, String), ConfigError> {
    let Some(body) = arg.strip_prefix("--") else {
        return Err(ConfigError(format!(
            "unexpected argument (got '{}'; flags start with --, see --help)",
            quote(arg)
        )));
    };
    let (name, inline) = match body.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (body, None),
    };
    let Some(setting) = SETTINGS.iter().find(|s| s.name == name) else {
        return Err(ConfigError(format!(
            "--{}: unknown flag (see --help)",
            quote(name)
        )));
    };
    let value = match inline {
        Some(value) => value,
        None if setting.switch => "true".to_string(),
        // A following flag is not taken as the value: `--db --listen x`
        // is far more likely a forgotten value than a file named so.
        None => match rest.next() {
            Some(next) if !next.starts_with("--") => next.clone(),
            _ => {
                return Err(ConfigError(format!(
                    "--{name}: missing value ({})",
                    setting.metavar
                )));
            }
        },
    };
    Ok((setting, value))
}

/// The environment variable of a flag: `session-ttl` → `PIRATCHAT_SESSION_TTL`.
fn env_var(name: &str) -> String {
    format!("PIRATCHAT_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// The one-line message for a value that did not parse.
fn bad_value(source: &str, why: &str, value: &str) -> ConfigError {
    ConfigError(format!("{source}: {why} (got '{}')", quote(value)))
}

fn version_line() -> String {
    format!("piratchat {}", env!("CARGO_PKG_VERSION"))
}

/// `--help`: every flag with its variable, default and help line. Defaults
/// come from `Config::default()` so the text cannot drift from the code.
fn help_text() -> String {
    let default = Config::default();
    let mut out = format!(
        "{}: a real-time chat server\n\n\
         Usage: piratchat [--flag value | --flag=value]...\n\n\
         Each flag can also be set through the environment variable shown; the flag wins.\n\
         Durations: 500ms, 10s, 5m, 1h, or seconds (0.5). Sizes: bytes, KiB or MiB.\n\
         Lists are comma-separated; an empty value means none.\n\n\
         \x20 -h, --help     Print this help and exit\n\
         \x20 -V, --version  Print the version and exit\n\n",
        version_line()
    );
    for s in SETTINGS {
        let value = if s.switch {
            String::new()
        } else {
            format!(" <{}>", s.metavar)
        };
        let shown = match (s.show)(&default) {
            v if v.is_empty() => "\"\"".to_string(),
            v => v,
        };
        let var = env_var(s.name);
        let range = (s.range)().map(|r| format!(", {r}")).unwrap_or_default();
        out.push_str(&format!(
            "  --{}{value}  [env {var}, default {shown}{range}]\n",
            s.name
        ));
        out.push_str(&format!("        {}\n", s.help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Parses `args` over `env` pairs and expects a configuration.
    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match Config::parse(&args, &|name| env.get(name).cloned())? {
            Command::Run(config) => Ok(*config),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    fn parsed(args: &[&str]) -> Config {
        run(args, &[]).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Command-line arguments and environment pairs of a table row.
    type Args = &'static [&'static str];
    type Env = &'static [(&'static str, &'static str)];

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn no_args_no_env_is_the_default() {
        let config = parsed(&[]);
        assert_eq!(format!("{config:?}"), format!("{:?}", Config::default()));
        assert!(config.non_defaults().is_empty());
    }

    #[test]
    fn every_default_round_trips_through_its_setter() {
        let default = Config::default();
        for s in SETTINGS {
            let mut config = Config::default();
            (s.set)(&mut config, &(s.show)(&default)).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert_eq!((s.show)(&config), (s.show)(&default), "{}", s.name);
        }
    }

    #[test]
    fn duration_syntax() {
        let cases: &[(&str, Duration)] = &[
            ("500ms", ms(500)),
            ("10s", ms(10_000)),
            ("5m", ms(300_000)),
            ("1h", ms(3_600_000)),
            ("90", ms(90_000)),
            ("0.5", ms(500)),
            ("1.5m", ms(90_000)),
            ("0.001", ms(1)),
            ("2.", ms(2000)),
            (".25", ms(250)),
        ];
        // A setting whose range holds every case: the syntax is the test.
        for &(text, want) in cases {
            let got = parsed(&["--history-max-age", text]).history_max_age;
            assert_eq!(got, want, "{text}");
        }
        assert_eq!(
            parsed(&["--shutdown-grace", "0"]).shutdown_grace,
            Duration::ZERO
        );
    }

    #[test]
    fn size_syntax() {
        let cases = [
            ("16384", 16384),
            ("16KiB", 16 * 1024),
            ("1MiB", 1024 * 1024),
            ("3kib", 3 * 1024),
            ("100 B", 100),
        ];
        for (text, want) in cases {
            assert_eq!(
                parsed(&["--max-body-bytes", text]).max_body_bytes,
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn other_value_syntax() {
        let c = parsed(&[
            "--listen",
            "[::1]:8080",
            "--db",
            "/var/lib/chat.db",
            "--max-headers",
            "32",
            "--chat-burst",
            "0",
            "--chat-rate",
            "0",
            "--register-limit",
            "0",
            "--login-fail-limit",
            "0",
            "--log-level",
            "DEBUG",
            "--echo-endpoint",
        ]);
        assert_eq!(c.listen, "[::1]:8080".parse().unwrap());
        assert_eq!(c.db, PathBuf::from("/var/lib/chat.db"));
        assert_eq!(c.max_headers, 32);
        assert_eq!((c.chat_burst, c.chat_rate_per_sec), (0, 0));
        assert_eq!((c.register_limit, c.login_fail_limit), (0, 0));
        assert_eq!(c.log_level, LogLevel::Debug);
        assert!(c.echo_endpoint);
    }

    /// A bare port and `localhost:PORT` were refused; a newcomer types them.
    #[test]
    fn listen_forms() {
        let ok = [
            ("7778", "0.0.0.0:7778"),
            (":7778", "0.0.0.0:7778"),
            ("localhost:7778", "127.0.0.1:7778"),
            ("LocalHost:0", "127.0.0.1:0"),
            ("127.0.0.1:80", "127.0.0.1:80"),
            ("[::]:7777", "[::]:7777"),
            ("[::1]:1", "[::1]:1"),
        ];
        for (text, want) in ok {
            assert_eq!(
                parsed(&["--listen", text]).listen.to_string(),
                want,
                "{text}"
            );
        }
        for bad in [
            "",
            ":",
            "+80",
            ":+80",
            "65536",
            "localhost",
            "localhost:",
            "host:80",
            "::1",
        ] {
            assert!(run(&["--listen", bad], &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists() {
        let c = parsed(&["--trusted-proxies", "127.0.0.1, 10.0.0.0/8,::1"]);
        assert_eq!(
            c.trusted_proxies,
            [net("127.0.0.1"), net("10.0.0.0/8"), net("::1")]
        );
        assert!(
            parsed(&["--trusted-proxies", ""])
                .trusted_proxies
                .is_empty()
        );
        assert!(parsed(&["--trusted-proxies="]).trusted_proxies.is_empty());
        let c = parsed(&[
            "--allowed-origins",
            "HTTPS://Chat.Example.org:443/,http://x.test:8080",
        ]);
        assert_eq!(
            c.allowed_origins,
            ["https://chat.example.org", "http://x.test:8080"]
        );
    }

    #[test]
    fn origin_normalization() {
        let ok = [
            ("https://a.example", "https://a.example"),
            ("HTTP://A.Example:80", "http://a.example"),
            ("http://a.example:443", "http://a.example:443"),
            ("https://a.example:8443/", "https://a.example:8443"),
            ("http://[::1]:3000", "http://[::1]:3000"),
            ("https://[::1]", "https://[::1]"),
            ("http://127.0.0.1", "http://127.0.0.1"),
        ];
        for (raw, want) in ok {
            assert_eq!(normalize_origin(raw).as_deref(), Ok(want), "{raw}");
        }
        let bad = [
            "a.example",
            "ftp://a.example",
            "https://",
            "https://a.example/path",
            "https://a.example?q",
            "https://u@a.example",
            "https://a.example:0",
            "https://a.example:99999",
            "https://a.example:",
            "http://[::1",
            "http://[zz]:80",
            "http://[::1]x",
            "https://a_b.example",
            "https://ü.example",
        ];
        for raw in bad {
            assert!(normalize_origin(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn flag_forms_and_precedence() {
        let env = [
            ("PIRATCHAT_SESSION_TTL", "2h"),
            ("PIRATCHAT_MAX_HEADERS", "10"),
        ];
        let c = run(&["--session-ttl=5m"], &env).unwrap();
        assert_eq!(c.session_ttl, ms(300_000), "flag beats env");
        assert_eq!(c.max_headers, 10, "env beats default");
        let c = run(&["--session-ttl", "1m", "--session-ttl=2m"], &[]).unwrap();
        assert_eq!(c.session_ttl, ms(120_000), "last flag wins");
        // `=` splits once: the value may itself contain `=`.
        assert_eq!(parsed(&["--db=a=b"]).db, PathBuf::from("a=b"));
    }

    #[test]
    fn echo_endpoint_switch() {
        let cases: &[(Args, Env, bool)] = &[
            (&[], &[], false),
            (&["--echo-endpoint"], &[], true),
            (
                &["--echo-endpoint=off"],
                &[("PIRATCHAT_ECHO_ENDPOINT", "1")],
                false,
            ),
            (&[], &[("PIRATCHAT_ECHO_ENDPOINT", "yes")], true),
            (&[], &[("PIRATCHAT_ECHO_ENDPOINT", "ON")], true),
            (&[], &[("PIRATCHAT_ECHO_ENDPOINT", "0")], false),
            (&[], &[("PIRATCHAT_ECHO_ENDPOINT", "false")], false),
            (
                &["--echo-endpoint"],
                &[("PIRATCHAT_ECHO_ENDPOINT", "no")],
                true,
            ),
        ];
        for &(args, env, want) in cases {
            assert_eq!(
                run(args, env).unwrap().echo_endpoint,
                want,
                "{args:?} {env:?}"
            );
        }
    }

    #[test]
    fn every_setting_has_its_env_var() {
        for s in SETTINGS {
            // A value that is valid for every setting but the log level.
            let (var, value) = (
                env_var(s.name),
                if s.name == "log-level" { "warn" } else { "7" },
            );
            let value = if s.name == "listen" {
                "1.2.3.4:7"
            } else {
                value
            };
            let value = if s.name == "trusted-proxies" {
                "7.7.7.7"
            } else {
                value
            };
            let value = if s.name == "allowed-origins" {
                "http://seven"
            } else {
                value
            };
            let value = match s.name {
                "echo-endpoint" => "1",
                // Sizes are bounded below by a few hundred bytes.
                _ if s.metavar == "SIZE" => "7KiB",
                // On by default, so off is the value that changes it.
                "store-messages" => "0",
                "registration" => "invite",
                _ => value,
            };
            let config = run(&[], &[(&var, value)]).unwrap_or_else(|e| panic!("{var}: {e}"));
            assert_eq!(
                config.non_defaults().len(),
                1,
                "{var} set exactly one setting"
            );
            assert!(config.non_defaults()[0].starts_with(&format!("{}=", s.name)));
        }
    }

    /// The error message for `args` over `env`.
    fn error(args: Args, env: Env) -> String {
        let err = run(args, env).expect_err(&format!("{args:?} {env:?} should fail"));
        assert!(!err.0.contains('\n'), "{err}");
        err.0
    }

    #[test]
    fn errors_are_one_line_naming_the_flag() {
        const DUR: &str = "not a duration like 500ms, 10s, 5m, 1h or 0.5";
        const SIZE: &str = "not a size like 16384, 16KiB or 1MiB";
        const TTL: &str = "must be from 100ms to 8760h";
        const LISTEN: &str =
            "not a listen address like 0.0.0.0:7777, [::]:7777, localhost:7777 or 7777";
        let cases: &[(Args, &str)] = &[
            (&["--bogus"], "--bogus: unknown flag (see --help)"),
            (&["--bogus=1"], "--bogus: unknown flag (see --help)"),
            (&["--help=1"], "--help: unknown flag (see --help)"),
            (
                &["x"],
                "unexpected argument (got 'x'; flags start with --, see --help)",
            ),
            (&["--listen"], "--listen: missing value (ADDR)"),
            (
                &["--db", "--listen", "1.2.3.4:5"],
                "--db: missing value (PATH)",
            ),
            (&["--listen", "nope"], "--listen: LISTEN (got 'nope')"),
            (&["--db="], "--db: empty path (got '')"),
            (&["--session-ttl", "0"], "--session-ttl: TTL (got '0')"),
            (
                &["--head-timeout", "0ms"],
                "--head-timeout: must be from 100ms to 1h (got '0ms')",
            ),
            (
                &["--body-timeout", "0s"],
                "--body-timeout: must be from 100ms to 1h (got '0s')",
            ),
            (
                &["--ping-interval", "0.0"],
                "--ping-interval: must be from 100ms to 1h (got '0.0')",
            ),
            (&["--idle-timeout", "5d"], "--idle-timeout: DUR (got '5d')"),
            (
                &["--idle-timeout", "1.2.3"],
                "--idle-timeout: DUR (got '1.2.3')",
            ),
            (&["--idle-timeout", "."], "--idle-timeout: DUR (got '.')"),
            (
                &["--idle-timeout", "-1s"],
                "--idle-timeout: DUR (got '-1s')",
            ),
            (
                &["--idle-timeout", "0.0005"],
                "--idle-timeout: finer than a millisecond (got '0.0005')",
            ),
            (
                &["--idle-timeout", "9999h"],
                "--idle-timeout: must be from 100ms to 24h (got '9999h')",
            ),
            (
                &["--max-connections", "0"],
                "--max-connections: must be from 1 to 1000000 (got '0')",
            ),
            (
                &["--max-connections", "-1"],
                "--max-connections: not an unsigned integer (got '-1')",
            ),
            (
                &["--max-headers", "+5"],
                "--max-headers: not an unsigned integer (got '+5')",
            ),
            (
                &["--chat-burst", "99999999999"],
                "--chat-burst: must be from 0 to 10000 (got '99999999999')",
            ),
            (
                &["--max-head-bytes", "0KiB"],
                "--max-head-bytes: must be from 256 to 1MiB (got '0KiB')",
            ),
            (
                &["--max-body-bytes", "16KB"],
                "--max-body-bytes: SIZE (got '16KB')",
            ),
            (
                &["--ws-max-message-bytes", "0"],
                "--ws-max-message-bytes: must be from 256 to 16MiB (got '0')",
            ),
            (
                &["--max-output-bytes", "0"],
                "--max-output-bytes: must be from 4KiB to 256MiB (got '0')",
            ),
            (
                &["--max-output-bytes", "1.5MiB"],
                "--max-output-bytes: SIZE (got '1.5MiB')",
            ),
            (
                &["--trusted-proxies", "1.2.3.4,,::1"],
                "--trusted-proxies: empty list entry (got '1.2.3.4,,::1')",
            ),
            (
                &["--trusted-proxies", "10.0.0.0/33"],
                "--trusted-proxies: prefix length must be 0..=32: '10.0.0.0/33' (got '10.0.0.0/33')",
            ),
            (
                &["--allowed-origins", "ftp://x"],
                "--allowed-origins: scheme must be http or https: 'ftp://x' (got 'ftp://x')",
            ),
            // Issue 11 #9: values the type holds but the server does not
            // survive (a panic on the first request, 3 GB per request, a
            // wrapped addition) are refused at start.
            (
                &["--max-headers", "18446744073709551615"],
                "--max-headers: must be from 1 to 1024 (got '18446744073709551615')",
            ),
            (
                &["--max-headers", "100000000"],
                "--max-headers: must be from 1 to 1024 (got '100000000')",
            ),
            (
                &["--max-headers", "99999999999999999999999"],
                "--max-headers: must be from 1 to 1024 (got '99999999999999999999999')",
            ),
            (
                &["--resume-max", "18446744073709551615"],
                "--resume-max: must be from 1 to 100000 (got '18446744073709551615')",
            ),
            (
                &["--max-body-bytes", "17MiB"],
                "--max-body-bytes: must be from 1 to 16MiB (got '17MiB')",
            ),
            (
                &["--sessions-per-user", "0"],
                "--sessions-per-user: must be from 1 to 1024 (got '0')",
            ),
            (
                &["--log-level", "trace"],
                "--log-level: not one of error, warn, info, debug (got 'trace')",
            ),
            (
                &["--echo-endpoint=maybe"],
                "--echo-endpoint: not one of 1/true/yes/on or 0/false/no/off (got 'maybe')",
            ),
        ];
        for &(args, want) in cases {
            let want = want
                .replace("DUR", DUR)
                .replace("SIZE", SIZE)
                .replace("TTL", TTL)
                .replace("LISTEN", LISTEN);
            assert_eq!(error(args, &[]), want);
        }
    }

    #[test]
    fn env_errors_name_the_variable_and_flag() {
        let cases: &[(Env, &str)] = &[
            (
                &[("PIRATCHAT_MAX_HEADERS", "x")],
                "PIRATCHAT_MAX_HEADERS (--max-headers): not an unsigned integer (got 'x')",
            ),
            (
                &[("PIRATCHAT_DB", "")],
                "PIRATCHAT_DB (--db): empty path (got '')",
            ),
            (
                &[("PIRATCHAT_ECHO_ENDPOINT", "")],
                "PIRATCHAT_ECHO_ENDPOINT (--echo-endpoint): not one of 1/true/yes/on or 0/false/no/off (got '')",
            ),
            // Control characters and quotes in the value cannot break the line.
            (
                &[("PIRATCHAT_LISTEN", "a\n'b\u{1b}")],
                "PIRATCHAT_LISTEN (--listen): not a listen address like 0.0.0.0:7777, [::]:7777, localhost:7777 or 7777 (got 'a\\n\\'b\\u{1b}')",
            ),
        ];
        for &(env, want) in cases {
            assert_eq!(error(&[], env), want);
        }
        // A flag replaces its variable outright, even a bad one.
        let env: Env = &[("PIRATCHAT_LOG_LEVEL", "loud")];
        let config = run(&["--log-level", "warn"], env).unwrap();
        assert_eq!(config.log_level, LogLevel::Warn);
    }

    #[test]
    fn long_bad_values_are_cut_short() {
        let long = "x".repeat(500);
        let err = run(&["--listen", &long], &[]).unwrap_err().to_string();
        assert!(
            err.ends_with(&format!("(got '{}...')", "x".repeat(80))),
            "{err}"
        );
    }

    #[test]
    fn help_lists_every_flag_env_var_and_default() {
        let env = [("PIRATCHAT_LISTEN", "broken")]; // --help must not care
        for flag in ["--help", "-h"] {
            let args = vec![
                "--max-headers".to_string(),
                "3".to_string(),
                flag.to_string(),
            ];
            let Ok(Command::Help(text)) = Config::parse(&args, &|k| {
                env.iter().find(|e| e.0 == k).map(|e| e.1.to_string())
            }) else {
                panic!("{flag} gave no help");
            };
            assert_eq!(SETTINGS.len(), 38);
            let rows = text.lines().filter(|l| l.starts_with("  --")).count();
            assert_eq!(rows, SETTINGS.len());
            for s in SETTINGS {
                let row = text
                    .lines()
                    .find(|l| l.starts_with(&format!("  --{} ", s.name)));
                let row = row.unwrap_or_else(|| panic!("no row for {}", s.name));
                assert!(
                    row.contains(&format!("[env {}, ", env_var(s.name))),
                    "{row}"
                );
                assert!(text.contains(s.help), "{}", s.name);
                // Every number has its range in the help.
                if ["COUNT", "SIZE", "DURATION"].contains(&s.metavar) {
                    assert!(
                        row.ends_with(&format!(", {}]", (s.range)().unwrap())),
                        "{row}"
                    );
                }
            }
            for want in [
                "--listen <ADDR>  [env PIRATCHAT_LISTEN, default 0.0.0.0:7777]",
                "--session-ttl <DURATION>  [env PIRATCHAT_SESSION_TTL, default 1h, 100ms to 8760h]",
                "--max-body-bytes <SIZE>  [env PIRATCHAT_MAX_BODY_BYTES, default 16KiB, 1 to 16MiB]",
                "--max-headers <COUNT>  [env PIRATCHAT_MAX_HEADERS, default 64, 1 to 1024]",
                "--chat-burst <COUNT>  [env PIRATCHAT_CHAT_BURST, default 20, 0 to 10000]",
                "--trusted-proxies <LIST>  [env PIRATCHAT_TRUSTED_PROXIES, default 127.0.0.0/8,::1]",
                "--allowed-origins <LIST>  [env PIRATCHAT_ALLOWED_ORIGINS, default \"\"]",
                "--echo-endpoint  [env PIRATCHAT_ECHO_ENDPOINT, default false]",
            ] {
                assert!(text.contains(want), "missing {want}");
            }
        }
    }

    #[test]
    fn version() {
        for flag in ["--version", "-V"] {
            let got = Config::parse(&[flag.to_string()], &|_| None).unwrap();
            let Command::Version(line) = got else {
                panic!("{got:?}")
            };
            assert_eq!(line, format!("piratchat {}", env!("CARGO_PKG_VERSION")));
        }
    }

    #[test]
    fn non_defaults_lists_changed_settings_in_table_order() {
        let c = parsed(&[
            "--log-level",
            "debug",
            "--listen",
            "127.0.0.1:9000",
            "--session-ttl",
            "90",
            "--max-output-bytes",
            "2MiB",
            "--trusted-proxies",
            "",
            "--max-headers",
            "64",
            "--head-timeout",
            "1500ms",
        ]);
        assert_eq!(
            c.non_defaults(),
            [
                "listen=127.0.0.1:9000",
                "session-ttl=90s",
                "trusted-proxies=",
                "head-timeout=1500ms",
                "max-output-bytes=2MiB",
                "log-level=debug",
            ]
        );
    }

    #[test]
    fn ipnet_parse() {
        let ok: &[(&str, &str, u8)] = &[
            ("127.0.0.1", "127.0.0.1", 32),
            ("10.0.0.0/8", "10.0.0.0", 8),
            ("10.1.2.3/8", "10.0.0.0", 8),
            ("0.0.0.0/0", "0.0.0.0", 0),
            ("::1", "::1", 128),
            ("fd00::/8", "fd00::", 8),
            ("2001:db8::1/32", "2001:db8::", 32),
            ("::/0", "::", 0),
            ("::ffff:10.0.0.1", "10.0.0.1", 32),
            ("::ffff:10.0.0.0/104", "10.0.0.0", 8),
        ];
        for &(text, addr, prefix) in ok {
            let want = IpNet {
                addr: addr.parse().unwrap(),
                prefix,
            };
            assert_eq!(net(text), want, "{text}");
            assert_eq!(net(&net(text).to_string()), want, "{text} round trip");
        }
        for bad in [
            "",
            "1.2.3",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/x",
            "/8",
            "::1/-1",
            "a.b.c.d",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ipnet_contains() {
        let cases: &[(&str, &str, bool)] = &[
            ("127.0.0.0/8", "127.0.0.1", true),
            ("127.0.0.0/8", "127.255.255.255", true),
            ("127.0.0.0/8", "128.0.0.1", false),
            ("127.0.0.0/8", "::ffff:127.0.0.1", true),
            ("127.0.0.0/8", "::ffff:10.0.0.1", false),
            ("10.0.0.5", "10.0.0.5", true),
            ("10.0.0.5", "10.0.0.6", false),
            ("10.0.0.5", "::ffff:10.0.0.5", true),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "::1", false),
            ("192.168.1.0/25", "192.168.1.127", true),
            ("192.168.1.0/25", "192.168.1.128", false),
            ("::1", "::1", true),
            ("::1", "::2", false),
            ("::1", "127.0.0.1", false),
            ("fd00::/8", "fdab::1", true),
            ("fd00::/8", "fe80::1", false),
            ("::/0", "2001:db8::1", true),
            ("::/0", "::ffff:1.2.3.4", false),
            ("::ffff:10.0.0.0/104", "10.9.9.9", true),
        ];
        for &(block, ip, want) in cases {
            assert_eq!(
                net(block).contains(ip.parse().unwrap()),
                want,
                "{block} ∋ {ip}"
            );
        }
        // A hand-built block with host bits set still matches by prefix.
        let raw = IpNet {
            addr: "10.1.2.3".parse().unwrap(),
            prefix: 8,
        };
        assert!(raw.contains("10.200.0.1".parse().unwrap()));
    }

    #[test]
    fn default_trusts_loopback_only() {
        let c = Config::default();
        let trusted = |ip: &str| {
            c.trusted_proxies
                .iter()
                .any(|n| n.contains(ip.parse().unwrap()))
        };
        for (ip, want) in [
            ("127.0.0.1", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("10.0.0.1", false),
        ] {
            assert_eq!(trusted(ip), want, "{ip}");
        }
    }

    #[test]
    fn log_level_names() {
        for level in [
            LogLevel::Error,
            LogLevel::Warn,
            LogLevel::Info,
            LogLevel::Debug,
        ] {
            assert_eq!(level.to_string().parse::<LogLevel>(), Ok(level));
        }
        assert!("verbose".parse::<LogLevel>().is_err());
    }
}
