//! Rates from cumulative totals: the feed sends how many calls so far and when
//! they were read; calls per second are the difference of two consecutive frames
//! over the difference of their kernel timestamps.

use std::{collections::HashMap, hash::Hash};

/// Per key, the latest total and the rate between the last two frames.
#[derive(Debug)]
pub struct Rates<K> {
    at_ns: Option<u64>,
    totals: HashMap<K, u64>,
    rates: HashMap<K, f64>,
}

impl<K> Default for Rates<K> {
    fn default() -> Self {
        Self { at_ns: None, totals: HashMap::new(), rates: HashMap::new() }
    }
}

impl<K: Eq + Hash + Clone> Rates<K> {
    /// Takes a frame's totals, read at `at_ns` (CLOCK_BOOTTIME). A frame that
    /// is not newer than the last one is ignored. A key seen for the first time
    /// has no rate until the next frame: its total covers an unknown span.
    pub fn update(&mut self, at_ns: u64, totals: impl IntoIterator<Item = (K, u64)>) {
        let seconds = match self.at_ns {
            Some(prev) if at_ns <= prev => return,
            Some(prev) => Some((at_ns - prev) as f64 / 1e9),
            None => None,
        };
        let mut next = HashMap::new();
        self.rates.clear();
        for (key, total) in totals {
            if let (Some(seconds), Some(prev)) = (seconds, self.totals.get(&key)) {
                // A total that went down (a record replaced under the same key)
                // gives no negative rate.
                self.rates.insert(key.clone(), total.saturating_sub(*prev) as f64 / seconds);
            }
            next.insert(key, total);
        }
        self.totals = next;
        self.at_ns = Some(at_ns);
    }

    pub fn get(&self, key: &K) -> Option<f64> {
        self.rates.get(key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn rates_are_differences_over_the_kernel_time_between_frames() {
        let mut r = Rates::default();
        r.update(10 * S, [("a", 100), ("b", 5)]);
        assert_eq!(r.get(&"a"), None, "one frame gives no rate");
        r.update(12 * S, [("a", 1100), ("b", 5), ("c", 40)]);
        assert_eq!(r.get(&"a"), Some(500.0));
        assert_eq!(r.get(&"b"), Some(0.0));
        assert_eq!(r.get(&"c"), None, "new in this frame: no rate yet");
        r.update(12 * S + S / 2, [("a", 1200), ("c", 50)]);
        assert_eq!(r.get(&"a"), Some(200.0));
        assert_eq!(r.get(&"c"), Some(20.0));
        assert_eq!(r.get(&"b"), None, "gone from the frame");
    }

    #[test]
    fn stale_frames_and_totals_that_go_down_give_no_nonsense() {
        let mut r = Rates::default();
        r.update(5 * S, [("a", 100)]);
        r.update(6 * S, [("a", 300)]);
        r.update(6 * S, [("a", 900)]);
        r.update(4 * S, [("a", 900)]);
        assert_eq!(r.get(&"a"), Some(200.0), "frames not newer than the last are ignored");
        r.update(7 * S, [("a", 10)]);
        assert_eq!(r.get(&"a"), Some(0.0));
    }
}
