//! The value types settings share with the rest of the crate (a proxy
//! address block, a log level), the error a bad value gives, and the
//! [`Kind`] trait each setting's syntax implements (in `kinds.rs`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

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
        // A dual-stack listener reports IPv4 peers as `::ffff:a.b.c.d`; the
        // operator wrote `127.0.0.1`, so compare in the IPv4 family.
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = ConfigError;

    /// Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `ipv6/n`. Host bits
    /// below the prefix are cleared, and an IPv4-mapped IPv6 block of /96 or
    /// longer becomes the IPv4 block it means, so `contains` and equality
    /// see one spelling per network.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| ConfigError(why.to_string());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| bad("not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| bad(&format!("prefix length must be 0..={max}")))?,
            Some(_) => return Err(bad("prefix length is not a number")),
        };
        Ok(IpNet { addr, prefix }.normalized())
    }
}

impl IpNet {
    /// The same block with host bits cleared and mapped IPv6 made IPv4.
    fn normalized(self) -> IpNet {
        let (addr, prefix) = match self.addr {
            IpAddr::V6(v6) if self.prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), self.prefix - 96),
                None => (self.addr, self.prefix),
            },
            _ => (self.addr, self.prefix),
        };
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        };
        IpNet { addr, prefix }
    }
}

impl fmt::Display for IpNet {
    /// A single address prints bare (`::1`), a block as `10.0.0.0/8`; the
    /// output parses back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
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

impl LogLevel {
    /// The lower-case name used on the command line (`info`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogLevel {
    type Err = ConfigError;

    /// Parses `error`, `warn`, `info` or `debug`, in any letter case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            LogLevel::Error,
            LogLevel::Warn,
            LogLevel::Info,
            LogLevel::Debug,
        ]
        .into_iter()
        .find(|l| l.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| ConfigError("not one of error, warn, info, debug".to_string()))
    }
}

/// A setting that could not be understood. Its `Display` is the one-line
/// message printed before exiting with code 2. From the `FromStr` impls of
/// this module it holds the reason alone; `Config::parse` adds the flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// How one kind of value is parsed and printed. The kinds are type-level
/// markers, so a table row picks its syntax by naming a type.
pub(super) trait Kind {
    /// The field type this kind fills.
    type T;
    /// What the value looks like in `--help`.
    const METAVAR: &'static str;
    /// Whether the bare flag means "on".
    const SWITCH: bool = false;
    /// Parses a value; the error is the reason, without the flag.
    fn parse(value: &str) -> Result<Self::T, String>;
    /// Prints a value so that `parse` gives it back.
    fn show(value: &Self::T) -> String;
    /// The values allowed, for `--help` (`1 to 1024`); `None` when the
    /// syntax alone decides.
    fn range() -> Option<String> {
        None
    }
}

/// Makes an untrusted value safe inside a one-line message: control
/// characters and quotes escaped, and long values cut short.
pub(super) fn quote(value: &str) -> String {
    const MAX_CHARS: usize = 80;
    let mut out: String = value
        .chars()
        .take(MAX_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().nth(MAX_CHARS).is_some() {
        out.push_str("...");
    }
    out
}
