//! The result of a run: ordered rows, printed as an aligned table for people
//! or as one JSON line for scripts.

use serde_json::{Map, Value};

/// Rows of one run, in the order they were added.
#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    /// Problems that make the run fail (exit 1).
    pub problems: Vec<String>,
}

/// One measured figure: a JSON key and value, and how a person reads it.
struct Row {
    key: String,
    value: Value,
    human: String,
}

impl Report {
    /// Adds a figure.
    pub fn add(&mut self, key: &str, value: impl Into<Value>, human: impl Into<String>) {
        self.rows.push(Row {
            key: key.to_string(),
            value: value.into(),
            human: human.into(),
        });
    }

    /// Adds a count, shown with thousands separators.
    pub fn count(&mut self, key: &str, n: u64) {
        self.add(key, n, group(n));
    }

    /// Adds a rate per second, rounded.
    pub fn rate(&mut self, key: &str, per_s: f64) {
        self.add(
            key,
            per_s.round(),
            format!("{}/s", group(per_s.round() as u64)),
        );
    }

    /// Adds a latency in nanoseconds; JSON gets microseconds.
    pub fn latency(&mut self, key: &str, ns: u64) {
        self.add(key, round2(ns as f64 / 1e3), micros(ns as f64 / 1e3));
    }

    /// Records a problem; the run exits 1.
    pub fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    /// The one-line JSON summary.
    pub fn json(&self) -> String {
        let mut m: Map<String, Value> = self
            .rows
            .iter()
            .map(|r| (r.key.clone(), r.value.clone()))
            .collect();
        m.insert("ok".into(), self.problems.is_empty().into());
        m.insert("problems".into(), self.problems.clone().into());
        Value::Object(m).to_string()
    }

    /// The aligned table.
    pub fn table(&self) -> String {
        let width = self.rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
        let mut out = String::new();
        for r in &self.rows {
            out.push_str(&format!("{:width$}  {}\n", r.key, r.human));
        }
        let verdict = if self.problems.is_empty() {
            "OK"
        } else {
            "FAILED"
        };
        out.push_str(&format!("{:width$}  {verdict}\n", "result"));
        for p in &self.problems {
            out.push_str(&format!("  problem: {p}\n"));
        }
        out
    }
}

/// `1234567` as `1,234,567`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Microseconds, switching to milliseconds above 10 ms.
pub fn micros(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.1} µs")
    }
}

/// Bytes as KiB/MiB for people.
pub fn bytes(b: f64) -> String {
    if b.abs() >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2} KiB", b / 1024.0)
    }
}

/// Rounds to two decimals for JSON.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_and_units() {
        let table = [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1_234_567, "1,234,567"),
        ];
        for (n, want) in table {
            assert_eq!(group(n), want);
        }
        assert_eq!(micros(12.34), "12.3 µs");
        assert_eq!(micros(12_345.0), "12.35 ms");
        assert_eq!(bytes(4096.0), "4.00 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0), "3.0 MiB");
    }

    #[test]
    fn json_and_table_carry_the_verdict() {
        let mut r = Report::default();
        r.count("sent", 1500);
        r.latency("p99_us", 1_250);
        assert_eq!(
            r.json(),
            r#"{"ok":true,"p99_us":1.25,"problems":[],"sent":1500}"#
        );
        r.problem("lost 3".into());
        let t = r.table();
        assert!(
            t.contains("sent    1,500\n") && t.contains("FAILED") && t.contains("lost 3"),
            "{t}"
        );
    }
}
