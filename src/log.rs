//! The logger: one line per event on stderr, `2026-11-22T10:00:00.123Z INFO
//! <message>`, filtered by level.
//!
//! Formatting is a pure function of (level, time, message) so it is tested
//! against known timestamps; only [`Logger::log`] reads the wall clock and
//! writes. Every line is kept to one line whatever the message holds, and
//! [`escape`] quotes untrusted text (paths, close reasons, user input) so
//! that no value can forge a line or a field.

use std::fmt;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::LogLevel;

/// Writes log lines at or above a level of importance to stderr.
#[derive(Debug, Clone, Copy)]
pub struct Logger {
    level: LogLevel,
}

impl Logger {
    /// A logger that writes events up to `level` of verbosity
    /// (`Info` writes errors, warnings and info, but not debug).
    pub fn new(level: LogLevel) -> Logger {
        Logger { level }
    }

    /// Whether an event at `level` would be written. Callers check this
    /// before building an expensive message.
    pub fn enabled(&self, level: LogLevel) -> bool {
        level <= self.level
    }

    /// Writes one line for `args` at `level`, stamped with the current UTC
    /// time. Use [`escape`] for untrusted parts of the message.
    pub fn log(&self, level: LogLevel, args: fmt::Arguments<'_>) {
        if !self.enabled(level) {
            return;
        }
        // A clock before 1970 is a broken host, not a reason to fail.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let line = format_line(level, now, &args.to_string());
        // One `write_all` of the whole line under the stderr lock, so lines
        // from different places never interleave. A failed write is dropped:
        // losing a log line must not take the server down.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// The full log line, newline included: `1970-01-01T00:00:00.000Z INFO msg\n`.
///
/// Raw line breaks and other control characters in `msg` are escaped
/// (`\n`, `\u{1b}`), so a caller that forgot [`escape`] still cannot split
/// the line in two.
pub fn format_line(level: LogLevel, unix_millis: u64, msg: &str) -> String {
    let label = match level {
        LogLevel::Error => "ERROR",
        LogLevel::Warn => "WARN",
        LogLevel::Info => "INFO",
        LogLevel::Debug => "DEBUG",
    };
    let mut line = format!("{} {label} ", Timestamp(unix_millis));
    for c in msg.chars() {
        if breaks_line(c) {
            line.extend(c.escape_debug());
        } else {
            line.push(c);
        }
    }
    line.push('\n');
    line
}

/// Characters a terminal or log collector may take as the end of a line,
/// or that can rewrite what was already printed (ESC, backspace).
fn breaks_line(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// Unix milliseconds printed as an RFC 3339 UTC time with milliseconds.
struct Timestamp(u64);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DAY_MS: u64 = 86_400_000;
        let (days, ms_of_day) = (self.0 / DAY_MS, self.0 % DAY_MS);
        // u64 milliseconds are at most ~2^26 days, far inside i64.
        let (year, month, day) = civil_from_days(days as i64);
        let secs = ms_of_day / 1000;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            ms_of_day % 1000
        )
    }
}

/// (year, month 1..=12, day 1..=31) of the day `days` after 1970-01-01,
/// in the proleptic Gregorian calendar.
///
/// Howard Hinnant's `civil_from_days`: count from 0000-03-01 so the leap
/// day falls at the end of each year, then split into 400-year eras of
/// exactly 146,097 days.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146_096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of March-based year
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    // January and February belong to the next civil year.
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Wraps untrusted text for a log line; see [`escape`].
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(&'a str);

/// Makes untrusted text safe inside a log line: displays it in double
/// quotes with quotes, backslashes, control characters and non-printable
/// Unicode (line separators, bidi overrides) escaped, so it cannot end the
/// line, forge another field or restyle the terminal.
///
/// `escape("a \"b\"\nc")` displays as `"a \"b\"\nc"`.
pub fn escape(s: &str) -> Escaped<'_> {
    Escaped(s)
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `str::escape_debug` is std's Rust-literal escaping: it covers
        // exactly the set above, and its output is plain printable text.
        write!(f, "\"{}\"", self.0.escape_debug())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_line_at_known_times() {
        let cases: &[(u64, LogLevel, &str, &str)] = &[
            (
                0,
                LogLevel::Info,
                "up",
                "1970-01-01T00:00:00.000Z INFO up\n",
            ),
            (
                1,
                LogLevel::Error,
                "x",
                "1970-01-01T00:00:00.001Z ERROR x\n",
            ),
            (
                86_399_999,
                LogLevel::Warn,
                "",
                "1970-01-01T23:59:59.999Z WARN \n",
            ),
            (
                951_782_400_000,
                LogLevel::Debug,
                "d",
                "2000-02-29T00:00:00.000Z DEBUG d\n",
            ),
            (
                951_868_800_000,
                LogLevel::Info,
                "m",
                "2000-03-01T00:00:00.000Z INFO m\n",
            ),
            (
                1_709_251_199_999,
                LogLevel::Info,
                "leap",
                "2024-02-29T23:59:59.999Z INFO leap\n",
            ),
            (
                1_709_251_200_000,
                LogLevel::Info,
                "mar",
                "2024-03-01T00:00:00.000Z INFO mar\n",
            ),
            (
                1_795_341_600_123,
                LogLevel::Info,
                "hi",
                "2026-11-22T10:00:00.123Z INFO hi\n",
            ),
            (
                4_102_444_800_000,
                LogLevel::Info,
                "y",
                "2100-01-01T00:00:00.000Z INFO y\n",
            ),
        ];
        for &(ms, level, msg, want) in cases {
            assert_eq!(format_line(level, ms, msg), want, "at {ms}");
        }
    }

    /// Walks 600 years day by day with a naive calendar and checks that the
    /// closed-form conversion agrees on every day.
    #[test]
    fn civil_from_days_matches_a_day_by_day_calendar() {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for days in 0..600 * 366 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let month_len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > month_len {
                (d, m) = (1, m + 1);
            }
            if m > 12 {
                (m, y) = (1, y + 1);
            }
        }
    }

    #[test]
    fn format_line_keeps_raw_messages_on_one_line() {
        let cases = [
            ("a\nb", "a\\nb"),
            ("a\r\nINFO forged", "a\\r\\nINFO forged"),
            ("\u{1b}[31mred", "\\u{1b}[31mred"),
            ("x\u{2028}y\u{85}z", "x\\u{2028}y\\u{85}z"),
            ("tab\there", "tab\\there"),
            ("unicode é ok", "unicode é ok"),
        ];
        for (msg, want) in cases {
            let line = format_line(LogLevel::Info, 0, msg);
            assert_eq!(line, format!("1970-01-01T00:00:00.000Z INFO {want}\n"));
            assert_eq!(line.matches('\n').count(), 1, "{msg:?}");
        }
    }

    #[test]
    fn escape_quotes_untrusted_text() {
        let cases = [
            ("plain", r#""plain""#),
            ("with space", r#""with space""#),
            ("say \"hi\"", r#""say \"hi\"""#),
            ("it's", r#""it\'s""#),
            ("back\\slash", r#""back\\slash""#),
            ("line\nbreak\r", r#""line\nbreak\r""#),
            ("\u{1b}[2J", r#""\u{1b}[2J""#),
            ("rtl\u{202e}txt", r#""rtl\u{202e}txt""#),
            ("sep\u{2028}", r#""sep\u{2028}""#),
            ("", r#""""#),
        ];
        for (raw, want) in cases {
            let shown = escape(raw).to_string();
            assert_eq!(shown, want);
            assert!(!shown.chars().any(breaks_line), "{shown}");
        }
    }

    #[test]
    fn enabled_follows_verbosity() {
        use LogLevel::*;
        let levels = [Error, Warn, Info, Debug];
        for (i, &max) in levels.iter().enumerate() {
            let logger = Logger::new(max);
            for (j, &level) in levels.iter().enumerate() {
                assert_eq!(logger.enabled(level), j <= i, "{max:?} vs {level:?}");
            }
        }
    }
}
