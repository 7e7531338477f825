//! Newer state never overwritten by older: the order in which versions of a
//! state file were taken from the records (under the agent's lock) is the
//! order in which they may land on disk.
//!
//! Two paths put files in place: the committer, with rounds the stager took
//! a while ago, and `Agent::flush` (API requests, shutdown), which commits at
//! once. Commits are one at a time, but that alone does not order them: a
//! flush can commit version 2 of a record while the committer still holds
//! version 1 staged, which it would then rename over it. Each round gets a
//! number when its writes are taken; a file is put in place only if no newer
//! round (or removal) of the same path already was.

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard, PoisonError},
};

#[derive(Default)]
pub struct Order {
    next: u64,
    /// Rounds taken and not yet committed.
    in_flight: BTreeSet<u64>,
    /// The newest round put in place (or removal done) per path, kept only
    /// while an older round is in flight.
    latest: HashMap<PathBuf, u64>,
}

static ORDER: Mutex<Option<Order>> = Mutex::new(None);

/// The ordering state, held for the whole of a commit (which also makes
/// commits one at a time).
pub fn lock() -> OrderGuard {
    OrderGuard(ORDER.lock().unwrap_or_else(PoisonError::into_inner))
}

pub struct OrderGuard(MutexGuard<'static, Option<Order>>);

impl OrderGuard {
    fn order(&mut self) -> &mut Order {
        self.0.get_or_insert_with(Order::default)
    }

    /// Whether `path` from round `round` may be put in place: no newer round
    /// or removal of it was.
    pub fn may_land(&mut self, path: &Path, round: u64) -> bool {
        self.order().latest.get(path).is_none_or(|newest| *newest <= round)
    }

    /// `path` of round `round` is in place.
    pub fn landed(&mut self, path: &Path, round: u64) {
        let o = self.order();
        let newest = o.latest.entry(path.to_path_buf()).or_insert(round);
        *newest = (*newest).max(round);
    }

    /// Round `round` is done; entries no round in flight is older than are dropped.
    pub fn done(&mut self, round: u64) {
        let o = self.order();
        o.in_flight.remove(&round);
        match o.in_flight.first().copied() {
            None => o.latest.clear(),
            Some(oldest) => o.latest.retain(|_, newest| *newest > oldest),
        }
    }
}

/// A new round's number, counted in flight until [`OrderGuard::done`]. Taken
/// where the writes are encoded, under the agent's lock, so numbers follow
/// the records' versions.
pub fn begin() -> u64 {
    let mut g = lock();
    let o = g.order();
    o.next += 1;
    let round = o.next;
    o.in_flight.insert(round);
    round
}

/// `path` was removed now: no older staged version may bring it back.
pub fn removed(path: &Path) {
    let mut g = lock();
    let o = g.order();
    o.next += 1;
    let round = o.next;
    if !o.in_flight.is_empty() {
        o.latest.insert(path.to_path_buf(), round);
    }
}
