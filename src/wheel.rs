//! A hashed, hierarchical timer wheel: pure data, integer milliseconds, the
//! caller supplies `now`. It never reads a clock.

/// A point in time or a span, in whole milliseconds since an arbitrary
/// origin chosen by the caller (the server uses its start instant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

/// Names one inserted timer, for cancelling it. Carries a generation, so a
/// stale id (of a timer that already fired or was cancelled) never cancels
/// a newer timer that reuses its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    slot: u32,
    generation: u32,
}

/// The wheel. `T` is what a timer carries back when it fires.
#[derive(Debug)]
pub struct Wheel<T> {
    _t: std::marker::PhantomData<T>,
}

impl<T> Wheel<T> {
    /// An empty wheel whose current time is `now`.
    pub fn new(now: Millis) -> Self {
        todo!("helper: wheel")
    }

    /// Schedules `value` to fire at `deadline`. A deadline at or before the
    /// wheel's current time fires on the next `advance`. O(1).
    pub fn insert(&mut self, deadline: Millis, value: T) -> TimerId {
        todo!("helper: wheel")
    }

    /// Removes a pending timer and returns its value; `None` when it already
    /// fired or was cancelled. O(1).
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        todo!("helper: wheel")
    }

    /// Moves the wheel's time to `now` and appends to `fired` the value of
    /// every timer whose deadline is `<= now`, each exactly once.
    pub fn advance(&mut self, now: Millis, fired: &mut Vec<T>) {
        todo!("helper: wheel")
    }

    /// A time at or before the earliest pending deadline (never later), for
    /// the poll timeout; `None` when no timer is pending.
    pub fn next_deadline(&self) -> Option<Millis> {
        todo!("helper: wheel")
    }

    /// Pending timers.
    pub fn len(&self) -> usize {
        todo!("helper: wheel")
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asserts the wheel's internal invariants; for tests and fuzzing.
    pub fn check(&self) {
        todo!("helper: wheel")
    }
}
