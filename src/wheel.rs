//! A hashed, hierarchical timer wheel: pure data, integer milliseconds, the
//! caller supplies `now`. It never reads a clock.
//!
//! Resolution is 1 ms. There are [`LEVELS`] levels of 64 slots; level `L`
//! slot `s` holds the timers whose deadline differs from the wheel's current
//! time first in the 6-bit digit `L` (counting from the least significant
//! bits) and has value `s` in that digit. Eleven levels cover every `u64`, so
//! no deadline is ever clamped. Timers whose deadline is already `<= now` sit
//! in one extra "overdue" list and fire on the next [`Wheel::advance`].
//!
//! Timers live in a slab (a `Vec` of entries plus a free list); each slot is
//! an intrusive doubly-linked list of slab indices, so `cancel` is O(1). A
//! 64-bit occupancy bitmap per level lets `advance` and `next_deadline` jump
//! straight to the next non-empty slot: advancing costs O(slots visited +
//! timers cascaded), never O(elapsed milliseconds). Each timer cascades down
//! at most [`LEVELS`] times over its life.
//!
//! The mapping is always relative to the current time (as in wahern/timeout),
//! so within a level every occupied slot lies strictly after the current
//! time's slot and there is no wrap-around to reason about.

use std::fmt;

use crate::ids::Millis;

/// Names one inserted timer, for cancelling it. Carries a generation, so a
/// stale id (of a timer that already fired or was cancelled) never cancels
/// a newer timer that reuses its slot.
///
/// The generation is 32 bits and wraps: a stale id could only be confused
/// with a new timer after its slab slot has been reused 2^32 times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    slot: u32,
    generation: u32,
}

/// Bits of the deadline each level resolves: 64 slots per level.
const SLOT_BITS: u32 = 6;
/// Slots per level; one occupancy bit each, so exactly one `u64` bitmap.
const SLOTS: usize = 1 << SLOT_BITS;
/// Levels needed so that the top one covers the highest bits of any `u64`
/// (11 × 6 = 66 ≥ 64; the top level only uses its slots 0..16).
pub const LEVELS: usize = (u64::BITS as usize).div_ceil(SLOT_BITS as usize);
/// Index of the overdue list, after the `LEVELS * SLOTS` slot lists.
const OVERDUE: usize = LEVELS * SLOTS;
/// Slot lists plus the overdue list.
const LISTS: usize = OVERDUE + 1;
/// The "no entry" link; this is why the slab holds at most `u32::MAX - 1`.
const NIL: u32 = u32::MAX;

/// One slab entry. Live when `value` is `Some`; a free entry reuses `next`
/// as the free-list link.
struct Entry<T> {
    generation: u32,
    deadline: u64,
    prev: u32,
    next: u32,
    value: Option<T>,
}

/// The wheel. `T` is what a timer carries back when it fires.
pub struct Wheel<T> {
    /// Current time: every timer in a slot list has a deadline after it.
    now: u64,
    /// Live timers.
    len: usize,
    entries: Vec<Entry<T>>,
    free_head: u32,
    /// Head of each list: `level * SLOTS + slot`, then `OVERDUE`.
    heads: [u32; LISTS],
    /// Bit `s` of `occupied[L]` is set iff list `L * SLOTS + s` is non-empty.
    occupied: [u64; LEVELS],
    /// A lower bound of the overdue deadlines (exact until a cancel), so
    /// `next_deadline` never answers later than one of them without a scan.
    overdue_min: u64,
    /// Non-empty lists expired so far; lets tests bound the work of `advance`.
    lists_expired: u64,
}

/// The level at which `deadline` (after `now`) first differs from `now`.
fn level_of(now: u64, deadline: u64) -> usize {
    debug_assert!(deadline > now, "level_of: deadline {deadline} <= now {now}");
    let top_bit = u64::BITS - 1 - (now ^ deadline).leading_zeros();
    (top_bit / SLOT_BITS) as usize
}

/// The 6-bit digit of `time` that indexes level `level`.
fn slot_of(level: usize, time: u64) -> usize {
    ((time >> (level as u32 * SLOT_BITS)) & (SLOTS as u64 - 1)) as usize
}

/// The first millisecond of level `level` slot `slot`, which lies in the
/// same higher-level slot as `now`.
fn slot_start(now: u64, level: usize, slot: usize) -> u64 {
    let shift = level as u32 * SLOT_BITS;
    // The top level's span is the whole u64 range, so nothing stays above it.
    let above = u64::MAX.checked_shl(shift + SLOT_BITS).unwrap_or(0);
    (now & above) | ((slot as u64) << shift)
}

impl<T> Wheel<T> {
    /// An empty wheel whose current time is `now`.
    pub fn new(now: Millis) -> Self {
        Wheel {
            now: now.0,
            len: 0,
            entries: Vec::new(),
            free_head: NIL,
            heads: [NIL; LISTS],
            occupied: [0; LEVELS],
            overdue_min: u64::MAX,
            lists_expired: 0,
        }
    }

    /// The wheel's current time: the largest `now` passed to `new` or
    /// `advance`. Useful to compute "deadline = now + timeout" or the
    /// remainder when lazily re-arming an activity timer.
    pub fn now(&self) -> Millis {
        Millis(self.now)
    }

    /// Schedules `value` to fire at `deadline`. A deadline at or before the
    /// wheel's current time fires on the next `advance`. O(1).
    ///
    /// # Panics
    /// When `u32::MAX - 1` timers are already pending.
    pub fn insert(&mut self, deadline: Millis, value: T) -> TimerId {
        let idx = self.alloc(deadline.0, value);
        if deadline.0 <= self.now {
            self.overdue_min = self.overdue_min.min(deadline.0);
        }
        self.link(idx, self.list_for(deadline.0));
        self.len += 1;
        let generation = self.entries[idx as usize].generation;
        TimerId {
            slot: idx,
            generation,
        }
    }

    /// Removes a pending timer and returns its value; `None` when it already
    /// fired or was cancelled. O(1).
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let entry = self.entries.get(id.slot as usize)?;
        if entry.generation != id.generation || entry.value.is_none() {
            return None;
        }
        self.unlink(id.slot);
        Some(self.release(id.slot))
    }

    /// Moves the wheel's time to `now` and appends to `fired` the value of
    /// every timer whose deadline is `<= now`, each exactly once. Timers
    /// that were already overdue (deadline `<=` the wheel's time before the
    /// call) come first in unspecified order; the rest follow in deadline
    /// order (ties in unspecified order).
    ///
    /// A `now` before the wheel's current time is a no-op: time never goes
    /// back, and overdue timers wait for an `advance` to at least the
    /// current time. Cost: O(non-empty slots passed + timers moved).
    pub fn advance(&mut self, now: Millis, fired: &mut Vec<T>) {
        let target = now.0;
        if target < self.now {
            return;
        }
        self.expire_list(OVERDUE, fired);
        while let Some((list, start)) = self.next_slot() {
            if start > target {
                break;
            }
            // Stepping to the slot's first millisecond keeps every other
            // timer's level and slot valid: all of them start later.
            self.now = start;
            self.expire_list(list, fired);
        }
        // Safe for the same reason: the next non-empty slot starts after it.
        self.now = target;
    }

    /// A time at or before the earliest pending deadline (never later), for
    /// the poll timeout; `None` when no timer is pending.
    ///
    /// Exactly: the smallest overdue deadline if any timer is overdue (a
    /// lower bound after cancels; it is `<= now()`, so poll with timeout 0);
    /// otherwise, for a timer within the current 64 ms level-0 span, its
    /// exact deadline; otherwise the first millisecond of the next non-empty
    /// higher-level slot, which may be earlier than any deadline in it. It
    /// is then always `> now()`; `advance` to it and ask again. O(LEVELS).
    pub fn next_deadline(&self) -> Option<Millis> {
        if self.heads[OVERDUE] != NIL {
            return Some(Millis(self.overdue_min));
        }
        self.next_slot().map(|(_, start)| Millis(start))
    }

    /// Pending timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asserts the wheel's internal invariants; for tests and fuzzing.
    /// O(slab size + lists).
    pub fn check(&self) {
        let mut seen = vec![false; self.entries.len()];
        let linked: usize = (0..LISTS).map(|l| self.check_list(l, &mut seen)).sum();
        assert_eq!(
            linked, self.len,
            "len {} but {linked} entries are linked in lists",
            self.len
        );
        let free = self.check_free_list(&mut seen);
        assert_eq!(
            linked + free,
            self.entries.len(),
            "{linked} linked + {free} free != slab size {}: leaked entries",
            self.entries.len()
        );
        self.check_bitmaps();
    }

    /// The list a live timer with `deadline` belongs in at the current time.
    fn list_for(&self, deadline: u64) -> usize {
        if deadline <= self.now {
            return OVERDUE;
        }
        let level = level_of(self.now, deadline);
        level * SLOTS + slot_of(level, deadline)
    }

    /// The next non-empty slot list and its first millisecond. The lowest
    /// non-empty level always holds it: a level-`L` slot starts after the
    /// whole level-`L` span of the current time, where all lower-level
    /// timers lie.
    fn next_slot(&self) -> Option<(usize, u64)> {
        let level = self.occupied.iter().position(|&bits| bits != 0)?;
        let slot = self.occupied[level].trailing_zeros() as usize;
        debug_assert!(
            slot > slot_of(level, self.now),
            "level {level} slot {slot} is not after now {} (slot {})",
            self.now,
            slot_of(level, self.now)
        );
        Some((level * SLOTS + slot, slot_start(self.now, level, slot)))
    }

    /// Empties `list`: fires the timers due at the current time and moves
    /// the others down to the (lower) list they now map to.
    fn expire_list(&mut self, list: usize, fired: &mut Vec<T>) {
        let mut idx = self.heads[list];
        if idx == NIL {
            return;
        }
        self.lists_expired += 1;
        self.set_head(list, NIL);
        while idx != NIL {
            let entry = &self.entries[idx as usize];
            let (next, deadline) = (entry.next, entry.deadline);
            if deadline <= self.now {
                fired.push(self.release(idx));
            } else {
                let to = self.list_for(deadline);
                debug_assert!(to < list, "cascade from list {list} to {to} must go down");
                self.link(idx, to);
            }
            idx = next;
        }
    }

    /// Takes a free slab entry (or grows the slab) and fills it in.
    fn alloc(&mut self, deadline: u64, value: T) -> u32 {
        if self.free_head == NIL {
            let idx = u32::try_from(self.entries.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("timer wheel: more than u32::MAX - 1 timers");
            self.entries.push(Entry {
                generation: 0,
                deadline,
                prev: NIL,
                next: NIL,
                value: Some(value),
            });
            return idx;
        }
        let idx = self.free_head;
        let entry = &mut self.entries[idx as usize];
        debug_assert!(entry.value.is_none(), "free list holds live entry {idx}");
        self.free_head = entry.next;
        entry.deadline = deadline;
        entry.prev = NIL;
        entry.next = NIL;
        entry.value = Some(value);
        idx
    }

    /// Frees a live, already unlinked entry; bumps its generation so the
    /// ids handed out for it go stale.
    fn release(&mut self, idx: u32) -> T {
        let entry = &mut self.entries[idx as usize];
        let value = entry.value.take().expect("release of a free entry");
        entry.generation = entry.generation.wrapping_add(1);
        entry.prev = NIL;
        entry.next = self.free_head;
        self.free_head = idx;
        self.len -= 1;
        value
    }

    /// Pushes entry `idx` at the head of `list`.
    fn link(&mut self, idx: u32, list: usize) {
        let head = self.heads[list];
        if head != NIL {
            self.entries[head as usize].prev = idx;
        }
        let entry = &mut self.entries[idx as usize];
        entry.prev = NIL;
        entry.next = head;
        self.set_head(list, idx);
    }

    /// Takes entry `idx` out of the list its deadline maps to.
    fn unlink(&mut self, idx: u32) {
        let entry = &self.entries[idx as usize];
        let (prev, next, deadline) = (entry.prev, entry.next, entry.deadline);
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
        if prev != NIL {
            self.entries[prev as usize].next = next;
            return;
        }
        let list = self.list_for(deadline);
        debug_assert_eq!(
            self.heads[list], idx,
            "entry {idx} without prev must head list {list}"
        );
        self.set_head(list, next);
    }

    /// Sets a list head and keeps the occupancy bitmaps (or the overdue
    /// bound) in step with it: the only place either changes.
    fn set_head(&mut self, list: usize, head: u32) {
        self.heads[list] = head;
        if list == OVERDUE {
            if head == NIL {
                self.overdue_min = u64::MAX;
            }
            return;
        }
        let (level, bit) = (list / SLOTS, 1u64 << (list % SLOTS));
        if head == NIL {
            self.occupied[level] &= !bit;
        } else {
            self.occupied[level] |= bit;
        }
    }

    /// Walks one list: links consistent, entries live, each in the list its
    /// deadline maps to now, none reached twice. Returns its length.
    fn check_list(&self, list: usize, seen: &mut [bool]) -> usize {
        let (mut prev, mut idx, mut count) = (NIL, self.heads[list], 0);
        while idx != NIL {
            let i = idx as usize;
            assert!(i < seen.len(), "list {list}: index {idx} outside slab");
            assert!(!seen[i], "list {list}: entry {idx} reached twice");
            seen[i] = true;
            let entry = &self.entries[i];
            assert!(entry.value.is_some(), "list {list}: entry {idx} is free");
            assert_eq!(entry.prev, prev, "list {list}: entry {idx} prev link");
            let want = self.list_for(entry.deadline);
            assert_eq!(
                want, list,
                "entry {idx} deadline {} at now {} sits in list {list}, belongs in {want}",
                entry.deadline, self.now
            );
            if list == OVERDUE {
                assert!(
                    self.overdue_min <= entry.deadline,
                    "overdue bound above entry {idx}"
                );
            }
            (prev, idx, count) = (idx, entry.next, count + 1);
        }
        count
    }

    /// Walks the free list: entries free, none live or reached twice.
    fn check_free_list(&self, seen: &mut [bool]) -> usize {
        let (mut idx, mut count) = (self.free_head, 0);
        while idx != NIL {
            let i = idx as usize;
            assert!(i < seen.len(), "free list: index {idx} outside slab");
            assert!(!seen[i], "free list: entry {idx} also linked or a cycle");
            seen[i] = true;
            let entry = &self.entries[i];
            assert!(entry.value.is_none(), "free list: entry {idx} is live");
            (idx, count) = (entry.next, count + 1);
        }
        count
    }

    /// Bitmaps match the non-empty lists; nothing sits at or before the
    /// current time's slot of its level; the overdue bound resets when empty.
    fn check_bitmaps(&self) {
        for level in 0..LEVELS {
            for slot in 0..SLOTS {
                let bit = (self.occupied[level] >> slot) & 1 == 1;
                let non_empty = self.heads[level * SLOTS + slot] != NIL;
                assert_eq!(bit, non_empty, "level {level} slot {slot}: bitmap vs list");
            }
            let current = slot_of(level, self.now) as u32;
            let at_or_before = u64::MAX >> (63 - current);
            assert_eq!(
                self.occupied[level] & at_or_before,
                0,
                "level {level}: occupied slot at or before now's slot {current} (now {})",
                self.now
            );
        }
        if self.heads[OVERDUE] == NIL {
            assert_eq!(self.overdue_min, u64::MAX, "overdue bound kept after empty");
        }
    }
}

impl<T> fmt::Debug for Wheel<T> {
    /// A summary; the slot lists would be noise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wheel")
            .field("now", &self.now)
            .field("len", &self.len)
            .field("next_deadline", &self.next_deadline())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashSet};

    const HOUR: u64 = 3_600_000;

    /// xorshift64: enough randomness for schedules, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn advance(wheel: &mut Wheel<u64>, now: u64) -> Vec<u64> {
        let mut fired = Vec::new();
        wheel.advance(Millis(now), &mut fired);
        wheel.check();
        fired
    }

    /// (what, start, deadline, advances, index of the advance that fires it)
    type FireCase = (&'static str, u64, u64, &'static [u64], Option<usize>);

    #[test]
    fn fires_exactly_when_due() {
        // A table reads best one case per line.
        #[rustfmt::skip]
        let cases: &[FireCase] = &[
            ("deadline == now fires on next advance", 10, 10, &[10], Some(0)),
            ("past deadline fires on next advance", 10, 3, &[10], Some(0)),
            ("not one ms early", 0, 5, &[4, 5, 6], Some(1)),
            ("across a level-0 boundary", 63, 64, &[63, 64], Some(1)),
            ("cascades down from level 1", 0, 100, &[64, 99, 100], Some(2)),
            ("jumped over", 0, 100, &[1_000_000], Some(0)),
            ("slot start of level 2", 5, 4096, &[4095, 4096], Some(1)),
            ("backwards advance is a no-op", 100, 150, &[50, 149, 150], Some(2)),
            ("overdue waits for advance >= now", 100, 3, &[50, 99, 100], Some(2)),
            ("top level, u64::MAX", 0, u64::MAX, &[u64::MAX - 1, u64::MAX], Some(1)),
            ("from near the end of time", u64::MAX - 1, u64::MAX, &[u64::MAX], Some(0)),
            ("never early after a year", 0, 1 << 40, &[(1 << 40) - 1], None),
        ];
        for &(what, start, deadline, steps, fires_at) in cases {
            let mut wheel = Wheel::new(Millis(start));
            wheel.insert(Millis(deadline), 7);
            wheel.check();
            for (i, &now) in steps.iter().enumerate() {
                let want: &[u64] = if Some(i) == fires_at { &[7] } else { &[] };
                assert_eq!(
                    advance(&mut wheel, now),
                    want,
                    "{what}: advance #{i} to {now}"
                );
            }
            assert_eq!(wheel.len(), usize::from(fires_at.is_none()), "{what}: len");
        }
    }

    #[test]
    fn next_deadline_table() {
        let top_slot_of_max = 15 << 60;
        // (what, now, deadlines, expected)
        let cases: &[(&str, u64, &[u64], Option<u64>)] = &[
            ("empty", 0, &[], None),
            ("level 0 is exact", 0, &[9, 5], Some(5)),
            ("level 1: start of its slot", 0, &[100], Some(64)),
            ("on a slot boundary", 0, &[64], Some(64)),
            ("level 0 before level 1", 60, &[64, 63], Some(63)),
            ("overdue: earliest past deadline", 10, &[50, 7, 3], Some(3)),
            ("overdue at now", 10, &[10, 50], Some(10)),
            ("top level", 0, &[u64::MAX], Some(top_slot_of_max)),
        ];
        for &(what, now, deadlines, want) in cases {
            let mut wheel = Wheel::new(Millis(now));
            for &d in deadlines {
                wheel.insert(Millis(d), d);
            }
            wheel.check();
            assert_eq!(wheel.next_deadline(), want.map(Millis), "{what}");
        }
    }

    #[test]
    fn stale_ids_cancel_nothing() {
        let mut wheel = Wheel::new(Millis(0));
        let a = wheel.insert(Millis(10), 1);
        assert_eq!(wheel.cancel(a), Some(1), "live id cancels");
        assert_eq!(wheel.cancel(a), None, "second cancel");
        let b = wheel.insert(Millis(10), 2);
        assert_eq!(b.slot, a.slot, "slot is reused");
        assert_eq!(wheel.cancel(a), None, "stale id must not cancel the reuser");
        assert_eq!(wheel.len(), 1);
        assert_eq!(advance(&mut wheel, 10), [2]);
        assert_eq!(wheel.cancel(b), None, "fired id");
        let never = TimerId {
            slot: 12345,
            generation: 0,
        };
        assert_eq!(wheel.cancel(never), None, "id outside the slab");
        let overdue = wheel.insert(Millis(3), 3);
        assert_eq!(wheel.cancel(overdue), Some(3), "overdue timers cancel too");
        assert!(advance(&mut wheel, 20).is_empty(), "cancelled never fires");
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn long_gap_is_cheap() {
        let mut wheel = Wheel::new(Millis(0));
        for h in [1, 5, 10] {
            wheel.insert(Millis(h * HOUR), h);
        }
        assert_eq!(advance(&mut wheel, 10 * HOUR - 1), [1, 5]);
        assert_eq!(advance(&mut wheel, 10 * HOUR), [10]);
        // 36M milliseconds passed; work is bounded by cascades, not time.
        let bound = 3 * LEVELS as u64;
        assert!(
            wheel.lists_expired <= bound,
            "{} lists expired",
            wheel.lists_expired
        );
        let before = wheel.lists_expired;
        assert!(advance(&mut wheel, u64::MAX).is_empty());
        assert_eq!(wheel.lists_expired, before, "empty wheel does no work");
    }

    #[test]
    fn poll_loop_driven_by_next_deadline() {
        // The server's loop: sleep until next_deadline, advance, repeat.
        let mut rng = Rng(99);
        let mut wheel = Wheel::new(Millis(0));
        let mut deadlines: Vec<u64> = (0..1000).map(|_| 1 + rng.below(10 * HOUR)).collect();
        for &d in &deadlines {
            wheel.insert(Millis(d), d);
        }
        let (mut fired, mut wakeups) = (Vec::new(), 0);
        while let Some(at) = wheel.next_deadline() {
            assert!(
                at > wheel.now(),
                "no overdue timers here, so a future wakeup"
            );
            wheel.advance(at, &mut fired);
            wakeups += 1;
        }
        wheel.check();
        deadlines.sort_unstable();
        assert_eq!(fired, deadlines, "all fire, in deadline order");
        assert!(wakeups <= 1000 * LEVELS, "{wakeups} wakeups");
    }

    #[test]
    fn many_inserts_and_cancels() {
        let mut wheel = Wheel::new(Millis(1000));
        let n = 100_000u64;
        let ids: Vec<TimerId> = (0..n)
            .map(|i| wheel.insert(Millis(i * 7919 % 10_000_000), i))
            .collect();
        assert_eq!(wheel.len(), n as usize);
        for (i, id) in ids.iter().enumerate().rev() {
            assert_eq!(wheel.cancel(*id), Some(i as u64));
        }
        wheel.check();
        assert!(wheel.is_empty());
        for i in 0..n {
            wheel.insert(Millis(2000 + i), i);
        }
        assert_eq!(wheel.entries.len(), n as usize, "free list reused");
        assert_eq!(advance(&mut wheel, u64::MAX).len(), n as usize);
    }

    /// The wheel beside a `BTreeMap` model keyed by (deadline, serial).
    struct Harness {
        wheel: Wheel<u64>,
        model: BTreeMap<(u64, u64), TimerId>,
        deadline_of: BTreeMap<u64, u64>,
        ids: Vec<(TimerId, u64)>,
        gone: HashSet<u64>,
        now: u64,
        serial: u64,
        fired: usize,
        stale_cancels: usize,
    }

    impl Harness {
        fn new(now: u64) -> Self {
            Harness {
                wheel: Wheel::new(Millis(now)),
                model: BTreeMap::new(),
                deadline_of: BTreeMap::new(),
                ids: Vec::new(),
                gone: HashSet::new(),
                now,
                serial: 0,
                fired: 0,
                stale_cancels: 0,
            }
        }

        fn insert(&mut self, deadline: u64) {
            self.serial += 1;
            let id = self.wheel.insert(Millis(deadline), self.serial);
            self.model.insert((deadline, self.serial), id);
            self.deadline_of.insert(self.serial, deadline);
            self.ids.push((id, self.serial));
        }

        fn cancel(&mut self, pick: usize) {
            let (id, serial) = self.ids[pick];
            let want = self.deadline_of.remove(&serial).map(|d| {
                self.model.remove(&(d, serial));
                self.gone.insert(serial);
                serial
            });
            self.stale_cancels += usize::from(want.is_none());
            assert_eq!(self.wheel.cancel(id), want, "cancel of serial {serial}");
        }

        fn advance(&mut self, to: u64) {
            let mut fired = Vec::new();
            self.wheel.advance(Millis(to), &mut fired);
            if to < self.now {
                assert!(
                    fired.is_empty(),
                    "backwards advance to {to} fired {fired:?}"
                );
                return;
            }
            // Overdue timers come first, unordered; the rest by deadline.
            let mut last = self.now;
            for &s in &fired {
                assert!(
                    !self.gone.contains(&s),
                    "serial {s} fired twice or after cancel"
                );
                let d = self
                    .deadline_of
                    .remove(&s)
                    .expect("fired an unknown serial");
                assert!(
                    d <= to && to >= self.now,
                    "serial {s} (deadline {d}) early at {to}"
                );
                assert!(
                    d <= self.now || d >= last,
                    "{s} (deadline {d}) out of order"
                );
                self.model.remove(&(d, s));
                self.gone.insert(s);
                last = last.max(d);
            }
            self.fired += fired.len();
            self.now = self.now.max(to);
            let late = self.model.keys().next().filter(|&&(d, _)| d <= self.now);
            assert!(
                late.is_none(),
                "due timer {late:?} not fired at {}",
                self.now
            );
        }

        fn check(&self) {
            self.wheel.check();
            assert_eq!(self.wheel.len(), self.model.len(), "len");
            assert_eq!(self.wheel.now(), Millis(self.now), "now");
            let first = self.model.keys().next().map(|&(d, _)| d);
            let next = self.wheel.next_deadline().map(|m| m.0);
            assert_eq!(
                next.is_some(),
                first.is_some(),
                "next_deadline {next:?} vs {first:?}"
            );
            if let (Some(next), Some(first)) = (next, first) {
                assert!(
                    next <= first,
                    "next_deadline {next} later than earliest {first}"
                );
                if first > self.now && first >> SLOT_BITS == self.now >> SLOT_BITS {
                    assert_eq!(next, first, "level 0 must be exact");
                }
            }
        }
    }

    fn random_deadline(rng: &mut Rng, now: u64) -> u64 {
        match rng.below(10) {
            0 => now.saturating_sub(rng.below(100)),
            1..=4 => now.saturating_add(rng.below(130)),
            5 | 6 => now.saturating_add(rng.below(1 << 20)),
            7 => now.saturating_add(rng.below(1 << 40)),
            8 => u64::MAX - rng.below(3),
            _ => now.saturating_add(1 << rng.below(64)),
        }
    }

    fn random_step(rng: &mut Rng, h: &Harness) -> u64 {
        let now = h.now;
        match rng.below(10) {
            0 => now.saturating_sub(rng.below(50)),
            1..=4 => now.saturating_add(rng.below(70)),
            5 => h.wheel.next_deadline().map_or(now, |m| m.0),
            6 => now.saturating_add(rng.below(1 << 20)),
            7 => now.saturating_add(rng.below(1 << 36)),
            _ => now.saturating_add((1 << rng.below(48)) - 1),
        }
    }

    fn run_model(seed: u64, start: u64, ops: usize) {
        let mut rng = Rng(seed);
        let mut h = Harness::new(start);
        for _ in 0..ops {
            match rng.below(20) {
                0..=8 if h.model.len() < 300 => h.insert(random_deadline(&mut rng, h.now)),
                0..=12 if !h.ids.is_empty() => h.cancel(rng.below(h.ids.len() as u64) as usize),
                _ => h.advance(random_step(&mut rng, &h)),
            }
            h.check();
        }
        h.advance(u64::MAX);
        h.check();
        // Guard against a generator that stops exercising the wheel.
        assert!(
            h.fired > 300 && h.stale_cancels > 100,
            "seed {seed}: weak schedule"
        );
        assert!(
            h.wheel.is_empty(),
            "seed {seed}: all fire by the end of time"
        );
    }

    #[test]
    fn matches_btreemap_model() {
        let starts = [0, (1 << 36) - 3, u64::MAX - (1 << 24)];
        for seed in [1, 0x9e37_79b9_7f4a_7c15, 0xdead_beef] {
            for start in starts {
                run_model(seed, start, 3000);
            }
        }
    }
}
