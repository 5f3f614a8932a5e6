//! Every registered user's name, in memory: a direct message or a member
//! list names users who need not be online, and looking them up must not
//! cost a query on the loop. Loaded at start-up, extended on registration.

use crate::ids::UserId;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// Names by id, and ids by name without regard to ASCII case.
#[derive(Debug, Default)]
pub(super) struct Directory {
    names: BTreeMap<UserId, Rc<str>>,
    /// Folded name → ids, lowest first. Imported databases may hold names
    /// that collide without regard to case; they are all kept.
    by_fold: HashMap<Box<str>, Vec<UserId>>,
}

impl Directory {
    /// Adds a user (once).
    pub(super) fn add(&mut self, user: UserId, name: &str) {
        if self.names.insert(user, name.into()).is_some() {
            return;
        }
        let ids = self
            .by_fold
            .entry(name.to_ascii_lowercase().into())
            .or_default();
        let at = ids.partition_point(|&u| u < user);
        ids.insert(at, user);
    }

    /// Forgets a user (a deleted account): their name is free again.
    pub(super) fn remove(&mut self, user: UserId) {
        let Some(name) = self.names.remove(&user) else {
            return;
        };
        let fold = name.to_ascii_lowercase();
        if let Some(ids) = self.by_fold.get_mut(fold.as_str()) {
            ids.retain(|&u| u != user);
            if ids.is_empty() {
                self.by_fold.remove(fold.as_str());
            }
        }
    }

    /// The user named `name` without regard to case: the exact-case match
    /// first, then the lowest id (as the store's `user_by_name`).
    pub(super) fn find(&self, name: &str) -> Option<(UserId, &Rc<str>)> {
        let ids = self.by_fold.get(name.to_ascii_lowercase().as_str())?;
        let exact = ids
            .iter()
            .find(|u| self.names.get(u).is_some_and(|n| &**n == name));
        let user = *exact.or(ids.first())?;
        Some((user, &self.names[&user]))
    }

    /// The name of `user`.
    pub(super) fn name(&self, user: UserId) -> Option<&Rc<str>> {
        self.names.get(&user)
    }

    /// Every user, by id.
    pub(super) fn iter(&self) -> impl Iterator<Item = (UserId, &Rc<str>)> {
        self.names.iter().map(|(&u, n)| (u, n))
    }

    /// Number of users.
    pub(super) fn len(&self) -> usize {
        self.names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_case_first_then_lowest_id() {
        let mut d = Directory::default();
        d.add(UserId(3), "bob");
        d.add(UserId(2), "Bob");
        d.add(UserId(2), "Bob");
        let find = |n: &str| d.find(n).map(|(u, name)| (u.0, name.to_string()));
        assert_eq!(find("bob"), Some((3, "bob".into())));
        assert_eq!(find("Bob"), Some((2, "Bob".into())));
        assert_eq!(find("BOB"), Some((2, "Bob".into())));
        assert_eq!(find("bo"), None);
        assert_eq!(d.len(), 2);
    }
}
