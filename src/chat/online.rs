//! Who is online, in the order they connected, with O(1) removal and
//! iteration in order for broadcasts.

/// An ordered set of `T` (connection ids). Removal leaves a hole that
/// iteration skips; holes are squeezed out when they outnumber the entries,
/// so iteration stays proportional to the entries (amortized O(1) removal).
#[derive(Debug)]
pub struct Ordered<T> {
    slots: Vec<Option<T>>,
    len: usize,
}

impl<T: Copy + PartialEq + std::fmt::Debug> Ordered<T> {
    /// An empty set.
    pub fn new() -> Self {
        Ordered {
            slots: Vec::new(),
            len: 0,
        }
    }

    /// Appends `value`; returns its position, to give back to `remove`.
    /// `moved` is called for every entry whose position changed because
    /// holes were squeezed out first.
    pub fn push(&mut self, value: T, mut moved: impl FnMut(T, usize)) -> usize {
        if self.slots.len() >= 16 && self.slots.len() > 2 * self.len {
            self.compact(&mut moved);
        }
        self.slots.push(Some(value));
        self.len += 1;
        self.slots.len() - 1
    }

    /// Removes the entry at `pos`, which must hold `value`.
    pub fn remove(&mut self, pos: usize, value: T) {
        debug_assert_eq!(self.slots.get(pos), Some(&Some(value)), "position {pos}");
        self.slots[pos] = None;
        self.len -= 1;
        // Trailing holes can go at once; no position changes.
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.slots.iter().flatten().copied()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn compact(&mut self, moved: &mut impl FnMut(T, usize)) {
        self.slots.retain(Option::is_some);
        for (pos, v) in self.slots.iter().enumerate() {
            moved(v.expect("holes were removed"), pos);
        }
    }
}

impl<T: Copy + PartialEq + std::fmt::Debug> Default for Ordered<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn order_survives_removals_and_compaction() {
        let mut set = Ordered::new();
        let mut pos: HashMap<u32, usize> = HashMap::new();
        let mut model: Vec<u32> = Vec::new();
        for i in 0..200u32 {
            let p = set.push(i, |v, p| {
                pos.insert(v, p);
            });
            pos.insert(i, p);
            model.push(i);
            if i % 3 != 0 {
                let victim = model.remove(model.len() / 2);
                set.remove(pos.remove(&victim).unwrap(), victim);
            }
            assert_eq!(set.iter().collect::<Vec<_>>(), model);
            assert_eq!(set.len(), model.len());
        }
        assert!(set.slots.len() <= 2 * set.len() + 16);
    }
}
