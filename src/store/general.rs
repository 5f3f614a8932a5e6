//! Paging general's messages by the primary key, without an index.
//!
//! General's messages are the hot path: every one is an insert, and an
//! index of their own (migration 6) cost each insert a second B-tree,
//! about a tenth of the server's CPU per message at 100 clients. Without
//! it a page of general walks the primary key down and skips the room and
//! direct events in between, which is cheap while general is busy and
//! slow where it is quiet (a million room events behind general's newest
//! message held the loop for about 160 ms). So the store remembers, in
//! memory, the long stretches of ids that hold no general message
//! ([`Gaps`]), and a page or a count reads the primary key around them:
//! it visits at most [`GAP_MIN`] other rows per general message it
//! returns, whatever the rooms do.

use super::Store;
use super::error::{StoreError, fail};
use rusqlite::{Connection, params};

/// Version 7: no index for general (see the module doc).
pub(super) const MIGRATION_7_NO_GENERAL_INDEX: &str = "DROP INDEX events_general;";

/// Stretches of ids shorter than this are walked, not remembered: the
/// bound on the rows a page visits per general message, against 16 bytes
/// of memory per stretch (at most one per `GAP_MIN` events).
pub(super) const GAP_MIN: i64 = 64;

/// General's messages in id order, at start-up (one walk of the table).
const SQL_GENERAL_IDS: &str = "SELECT id FROM events \
     WHERE room_id IS NULL AND to_id IS NULL AND kind = 0 ORDER BY id";
/// The newest general messages in `[?3, ?1)`, by the primary key.
const SQL_GENERAL_BETWEEN: &str = "SELECT e.id, u.name, e.text, e.ts, e.edited, e.deleted \
     FROM events e JOIN users u ON u.id = e.user_id WHERE e.id < ?1 AND e.id >= ?3 \
     AND e.room_id IS NULL AND e.to_id IS NULL AND e.kind = 0 ORDER BY e.id DESC LIMIT ?2";
/// General's messages in `[?1, ?2]`, by the primary key.
const SQL_COUNT_GENERAL_BETWEEN: &str = "SELECT count(*) FROM events WHERE id BETWEEN ?1 AND ?2 \
     AND room_id IS NULL AND to_id IS NULL AND kind = 0";

/// Where general's messages are not: every stretch of at least
/// [`GAP_MIN`] ids between two consecutive general messages, and
/// everything after the newest one. Pure data; the store keeps it in step
/// with the rows (a rolled-back batch takes its messages back out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gaps {
    /// `(a, b)`: general messages `a` and `b` with no general message
    /// between them and `b - a > GAP_MIN`; ascending and disjoint.
    gaps: Vec<(i64, i64)>,
    /// The newest general message (0: none).
    last: i64,
    /// `(gaps.len(), last)` when the open batch began.
    saved: (usize, i64),
}

impl Gaps {
    /// General message `id` was stored (ids rise).
    pub fn push(&mut self, id: i64) {
        debug_assert!(id > self.last, "general ids rise: {id} after {}", self.last);
        if id - self.last > GAP_MIN {
            self.gaps.push((self.last, id));
        }
        self.last = id;
    }

    /// A write batch begins: [`Gaps::undo`] returns here.
    pub fn save(&mut self) {
        self.saved = (self.gaps.len(), self.last);
    }

    /// The batch was rolled back: forget its messages.
    pub fn undo(&mut self) {
        self.gaps.truncate(self.saved.0);
        self.last = self.saved.1;
    }

    /// The rows below `id` were pruned: forget the stretches that end
    /// below it (a page walks down to the oldest row anyway), so the list
    /// stays as long as the rows kept, not as every event ever stored.
    pub fn forget_below(&mut self, id: i64) {
        let n = self.gaps.partition_point(|g| g.1 <= id);
        self.gaps.drain(..n);
        self.saved.0 = self.saved.0.saturating_sub(n);
    }

    /// The newest general message, if any.
    pub fn last(&self) -> Option<i64> {
        (self.last > 0).then_some(self.last)
    }

    /// The ids below `hi` that may hold general messages, newest stretch
    /// first, each as `[lo, hi)`.
    pub fn below(&self, hi: i64) -> impl Iterator<Item = (i64, i64)> + '_ {
        let mut hi = hi.min(self.last.saturating_add(1));
        // Gaps with `a < hi`; the newest may contain `hi` itself.
        let mut rest = self.gaps[..self.gaps.partition_point(|g| g.0 < hi)]
            .iter()
            .rev();
        std::iter::from_fn(move || {
            if hi <= 1 {
                return None;
            }
            let Some(&(a, b)) = rest.next() else {
                let stretch = (1, hi);
                hi = 1;
                return Some(stretch);
            };
            // `(a, b)` holds no general message: the stretch starts at `b`
            // (when `hi` lies past it) and the next one ends at `a`.
            let stretch = (b.min(hi), hi);
            hi = a + 1;
            Some(stretch)
        })
        .filter(|(lo, hi)| lo < hi)
    }

    /// The ids above `id` that may hold general messages, each as
    /// `[lo, hi]`, oldest first.
    pub fn above(&self, id: i64) -> impl Iterator<Item = (i64, i64)> + '_ {
        let first = self.gaps.partition_point(|g| g.1 <= id);
        let mut lo = id.saturating_add(1);
        let mut rest = self.gaps[first..].iter();
        let last = self.last;
        let mut done = false;
        std::iter::from_fn(move || {
            if done {
                return None;
            }
            let Some(&(a, b)) = rest.next() else {
                done = true;
                return Some((lo, last));
            };
            let stretch = (lo, a);
            lo = lo.max(b);
            Some(stretch)
        })
        .filter(|(lo, hi)| lo <= hi)
    }

    /// From general's message ids, in order (start-up).
    pub(super) fn load(conn: &Connection) -> rusqlite::Result<Gaps> {
        let mut gaps = Gaps::default();
        let mut stmt = conn.prepare(SQL_GENERAL_IDS)?;
        for id in stmt.query_map([], |r| r.get(0))? {
            gaps.push(id?);
        }
        gaps.save();
        Ok(gaps)
    }
}

impl Store {
    /// Up to `limit` of general's messages below `before`, newest first:
    /// one query per stretch of [`Gaps::below`] until the page is full.
    pub(super) fn general_before(
        &mut self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<crate::event::StoredMessage>, StoreError> {
        let mut page = Vec::new();
        let stretches: Vec<_> = self.general.below(before).collect();
        let run = |page: &mut Vec<_>| {
            let mut stmt = self.conn.prepare_cached(SQL_GENERAL_BETWEEN)?;
            for (lo, hi) in stretches {
                let want = limit - page.len() as i64;
                if want <= 0 {
                    break;
                }
                for row in
                    stmt.query_map(params![hi, want, lo], super::history::message_from_row)?
                {
                    page.push(row?);
                }
            }
            Ok(())
        };
        run(&mut page).map_err(|e| fail(&self.label, "reading messages", e))?;
        Ok(page)
    }

    /// General's messages after `id`: one count per stretch of
    /// [`Gaps::above`].
    pub(super) fn count_general_after(&mut self, id: i64) -> Result<i64, StoreError> {
        let stretches: Vec<_> = self.general.above(id).collect();
        let run = || {
            let mut stmt = self.conn.prepare_cached(SQL_COUNT_GENERAL_BETWEEN)?;
            let mut n = 0;
            for (lo, hi) in stretches {
                n += stmt.query_row([lo, hi], |r| r.get::<_, i64>(0))?;
            }
            Ok(n)
        };
        run().map_err(|e| fail(&self.label, "counting messages", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Conversation, EventKind, NewEvent};
    use std::collections::BTreeSet;

    /// Gaps of the given general ids.
    fn of(ids: &[i64]) -> Gaps {
        let mut g = Gaps::default();
        ids.iter().for_each(|&id| g.push(id));
        g
    }

    /// Every general id below `hi` lies in a stretch of `below`, and the
    /// stretches are disjoint and descending; likewise for `above`.
    fn check(ids: &[i64]) {
        let g = of(ids);
        let set: BTreeSet<i64> = ids.iter().copied().collect();
        let top = ids.last().copied().unwrap_or(0) + 2 * GAP_MIN;
        for hi in 1..top {
            let below: Vec<_> = g.below(hi).collect();
            for w in below.windows(2) {
                assert!(w[1].1 <= w[0].0, "{ids:?} below {hi}: {below:?}");
            }
            for id in set.range(..hi) {
                let found = below.iter().any(|&(lo, h)| (lo..h).contains(id));
                assert!(found, "{ids:?} below {hi} misses {id}: {below:?}");
            }
            let above: Vec<_> = g.above(hi).collect();
            for id in set.range(hi + 1..) {
                let found = above.iter().any(|&(lo, h)| (lo..=h).contains(id));
                assert!(found, "{ids:?} above {hi} misses {id}: {above:?}");
            }
            let covered: i64 = above.iter().map(|(lo, h)| h - lo + 1).sum();
            assert!(covered <= top, "{ids:?} above {hi}: {above:?}");
        }
    }

    #[test]
    fn stretches_cover_every_general_message() {
        let far = GAP_MIN + 1;
        for ids in [
            &[][..],
            &[1],
            &[1, 2, 3],
            &[far],
            &[1, 1 + far],
            &[1, 1 + far, 2 + far, 2 + 3 * far],
            &[5, 5 + GAP_MIN, 5 + 2 * GAP_MIN + 1],
        ] {
            check(ids);
        }
    }

    #[test]
    fn stretches_skip_the_gaps() {
        let g = of(&[1, 2, 100, 101, 300]);
        assert_eq!(
            g.below(i64::MAX).collect::<Vec<_>>(),
            [(300, 301), (100, 101 + 1), (1, 3)]
        );
        assert_eq!(g.below(250).collect::<Vec<_>>(), [(100, 102), (1, 3)]);
        assert_eq!(
            g.above(0).collect::<Vec<_>>(),
            [(1, 2), (100, 101), (300, 300)]
        );
        assert_eq!(g.above(150).collect::<Vec<_>>(), [(300, 300)]);
    }

    /// A store with runs of general messages between long and short runs
    /// of room events, one refused commit among them; the general ids
    /// stored.
    fn mixed_store() -> (Store, Vec<i64>) {
        let mut store = Store::open_in_memory().unwrap();
        let hash = crate::secret::sha256_hex("k");
        let user = store.create_user("ann", &hash).unwrap().unwrap().id;
        store
            .conn
            .execute(
                "INSERT INTO rooms (id, name, private, created) VALUES (2, 'r', 0, 0)",
                [],
            )
            .unwrap();
        store.commit().unwrap();
        let (mut general, mut id, mut seed) = (Vec::new(), 0, 7u64);
        for turn in 0..60 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let rooms =
                [0, 1, 3, GAP_MIN - 1, GAP_MIN, GAP_MIN + 1, 300][(seed >> 33) as usize % 7];
            let mut stored = Vec::new();
            for n in 0..rooms + 2 {
                id += 1;
                let room = (n < rooms).then_some(2);
                let e = NewEvent {
                    id,
                    kind: EventKind::Message,
                    user,
                    room,
                    to: None,
                    ts: id,
                    text: "t",
                    client_id: None,
                    target: None,
                };
                store.insert_event(&e).unwrap();
                if room.is_none() {
                    stored.push(id);
                }
            }
            if turn % 17 == 5 {
                store.refuse_next_commit();
                assert!(store.commit().is_err());
            } else {
                store.commit().unwrap();
                general.extend(stored);
            }
        }
        (store, general)
    }

    #[test]
    fn pages_and_counts_of_general_match_the_rows() {
        let (mut store, general) = mixed_store();
        assert_eq!(Gaps::load(&store.conn).unwrap().gaps, store.general.gaps);
        let top = *general.last().unwrap() + 2;
        for before in (1..top).step_by(7).chain([i64::MAX]) {
            for limit in [1, 3, 50] {
                let page = store.messages_before(Conversation::General, before, limit);
                let got: Vec<i64> = page.unwrap().iter().map(|m| m.id).collect();
                let older = general.iter().filter(|&&id| id < before);
                let mut want: Vec<i64> = older.rev().take(limit).copied().collect();
                want.reverse();
                assert_eq!(got, want, "before {before}, limit {limit}");
            }
            let after = general.iter().filter(|&&id| id > before).count() as u64;
            let counted = store.count_after(Conversation::General, before).unwrap();
            assert_eq!(counted, after, "after {before}");
        }
    }

    #[test]
    fn general_is_paged_by_the_primary_key() {
        let (store, _) = mixed_store();
        let sql = SQL_GENERAL_BETWEEN
            .replace("?1", "9")
            .replace("?2", "5")
            .replace("?3", "1");
        let plan = store.plan(&sql);
        assert!(plan.contains("INTEGER PRIMARY KEY"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        let count = SQL_COUNT_GENERAL_BETWEEN
            .replace("?1", "1")
            .replace("?2", "9");
        assert!(store.plan(&count).contains("INTEGER PRIMARY KEY"));
        // Migration 7 took general's index away again.
        let n: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'events_general'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn pages_stay_whole_after_a_prune() {
        let (mut store, general) = mixed_store();
        let gaps = store.general.gaps.len();
        let cut = general[general.len() / 2];
        store.prune_messages(Some(cut), None, usize::MAX).unwrap();
        store.commit().unwrap();
        assert!(store.general.gaps.len() < gaps, "the pruned stretches go");
        let kept: Vec<i64> = general.iter().copied().filter(|&id| id > cut).collect();
        let page = store.messages_before(Conversation::General, i64::MAX, 200);
        let got: Vec<i64> = page.unwrap().iter().map(|m| m.id).collect();
        assert_eq!(got, kept[kept.len().saturating_sub(200)..]);
        let counted = store.count_after(Conversation::General, 0).unwrap();
        assert_eq!(counted, kept.len() as u64);
    }

    #[test]
    fn undo_forgets_the_batch() {
        let mut g = of(&[1, 200]);
        g.save();
        let before = g.clone();
        g.push(400);
        g.push(401);
        g.undo();
        assert_eq!(g.gaps, before.gaps);
        assert_eq!(g.last(), Some(200));
    }
}
