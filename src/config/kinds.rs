//! The kinds of setting values: how each is parsed from text and shown in
//! `--help`. Every value error is one line naming what was expected.

use super::values::{ConfigError, IpNet, Kind, LogLevel, quote};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A socket address such as `0.0.0.0:7777` or `[::1]:7777`; also a bare
/// port (`7777` or `:7777`: every IPv4 address, like the default) and
/// `localhost:7777` (`127.0.0.1`, without asking a resolver, which might
/// answer `::1` or something else entirely).
pub(super) struct Addr;

impl Kind for Addr {
    type T = SocketAddr;
    const METAVAR: &'static str = "ADDR";
    fn parse(value: &str) -> Result<SocketAddr, String> {
        let port = |p: &str| -> Option<u16> {
            // `u16::from_str` would also take `+80`.
            p.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| p.parse().ok())?
        };
        let any = |p| SocketAddr::from(([0, 0, 0, 0], p));
        let parsed = match value.rsplit_once(':') {
            None => port(value).map(any),
            Some(("", p)) => port(p).map(any),
            Some((host, p)) if host.eq_ignore_ascii_case("localhost") => {
                port(p).map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            }
            Some(_) => value.parse().ok(),
        };
        parsed.ok_or_else(|| {
            "not a listen address like 0.0.0.0:7777, [::]:7777, localhost:7777 or 7777".to_string()
        })
    }
    fn show(value: &SocketAddr) -> String {
        value.to_string()
    }
}

/// A file path; only the empty path is refused.
pub(super) struct FilePath;

impl Kind for FilePath {
    type T = PathBuf;
    const METAVAR: &'static str = "PATH";
    fn parse(value: &str) -> Result<PathBuf, String> {
        if value.is_empty() {
            return Err("empty path".to_string());
        }
        Ok(PathBuf::from(value))
    }
    fn show(value: &PathBuf) -> String {
        value.display().to_string()
    }
}

/// A duration: `500ms`, `10s`, `5m`, `1h`, or bare seconds; fractions allowed.
pub(super) struct Dur;

/// The reason a number did not fit its type (or a duration its year); a
/// [`Within`] setting says its range instead.
const TOO_LARGE: &str = "too large";

/// Timers add durations to a millisecond clock; a year is far beyond any
/// sensible setting and far from overflow.
pub(super) const MAX_DURATION_MS: u128 = 366 * 24 * 3600 * 1000;

impl Kind for Dur {
    type T = Duration;
    const METAVAR: &'static str = "DURATION";
    fn parse(value: &str) -> Result<Duration, String> {
        let split = value
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(value.len());
        let (number, unit) = value.split_at(split);
        let unit_ms = match unit.trim() {
            "ms" => 1,
            "" | "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err("not a duration like 500ms, 10s, 5m, 1h or 0.5".to_string()),
        };
        let (scaled, divisor) =
            decimal(number).ok_or("not a duration like 500ms, 10s, 5m, 1h or 0.5")?;
        let ms = scaled * unit_ms;
        if !ms.is_multiple_of(divisor) {
            return Err("finer than a millisecond".to_string());
        }
        match ms / divisor {
            ms if ms > MAX_DURATION_MS => Err(TOO_LARGE.to_string()),
            ms => Ok(Duration::from_millis(ms as u64)),
        }
    }
    fn show(value: &Duration) -> String {
        let ms = value.as_millis();
        if !value.subsec_nanos().is_multiple_of(1_000_000) {
            // Not made by `parse`; print what it is rather than round.
            format!("{value:?}")
        } else if ms != 0 && ms.is_multiple_of(3_600_000) {
            format!("{}h", ms / 3_600_000)
        } else if ms != 0 && ms.is_multiple_of(60_000) {
            format!("{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        }
    }
}

/// `12.5` as (125, 10): the digits as an integer and the power of ten to
/// divide by, so fractions stay exact. `None` unless `digits[.digits]`.
pub(super) fn decimal(number: &str) -> Option<(u128, u128)> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    // Bounding the digit count keeps the u128 arithmetic from overflowing.
    if int.len() + frac.len() == 0
        || int.len() + frac.len() > 20
        || !all_digits(int)
        || !all_digits(frac)
    {
        return None;
    }
    let scaled = format!("{int}{frac}").parse().ok()?;
    Some((scaled, 10u128.pow(frac.len() as u32)))
}

/// A byte count: `16384`, `16KiB`, `1MiB`.
pub(super) struct Size;

impl Kind for Size {
    type T = usize;
    const METAVAR: &'static str = "SIZE";
    fn parse(value: &str) -> Result<usize, String> {
        const WHY: &str = "not a size like 16384, 16KiB or 1MiB";
        let split = value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len());
        let (number, unit) = value.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let scale: usize = match unit.as_str() {
            "" | "b" => 1,
            "kib" => 1024,
            "mib" => 1024 * 1024,
            _ => return Err(WHY.to_string()),
        };
        let n: usize = Count::<usize>::parse(number).map_err(|_| WHY.to_string())?;
        n.checked_mul(scale).ok_or_else(|| TOO_LARGE.to_string())
    }
    fn show(value: &usize) -> String {
        match *value {
            n if n != 0 && n.is_multiple_of(1024 * 1024) => format!("{}MiB", n / (1024 * 1024)),
            n if n != 0 && n.is_multiple_of(1024) => format!("{}KiB", n / 1024),
            n => n.to_string(),
        }
    }
}

/// An unsigned integer of type `N`, digits only.
pub(super) struct Count<N>(PhantomData<N>);

impl<N: FromStr + ToString> Kind for Count<N> {
    type T = N;
    const METAVAR: &'static str = "COUNT";
    fn parse(value: &str) -> Result<N, String> {
        // `u32::from_str` would also take `+5`; keep the syntax to digits.
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err("not an unsigned integer".to_string());
        }
        value.parse().map_err(|_| TOO_LARGE.to_string())
    }
    fn show(value: &N) -> String {
        value.to_string()
    }
}

/// A kind whose values are measured by one number (a count, bytes, or
/// milliseconds), so a range can bound it.
pub(super) trait Measured: Kind {
    /// The value as that number.
    fn measure(value: &Self::T) -> u64;
    /// The value of that number.
    fn of_measure(n: u64) -> Self::T;
}

impl Measured for Dur {
    fn measure(value: &Duration) -> u64 {
        u64::try_from(value.as_millis()).unwrap_or(u64::MAX)
    }
    fn of_measure(n: u64) -> Duration {
        Duration::from_millis(n)
    }
}

impl Measured for Size {
    fn measure(value: &usize) -> u64 {
        *value as u64
    }
    fn of_measure(n: u64) -> usize {
        usize::try_from(n).unwrap_or(usize::MAX)
    }
}

impl Measured for Count<usize> {
    fn measure(value: &usize) -> u64 {
        *value as u64
    }
    fn of_measure(n: u64) -> usize {
        usize::try_from(n).unwrap_or(usize::MAX)
    }
}

impl Measured for Count<u32> {
    fn measure(value: &u32) -> u64 {
        u64::from(*value)
    }
    fn of_measure(n: u64) -> u32 {
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// Kind `K` limited to `MIN..=MAX` in its measure (a count, bytes, or
/// milliseconds). Every numeric setting has one: a value the type can
/// hold is not necessarily one the server survives (`--max-headers` at
/// `u64::MAX` made the first request allocate without end; `--resume-max`
/// there wrapped an addition).
pub(super) struct Within<K, const MIN: u64, const MAX: u64>(PhantomData<K>);

impl<K: Measured, const MIN: u64, const MAX: u64> Within<K, MIN, MAX> {
    fn out_of_range() -> String {
        format!("must be from {}", Self::range_text())
    }

    fn range_text() -> String {
        let show = |n| K::show(&K::of_measure(n));
        format!("{} to {}", show(MIN), show(MAX))
    }
}

impl<K: Measured, const MIN: u64, const MAX: u64> Kind for Within<K, MIN, MAX> {
    type T = K::T;
    const METAVAR: &'static str = K::METAVAR;
    fn parse(value: &str) -> Result<K::T, String> {
        match K::parse(value) {
            Ok(v) if (MIN..=MAX).contains(&K::measure(&v)) => Ok(v),
            Ok(_) => Err(Self::out_of_range()),
            Err(why) if why == TOO_LARGE => Err(Self::out_of_range()),
            Err(why) => Err(why),
        }
    }
    fn show(value: &K::T) -> String {
        K::show(value)
    }
    fn range() -> Option<String> {
        Some(Self::range_text())
    }
}

/// Splits a comma-separated list; the empty string is the empty list.
pub(super) fn list<T>(
    value: &str,
    item: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|entry| match entry.trim() {
            "" => Err("empty list entry".to_string()),
            entry => item(entry).map_err(|why| format!("{why}: '{}'", quote(entry))),
        })
        .collect()
}

/// Trusted proxies: addresses and CIDR blocks.
pub(super) struct Proxies;

impl Kind for Proxies {
    type T = Vec<IpNet>;
    const METAVAR: &'static str = "LIST";
    fn parse(value: &str) -> Result<Vec<IpNet>, String> {
        list(value, |entry| entry.parse::<IpNet>().map_err(|e| e.0))
    }
    fn show(value: &Vec<IpNet>) -> String {
        value
            .iter()
            .map(IpNet::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Allowed origins, normalized as browsers send them.
pub(super) struct Origins;

impl Kind for Origins {
    type T = Vec<String>;
    const METAVAR: &'static str = "LIST";
    fn parse(value: &str) -> Result<Vec<String>, String> {
        list(value, normalize_origin_inner)
    }
    fn show(value: &Vec<String>) -> String {
        value.join(",")
    }
}

/// `HTTPS://Chat.Example.org:443/` → `https://chat.example.org`: lower
/// case, no path, and no default port, because that is how a browser's
/// `Origin` header spells it and the match is by string equality.
/// The error is the reason alone, without a flag name.
pub fn normalize_origin(origin: &str) -> Result<String, ConfigError> {
    normalize_origin_inner(origin).map_err(ConfigError)
}

pub(super) fn normalize_origin_inner(origin: &str) -> Result<String, String> {
    let lower = origin.trim().to_ascii_lowercase();
    let (scheme, rest) = lower
        .split_once("://")
        .ok_or("not an origin like https://host[:port]")?;
    let default_port = match scheme {
        "http" => "80",
        "https" => "443",
        _ => return Err("scheme must be http or https".to_string()),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err("an origin has only scheme, host and port".to_string());
    }
    let (host, port) = split_host_port(rest)?;
    match port {
        Some(port) if port != default_port => Ok(format!("{scheme}://{host}:{port}")),
        _ => Ok(format!("{scheme}://{host}")),
    }
}

/// Splits `host[:port]` or `[v6][:port]`, checking both halves.
pub(super) fn split_host_port(hostport: &str) -> Result<(&str, Option<&str>), String> {
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let end = inner.find(']').ok_or("unclosed [ in host")?;
        if inner[..end].parse::<std::net::Ipv6Addr>().is_err() {
            return Err("bad IPv6 address in host".to_string());
        }
        let (host, after) = hostport.split_at(end + 2);
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("junk after ]")?)),
        }
    } else {
        let (host, port) = match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        };
        // Browsers send IDNs as punycode, so plain ASCII is all we accept.
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if host.is_empty() || !host.chars().all(ok) {
            return Err("host must be a DNS name or IP address (punycode for IDNs)".to_string());
        }
        (host, port)
    };
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0);
        if !valid {
            return Err("port must be 1..=65535".to_string());
        }
    }
    Ok((host, port))
}

/// An on/off setting: bare flag, or `1/true/yes/on` and `0/false/no/off`.
pub(super) struct Switch;

impl Kind for Switch {
    type T = bool;
    const METAVAR: &'static str = "BOOL";
    const SWITCH: bool = true;
    fn parse(value: &str) -> Result<bool, String> {
        match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err("not one of 1/true/yes/on or 0/false/no/off".to_string()),
        }
    }
    fn show(value: &bool) -> String {
        value.to_string()
    }
}

/// A log level name.
pub(super) struct Level;

impl Kind for Level {
    type T = LogLevel;
    const METAVAR: &'static str = "LEVEL";
    fn parse(value: &str) -> Result<LogLevel, String> {
        value.parse().map_err(|e: ConfigError| e.0)
    }
    fn show(value: &LogLevel) -> String {
        value.to_string()
    }
}

/// Usernames: a comma-separated list of 1 to 32 letters or digits each.
pub(super) struct Names;

impl Kind for Names {
    type T = Vec<String>;
    const METAVAR: &'static str = "NAMES";
    fn parse(value: &str) -> Result<Vec<String>, String> {
        list(value, |name| {
            let ok =
                (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric());
            if ok {
                Ok(name.to_string())
            } else {
                Err("a username is 1 to 32 ASCII letters or digits".to_string())
            }
        })
    }
    fn show(value: &Vec<String>) -> String {
        value.join(",")
    }
}

/// A registration policy name.
pub(super) struct RegistrationKind;

impl Kind for RegistrationKind {
    type T = super::Registration;
    const METAVAR: &'static str = "POLICY";
    fn parse(value: &str) -> Result<super::Registration, String> {
        use super::Registration::*;
        match value {
            "open" => Ok(Open),
            "invite" => Ok(Invite),
            "closed" => Ok(Closed),
            _ => Err("not one of open, invite or closed".to_string()),
        }
    }
    fn show(value: &super::Registration) -> String {
        value.as_str().to_string()
    }
    fn range() -> Option<String> {
        Some("open, invite or closed".to_string())
    }
}
