//! Rate limits, sans-IO: a token bucket per chat connection, and a sliding
//! window of attempts per client address for registrations and failed logins.

use crate::ids::Millis;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

/// A token bucket: `burst` tokens, refilled at `per_sec` tokens a second.
/// Tokens are kept in thousandths so refills need no floating point.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    milli_tokens: u64,
    last: Millis,
}

impl TokenBucket {
    /// A full bucket at time `now`.
    pub fn full(burst: u32, now: Millis) -> TokenBucket {
        TokenBucket {
            milli_tokens: u64::from(burst) * 1000,
            last: now,
        }
    }

    /// Takes one token if there is one. A `burst` of 0 turns the limit off.
    pub fn take(&mut self, burst: u32, per_sec: u32, now: Millis) -> bool {
        if burst == 0 {
            return true;
        }
        let elapsed = now.saturating_sub(self.last).0;
        self.last = now;
        // A rate of n per second adds n thousandths per millisecond.
        let refill = elapsed.saturating_mul(u64::from(per_sec));
        let cap = u64::from(burst) * 1000;
        self.milli_tokens = self.milli_tokens.saturating_add(refill).min(cap);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

/// Most addresses one limiter tracks: the global bound on its memory.
/// A new address past it takes the place of the least recently seen one,
/// so a flood from many addresses costs the flood its own history and
/// never refuses an address that has done nothing (issue 11 #6: refusing
/// new addresses once the table was full locked everybody out after one
/// IPv6 /48 had been walked).
pub const MAX_TRACKED_ADDRESSES: usize = 65_536;

/// Up to `limit` attempts per `window` for each client address. IPv6
/// addresses count per /64, the block one subscriber usually holds, so one
/// host cannot dodge the limit by rotating through its own prefix. A
/// limiter made with [`AddressLimiter::aggregating`] counts new IPv6
/// addresses per /48 once the table is half full, so walking a /48 (65,536
/// /64s) costs the attacker one /48's allowance rather than 65,536.
///
/// Entries are ordered by their last attempt. That order is also the
/// order in which they expire (an entry is forgotten once its newest
/// attempt leaves the window), so expiry needs no timer per entry: the
/// oldest entry's end is the limiter's next deadline.
#[derive(Debug)]
pub struct AddressLimiter {
    limit: u32,
    window: Millis,
    capacity: usize,
    aggregate_v6: bool,
    entries: HashMap<Key, Entry>,
    /// Every entry by (last attempt, sequence), oldest first.
    by_seen: BTreeMap<(Millis, u64), Key>,
    seq: u64,
}

/// What attempts are counted under: a network and its prefix length (an
/// IPv4 address is /32, an IPv6 subscriber /64, an aggregated block /48).
/// The length is part of the key because `2001:db8:1::/48` and
/// `2001:db8:1::/64` share their address.
type Key = (IpAddr, u8);

#[derive(Debug)]
struct Entry {
    /// The newest `limit` attempts, oldest first.
    times: VecDeque<Millis>,
    /// This entry's key in `by_seen`.
    seen: (Millis, u64),
}

impl AddressLimiter {
    /// A limiter of `limit` attempts per `window`; a limit of 0 is off.
    pub fn new(limit: u32, window: Millis) -> AddressLimiter {
        AddressLimiter {
            limit,
            window,
            capacity: MAX_TRACKED_ADDRESSES,
            aggregate_v6: false,
            entries: HashMap::new(),
            by_seen: BTreeMap::new(),
            seq: 0,
        }
    }

    /// The same limiter, counting new IPv6 addresses per /48 while the
    /// table is at least half full (see the type's doc).
    pub fn aggregating(mut self) -> AddressLimiter {
        self.aggregate_v6 = true;
        self
    }

    /// The same limiter tracking at most `capacity` addresses (tests use
    /// small tables).
    pub fn with_capacity(mut self, capacity: usize) -> AddressLimiter {
        self.capacity = capacity.max(1);
        self
    }

    /// The key `addr` counts under now: its entry if it has one, else its
    /// /48 when that is counted as a whole or the table is under pressure
    /// (aggregating limiters only), else its address or /64.
    fn key_of(&self, addr: IpAddr) -> Key {
        let fine = bucket_key(addr);
        let (IpAddr::V6(v6), _) = fine else {
            return fine;
        };
        if !self.aggregate_v6 || self.entries.contains_key(&fine) {
            return fine;
        }
        let s = v6.segments();
        let coarse = (IpAddr::from([s[0], s[1], s[2], 0, 0, 0, 0, 0]), 48);
        if self.entries.contains_key(&coarse) || self.entries.len() >= self.capacity / 2 {
            coarse
        } else {
            fine
        }
    }

    /// `Err(seconds)` when `addr` is over the limit: the whole seconds until
    /// its next attempt would be allowed (at least 1). Only the address's
    /// own attempts (or its block's, see the type's doc) count: a full
    /// table refuses nobody.
    pub fn check(&self, addr: IpAddr, now: Millis) -> Result<(), u64> {
        if self.limit == 0 {
            return Ok(());
        }
        let Some(entry) = self.entries.get(&self.key_of(addr)) else {
            return Ok(());
        };
        let times = &entry.times;
        let live = times.iter().filter(|t| t.0 + self.window.0 > now.0).count();
        if live < self.limit as usize {
            return Ok(());
        }
        // The oldest attempt still inside the window frees a place when it
        // leaves it.
        let oldest = times.iter().find(|t| t.0 + self.window.0 > now.0).copied();
        let free_at = oldest.map_or(now.0, |t| t.0 + self.window.0);
        Err((free_at - now.0).div_ceil(1000).max(1))
    }

    /// Records one attempt of `addr`. A new address in a full table takes
    /// the place of the least recently seen one.
    pub fn record(&mut self, addr: IpAddr, now: Millis) {
        if self.limit == 0 {
            return;
        }
        let key = self.key_of(addr);
        let seen = (now, self.seq);
        self.seq += 1;
        let times = match self.entries.get_mut(&key) {
            Some(entry) => {
                self.by_seen.remove(&entry.seen);
                entry.seen = seen;
                &mut entry.times
            }
            None => {
                if self.entries.len() >= self.capacity {
                    self.forget_oldest();
                }
                let entry = Entry {
                    times: VecDeque::new(),
                    seen,
                };
                &mut self.entries.entry(key).or_insert(entry).times
            }
        };
        times.push_back(now);
        // Only the newest `limit` attempts matter for the decision.
        while times.len() > self.limit as usize {
            times.pop_front();
        }
        self.by_seen.insert(seen, key);
    }

    fn forget_oldest(&mut self) {
        if let Some((_, key)) = self.by_seen.pop_first() {
            self.entries.remove(&key);
        }
    }

    /// When the oldest entry's last attempt leaves the window: the time
    /// [`AddressLimiter::expire`] has work.
    pub fn next_expiry(&self) -> Option<Millis> {
        let (&(seen, _), _) = self.by_seen.first_key_value()?;
        Some(Millis(seen.0.saturating_add(self.window.0)))
    }

    /// Forgets every address whose attempts have all left the window.
    pub fn expire(&mut self, now: Millis) {
        while self.next_expiry().is_some_and(|end| end.0 <= now.0) {
            self.forget_oldest();
        }
    }

    /// Addresses tracked.
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }
}

/// The key an address is counted under: itself for IPv4 (also when mapped
/// into IPv6), its /64 for IPv6.
fn bucket_key(addr: IpAddr) -> Key {
    match addr {
        IpAddr::V4(_) => (addr, 32),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), 32),
            None => {
                let s = v6.segments();
                (IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0]), 64)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut b = TokenBucket::full(3, Millis(0));
        let taken: Vec<bool> = (0..5).map(|_| b.take(3, 10, Millis(0))).collect();
        assert_eq!(taken, [true, true, true, false, false]);
        assert!(!b.take(3, 10, Millis(99)), "0.99 of a token is not one");
        assert!(b.take(3, 10, Millis(100)));
        assert!(!b.take(3, 10, Millis(100)));
        // A long pause refills only up to the burst.
        let taken = (0..4).filter(|_| b.take(3, 10, Millis(100_000))).count();
        assert_eq!(taken, 3);
    }

    #[test]
    fn bucket_of_zero_is_off() {
        let mut b = TokenBucket::full(0, Millis(0));
        assert!((0..1000).all(|_| b.take(0, 0, Millis(0))));
    }

    #[test]
    fn limiter_window_and_retry_after() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut l = AddressLimiter::new(2, Millis(10_000));
        assert_eq!(l.check(ip, Millis(0)), Ok(()));
        l.record(ip, Millis(0));
        l.record(ip, Millis(1_000));
        assert_eq!(l.tracked(), 1);
        assert_eq!(l.check(ip, Millis(1_500)), Err(9), "8.5 s rounds up");
        assert_eq!(l.check(ip, Millis(9_999)), Err(1));
        assert_eq!(l.check(ip, Millis(10_000)), Ok(()));
        assert_eq!(l.next_expiry(), Some(Millis(11_000)));
        l.expire(Millis(10_999));
        assert_eq!(l.tracked(), 1);
        l.expire(Millis(11_000));
        assert_eq!((l.tracked(), l.next_expiry()), (0, None));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let mut l = AddressLimiter::new(1, Millis(1000));
        l.record("2001:db8::1".parse().unwrap(), Millis(0));
        assert!(
            l.check("2001:db8::ffff".parse().unwrap(), Millis(0))
                .is_err()
        );
        assert!(
            l.check("2001:db8:0:1::1".parse().unwrap(), Millis(0))
                .is_ok()
        );
        l.record("10.0.0.1".parse().unwrap(), Millis(0));
        assert!(
            l.check("::ffff:10.0.0.1".parse().unwrap(), Millis(0))
                .is_err()
        );
    }

    #[test]
    fn limiter_of_zero_is_off() {
        let mut l = AddressLimiter::new(0, Millis(1000));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..100 {
            l.record(ip, Millis(0));
        }
        assert_eq!(l.tracked(), 0);
        assert_eq!(l.check(ip, Millis(0)), Ok(()));
    }

    /// Issue 11 #6: after 65,536 distinct addresses every new one was
    /// refused. 70,000 addresses, v4 and v6, walk the table; a fresh
    /// address is still allowed, an address over its limit stays refused
    /// while it keeps trying, and memory stays bounded.
    #[test]
    fn a_full_table_refuses_nobody_new() {
        for aggregating in [false, true] {
            let mut l = AddressLimiter::new(2, Millis(3_600_000));
            if aggregating {
                l = l.aggregating();
            }
            let bad: IpAddr = "203.0.113.9".parse().unwrap();
            l.record(bad, Millis(0));
            l.record(bad, Millis(0));
            for i in 0..70_000u32 {
                let addr: IpAddr = if i % 2 == 0 {
                    std::net::Ipv4Addr::from(0x0a00_0000 + i).into()
                } else {
                    // A new /48 each time: nothing to aggregate, so
                    // every one is new (walking one /48 is the next test).
                    let s = [0x2001, 0xdb8 + (i >> 16) as u16, i as u16, 7, 0, 0, 0, 1];
                    std::net::Ipv6Addr::from(s).into()
                };
                assert_eq!(l.check(addr, Millis(1)), Ok(()), "{addr}");
                l.record(addr, Millis(1));
                if i % 1000 == 0 {
                    // The misbehaving address keeps trying: recently seen.
                    assert!(l.check(bad, Millis(1)).is_err());
                    l.record(bad, Millis(1));
                }
                assert!(l.tracked() <= MAX_TRACKED_ADDRESSES);
            }
            assert!(l.check(bad, Millis(2)).is_err(), "still limited");
            for fresh in ["192.0.2.1", "2001:db8:2::1", "::ffff:198.51.100.1"] {
                let fresh: IpAddr = fresh.parse().unwrap();
                assert_eq!(l.check(fresh, Millis(2)), Ok(()), "{fresh}");
            }
            assert!(l.by_seen.len() == l.entries.len());
        }
    }

    /// Under pressure an aggregating limiter counts a walked /48 as one:
    /// its new /64s share one allowance, while other /48s and IPv4 are
    /// counted as before.
    #[test]
    fn pressure_counts_new_ipv6_per_48() {
        let mut l = AddressLimiter::new(2, Millis(1000))
            .aggregating()
            .with_capacity(8);
        let v6 = |p: u16, q: u16| IpAddr::from([0x2001, 0xdb8, p, q, 0, 0, 0, 1]);
        for q in 0..4 {
            l.record(v6(1, q), Millis(0));
        }
        assert_eq!(l.tracked(), 4, "half full: per /64 so far");
        l.record(v6(1, 100), Millis(0));
        l.record(v6(1, 101), Millis(0));
        assert!(l.check(v6(1, 102), Millis(0)).is_err(), "the /48 is spent");
        assert_eq!(l.check(v6(1, 0), Millis(0)), Ok(()), "own /64 entry");
        assert_eq!(l.check(v6(2, 0), Millis(0)), Ok(()), "another /48");
        assert_eq!(l.check("192.0.2.1".parse().unwrap(), Millis(0)), Ok(()));
        // A limiter that does not aggregate keeps counting per /64.
        let mut l = AddressLimiter::new(2, Millis(1000)).with_capacity(8);
        for q in 0..8 {
            l.record(v6(1, q), Millis(0));
            l.record(v6(1, q), Millis(0));
        }
        assert_eq!(l.check(v6(1, 102), Millis(0)), Ok(()));
    }

    /// Eviction takes the least recently seen entry, not the oldest one.
    #[test]
    fn eviction_takes_the_least_recently_seen() {
        let mut l = AddressLimiter::new(1, Millis(1000)).with_capacity(2);
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            "192.0.2.3".parse().unwrap(),
        );
        l.record(a, Millis(0));
        l.record(b, Millis(1));
        l.record(a, Millis(2));
        l.record(c, Millis(3));
        assert!(l.check(a, Millis(3)).is_err(), "a was seen last");
        assert_eq!(l.check(b, Millis(3)), Ok(()), "b made room");
        assert!(l.check(c, Millis(3)).is_err());
    }
}
