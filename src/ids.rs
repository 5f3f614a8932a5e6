//! The ids and the time type every layer shares, at the bottom of the
//! crate so that no layer has to import another for them: [`UserId`] (a
//! user's row), [`ConnId`] (one connection: its slot in the server's tables
//! and that slot's generation, packed) and [`Millis`] (time in whole
//! milliseconds, with its arithmetic). Imports nothing from the crate.

use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A user's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub i64);

/// One connection of the server: the slot it lives in (low 32 bits) and
/// the generation of that slot it was issued for (high 32 bits), so that a
/// stale id never reaches the connection that reuses its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    /// The id of the connection in `slot` at `generation`.
    pub fn new(slot: usize, generation: u32) -> ConnId {
        debug_assert!(u32::try_from(slot).is_ok(), "slot {slot} over 32 bits");
        ConnId((u64::from(generation) << 32) | slot as u64)
    }

    /// The slot of the connection in the server's tables.
    pub fn slot(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }

    /// The generation of the slot this id was issued for.
    pub fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// A connection id as log lines show it: `slot.generation` (`conn=0.15`),
/// the two numbers the packed `u64` (`64424509440`) hides.
impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.slot(), self.generation())
    }
}

/// A point in time or a span, in whole milliseconds since an arbitrary
/// origin chosen by the caller (the server uses its start instant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// A duration in whole milliseconds (`u64::MAX` past it).
    pub fn of(d: Duration) -> Millis {
        Millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_sub(self, earlier: Millis) -> Millis {
        Millis(self.0.saturating_sub(earlier.0))
    }
}

impl From<Duration> for Millis {
    fn from(d: Duration) -> Millis {
        Millis::of(d)
    }
}

impl Add for Millis {
    type Output = Millis;
    fn add(self, span: Millis) -> Millis {
        Millis(self.0 + span.0)
    }
}

impl Add<Duration> for Millis {
    type Output = Millis;
    fn add(self, span: Duration) -> Millis {
        self + Millis::of(span)
    }
}

impl AddAssign for Millis {
    fn add_assign(&mut self, span: Millis) {
        self.0 += span.0;
    }
}

impl Sub for Millis {
    type Output = Millis;
    /// Panics (in debug builds) when `earlier` is later: use
    /// [`Millis::saturating_sub`] where that can happen.
    fn sub(self, earlier: Millis) -> Millis {
        Millis(self.0 - earlier.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_id_packs_slot_and_generation() {
        for (slot, generation) in [(0, 0), (1, 0), (0, 1), (0xffff_ffff, u32::MAX), (7, 15)] {
            let id = ConnId::new(slot, generation);
            assert_eq!((id.slot(), id.generation()), (slot, generation));
        }
        assert_eq!(ConnId::new(0, 15).to_string(), "0.15");
    }

    #[test]
    fn millis_arithmetic() {
        assert_eq!(Millis(5) + Millis(7), Millis(12));
        assert_eq!(Millis(5) + Duration::from_secs(2), Millis(2005));
        assert_eq!(Millis(12) - Millis(5), Millis(7));
        assert_eq!(Millis(5).saturating_sub(Millis(7)), Millis(0));
        assert_eq!(Millis::from(Duration::from_micros(2500)), Millis(2));
        assert_eq!(Millis::of(Duration::MAX), Millis(u64::MAX));
        let mut t = Millis(1);
        t += Millis(2);
        assert_eq!(t, Millis(3));
    }
}
