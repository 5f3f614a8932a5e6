//! Operation sequences on the timer wheel against a `BTreeMap` model.
//!
//! Properties: every timer fires exactly once, never before its deadline,
//! never after being cancelled, and no later than the first `advance` past
//! its deadline; timers not already overdue fire in deadline order;
//! `cancel` finds exactly the pending timers; `len` and `next_deadline`
//! agree with the model (never later than the earliest deadline); and
//! `check()` holds after every step.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use piratchat::ids::Millis;
use piratchat::wheel::{TimerId, Wheel};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Arbitrary)]
enum Op {
    /// A timer `delta` after now (or before it: overdue).
    Insert(Delta),
    /// Cancel the n-th id ever handed out (pending, fired or cancelled).
    Cancel(u16),
    /// Move time on.
    Advance(Delta),
    /// Advance exactly to `next_deadline`, as the server's poll does.
    ToNextDeadline,
}

#[derive(Debug, Arbitrary)]
enum Delta {
    Small(u8),
    Medium(u16),
    Large(u32),
    Huge(u64),
    Past(u16),
}

impl Delta {
    fn from(&self, now: u64) -> u64 {
        match *self {
            Delta::Small(d) => now.saturating_add(u64::from(d)),
            Delta::Medium(d) => now.saturating_add(u64::from(d)),
            Delta::Large(d) => now.saturating_add(u64::from(d)),
            Delta::Huge(d) => now.saturating_add(d),
            Delta::Past(d) => now.saturating_sub(u64::from(d)),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    start: u32,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let mut now = u64::from(input.start);
    let mut wheel: Wheel<u32> = Wheel::new(Millis(now));
    // Pending timers by (deadline, serial), and each serial's id.
    let mut model: BTreeMap<(u64, u32), ()> = BTreeMap::new();
    let mut deadline_of: HashMap<u32, u64> = HashMap::new();
    let mut ids: Vec<TimerId> = Vec::new();
    let mut fired = Vec::new();
    for op in input.ops.iter().take(2000) {
        match op {
            Op::Insert(delta) => {
                let deadline = delta.from(now);
                let serial = ids.len() as u32;
                ids.push(wheel.insert(Millis(deadline), serial));
                model.insert((deadline, serial), ());
                deadline_of.insert(serial, deadline);
            }
            Op::Cancel(n) => {
                if ids.is_empty() {
                    continue;
                }
                let serial = u32::from(*n) % ids.len() as u32;
                let got = wheel.cancel(ids[serial as usize]);
                let pending = deadline_of
                    .remove(&serial)
                    .map(|d| model.remove(&(d, serial)).is_some());
                assert_eq!(got, pending.map(|_| serial), "cancel of #{serial}");
            }
            Op::Advance(delta) => {
                let to = delta.from(now);
                advance(
                    &mut wheel,
                    &mut model,
                    &mut deadline_of,
                    &mut now,
                    to,
                    &mut fired,
                );
            }
            Op::ToNextDeadline => {
                if let Some(at) = wheel.next_deadline() {
                    advance(
                        &mut wheel,
                        &mut model,
                        &mut deadline_of,
                        &mut now,
                        at.0,
                        &mut fired,
                    );
                }
            }
        }
        wheel.check();
        assert_eq!(wheel.len(), model.len());
        match (wheel.next_deadline(), model.keys().next()) {
            (None, None) => {}
            (Some(next), Some(&(first, _))) => {
                assert!(next.0 <= first, "next_deadline {} after {first}", next.0);
                if first > now {
                    assert!(next.0 > now, "next_deadline {} not after now {now}", next.0);
                }
            }
            (next, first) => panic!("next_deadline {next:?}, earliest pending {first:?}"),
        }
    }
});

/// Advances the wheel to `to` and checks what fired against the model.
fn advance(
    wheel: &mut Wheel<u32>,
    model: &mut BTreeMap<(u64, u32), ()>,
    deadline_of: &mut HashMap<u32, u64>,
    now: &mut u64,
    to: u64,
    fired: &mut Vec<u32>,
) {
    let before = *now;
    // Time never goes back: an earlier `to` is a no-op.
    *now = (*now).max(to);
    fired.clear();
    wheel.advance(Millis(to), fired);
    assert_eq!(wheel.now().0, *now);
    // An `advance` to before the wheel's time is a no-op (documented):
    // even overdue timers wait for one to at least the current time.
    let due: Vec<(u64, u32)> = if to < before {
        Vec::new()
    } else {
        model.range(..=(*now, u32::MAX)).map(|(k, _)| *k).collect()
    };
    let mut got: Vec<u32> = fired.clone();
    got.sort_unstable();
    let mut want: Vec<u32> = due.iter().map(|&(_, s)| s).collect();
    want.sort_unstable();
    assert_eq!(got, want, "fired at {now} (from {before})");
    // The ones already overdue come first, then the rest in deadline order.
    let overdue = fired
        .iter()
        .take_while(|s| deadline_of[s] <= before)
        .count();
    assert!(
        fired[overdue..].iter().all(|s| deadline_of[s] > before),
        "overdue after fresh"
    );
    let fresh: Vec<u64> = fired
        .iter()
        .map(|s| deadline_of[s])
        .filter(|&d| d > before)
        .collect();
    assert!(fresh.windows(2).all(|w| w[0] <= w[1]), "order {fresh:?}");
    for (d, s) in due {
        model.remove(&(d, s));
        deadline_of.remove(&s);
    }
}
