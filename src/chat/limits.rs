//! Rate limits, sans-IO: a token bucket per chat connection, and a sliding
//! window of attempts per client address for registrations and failed logins.

use crate::wheel::Millis;
use std::collections::{HashMap, VecDeque};
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
        let elapsed = now.0.saturating_sub(self.last.0);
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

/// Most addresses one limiter tracks. Past it, attempts from new addresses
/// are refused as if limited (fail closed): the table cannot grow without
/// bound under a flood from many addresses, and the flood is what is
/// refused. Entries leave the table as their window passes.
pub const MAX_TRACKED_ADDRESSES: usize = 65_536;

/// Up to `limit` attempts per `window` for each client address. IPv6
/// addresses count per /64, the block one subscriber usually holds, so one
/// host cannot dodge the limit by rotating through its own prefix.
#[derive(Debug)]
pub struct AddressLimiter {
    limit: u32,
    window: Millis,
    attempts: HashMap<IpAddr, VecDeque<Millis>>,
}

impl AddressLimiter {
    /// A limiter of `limit` attempts per `window`; a limit of 0 is off.
    pub fn new(limit: u32, window: Millis) -> AddressLimiter {
        AddressLimiter {
            limit,
            window,
            attempts: HashMap::new(),
        }
    }

    /// `Err(seconds)` when `addr` is over the limit: the whole seconds until
    /// its next attempt would be allowed (at least 1).
    pub fn check(&self, addr: IpAddr, now: Millis) -> Result<(), u64> {
        if self.limit == 0 {
            return Ok(());
        }
        let key = bucket_key(addr);
        let Some(times) = self.attempts.get(&key) else {
            if self.attempts.len() >= MAX_TRACKED_ADDRESSES {
                return Err(self.window.0.div_ceil(1000).max(1));
            }
            return Ok(());
        };
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

    /// Records one attempt. Returns the time at which the caller should call
    /// `expire` for this address when it was not tracked before.
    pub fn record(&mut self, addr: IpAddr, now: Millis) -> Option<(IpAddr, Millis)> {
        if self.limit == 0 {
            return None;
        }
        let key = bucket_key(addr);
        let new = !self.attempts.contains_key(&key);
        if new && self.attempts.len() >= MAX_TRACKED_ADDRESSES {
            return None;
        }
        let times = self.attempts.entry(key).or_default();
        times.push_back(now);
        // Only the newest `limit` attempts matter for the decision.
        while times.len() > self.limit as usize {
            times.pop_front();
        }
        new.then_some((key, Millis(now.0 + self.window.0)))
    }

    /// Forgets the attempts of `key` that left the window; returns when to
    /// look again, or `None` once the address is forgotten.
    pub fn expire(&mut self, key: IpAddr, now: Millis) -> Option<Millis> {
        let times = self.attempts.get_mut(&key)?;
        while times.front().is_some_and(|t| t.0 + self.window.0 <= now.0) {
            times.pop_front();
        }
        match times.front() {
            Some(t) => Some(Millis(t.0 + self.window.0)),
            None => {
                self.attempts.remove(&key);
                None
            }
        }
    }

    /// Addresses tracked.
    pub fn tracked(&self) -> usize {
        self.attempts.len()
    }
}

/// The key an address is counted under: itself for IPv4 (also when mapped
/// into IPv6), its /64 for IPv6.
fn bucket_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
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
        assert!(l.record(ip, Millis(0)).is_some());
        assert!(l.record(ip, Millis(1_000)).is_none(), "tracked already");
        assert_eq!(l.check(ip, Millis(1_500)), Err(9), "8.5 s rounds up");
        assert_eq!(l.check(ip, Millis(9_999)), Err(1));
        assert_eq!(l.check(ip, Millis(10_000)), Ok(()));
        assert_eq!(l.expire(ip, Millis(10_000)), Some(Millis(11_000)));
        assert_eq!(l.expire(ip, Millis(11_000)), None);
        assert_eq!(l.tracked(), 0);
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
            assert!(l.record(ip, Millis(0)).is_none());
        }
        assert_eq!(l.check(ip, Millis(0)), Ok(()));
    }
}
