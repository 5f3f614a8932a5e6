//! Reading `/proc`: CPU time and resident memory of a process, and our own
//! open-file limit. Parsers are pure functions over the file text.

use std::process::Command;
use std::sync::OnceLock;

/// Which process to sample: ourselves or a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proc {
    /// The bench itself.
    Me,
    /// Another process (the server).
    Pid(u32),
}

impl Proc {
    fn path(self, file: &str) -> String {
        match self {
            Proc::Me => format!("/proc/self/{file}"),
            Proc::Pid(p) => format!("/proc/{p}/{file}"),
        }
    }
}

/// utime + stime in clock ticks from the text of `/proc/PID/stat`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may contain spaces or ')':
    // fields are counted from after the last ')'. There, utime and stime
    // are the 12th and 13th fields (fields 14 and 15 of the whole line).
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` in KiB from the text of `/proc/PID/status`.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The soft "Max open files" from the text of `/proc/self/limits`;
/// `u64::MAX` for "unlimited".
pub fn parse_open_files_soft(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}

/// Busy ticks of all CPUs together from the text of `/proc/stat`: the
/// first line's fields except idle and iowait.
pub fn parse_machine_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is
    // already inside user and nice).
    let busy = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    (fields.len() >= 8).then_some(busy)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when that fails).
pub fn clk_tck() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// CPU time (user + system) of `p` in seconds.
pub fn cpu_seconds(p: Proc) -> Option<f64> {
    let text = std::fs::read_to_string(p.path("stat")).ok()?;
    Some(parse_stat_ticks(&text)? as f64 / clk_tck() as f64)
}

/// Busy CPU time of the whole machine in seconds.
pub fn machine_busy_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    Some(parse_machine_busy_ticks(&text)? as f64 / clk_tck() as f64)
}

/// Resident memory of `p` in bytes.
pub fn rss_bytes(p: Proc) -> Option<u64> {
    let text = std::fs::read_to_string(p.path("status")).ok()?;
    Some(parse_vm_rss_kib(&text)? * 1024)
}

/// Our soft open-file limit.
pub fn open_files_soft() -> Option<u64> {
    parse_open_files_soft(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_hostile_command_name() {
        let stat =
            "1234 (pir) (at chat) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 17 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(267));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn machine_busy_time() {
        let stat = "cpu  100 5 50 9000 20 1 30 4 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(
            parse_machine_busy_ticks(stat),
            Some(100 + 5 + 50 + 1 + 30 + 4)
        );
        assert_eq!(parse_machine_busy_ticks("cpu  1 2 3\n"), None);
        assert!(machine_busy_seconds().is_some());
    }

    #[test]
    fn status_and_limits() {
        let status = "Name:\tpiratchat\nVmPeak:\t  9000 kB\nVmRSS:\t    4321 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss_kib(status), Some(4321));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 1048576              files\n";
        assert_eq!(parse_open_files_soft(limits), Some(1024));
        let unl = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files_soft(unl), Some(u64::MAX));
    }

    #[test]
    fn our_own_process_is_readable() {
        assert!(cpu_seconds(Proc::Me).is_some());
        assert!(rss_bytes(Proc::Me).unwrap() > 0);
        assert!(open_files_soft().is_some());
    }
}
