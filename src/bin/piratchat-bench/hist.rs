//! A log-linear latency histogram in nanoseconds: fixed memory, O(1) record,
//! bounded relative error, no dependencies.
//!
//! Values below `2^SUB_BITS` get one bucket each; above that, every power of
//! two is split into `2^SUB_BITS` equal buckets, so a reported percentile is
//! within 1/32 (about 3%) of the true value. Count, sum, min and max are kept
//! exactly.

/// Linear sub-buckets per power of two, as a bit count.
const SUB_BITS: u32 = 5;
/// Sub-buckets per power of two.
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for every `u64`.
const BUCKETS: usize = ((64 - SUB_BITS + 1) as usize) << SUB_BITS;

/// A histogram of `u64` samples (the bench records nanoseconds).
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

/// The bucket holding `v`.
fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = exp - SUB_BITS;
    let sub = (v >> shift) - SUB; // 0..SUB
    (((shift + 1) as u64) << SUB_BITS | sub) as usize
}

/// The largest value that falls into bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let shift = (i >> SUB_BITS) - 1;
    let sub = i & (SUB - 1);
    let low = (SUB + sub) << shift;
    low + ((1u64 << shift) - 1)
}

impl Histogram {
    /// Adds one sample.
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.count += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest sample, 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean of the samples, 0 when empty.
    pub fn mean(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            (self.sum / u128::from(self.count)) as u64
        }
    }

    /// The value at quantile `q` (0.0..=1.0): the upper edge of the bucket
    /// holding the `ceil(q * count)`-th smallest sample, clamped to the
    /// exact max; the smallest rank gives the exact min. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if rank == 1 {
            return self.min;
        }
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_contain_their_values() {
        let mut prev_upper = None;
        for i in 0..BUCKETS - 1 {
            let hi = upper(i);
            if let Some(p) = prev_upper {
                assert!(hi > p, "bucket {i}");
                assert_eq!(index(p + 1), i, "first value of bucket {i}");
            }
            assert_eq!(index(hi), i, "upper edge of bucket {i}");
            prev_upper = Some(hi);
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn relative_error_is_bounded() {
        for v in [33u64, 100, 1_000, 12_345, 999_999, 1 << 40, u64::MAX / 3] {
            let hi = upper(index(v));
            assert!(
                hi >= v && (hi - v) as f64 <= v as f64 / SUB as f64,
                "{v} -> {hi}"
            );
        }
    }

    #[test]
    fn percentiles_of_a_uniform_range() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1_000);
        }
        let table = [(0.5, 5_000_000u64), (0.99, 9_900_000), (0.999, 9_990_000)];
        for (q, exact) in table {
            let got = h.quantile(q);
            let err = got.abs_diff(exact) as f64 / exact as f64;
            assert!(err < 0.035, "q{q}: {got} vs {exact}");
        }
        assert_eq!(h.quantile(1.0), 10_000_000);
        assert_eq!(h.quantile(0.0), 1_000);
        assert_eq!(h.max(), 10_000_000);
        assert_eq!(h.mean(), 5_000_500);
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn small_values_are_exact_and_empty_is_zero() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.99), 0);
        for v in [0u64, 1, 2, 3, 31] {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), 2);
        assert_eq!(h.quantile(1.0), 31);
    }
}
