//! A small map kept as one sorted vector, for the maps every record holds a
//! few entries of (a record's cgroups: nearly always one). A B-tree allocates
//! a node for eleven entries however few there are (about 1.2 KiB for one
//! cgroup's record); this holds what it has. Its JSON is the B-tree's.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer, ser::SerializeMap};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenseMap<K, V> {
    /// Sorted by key, one entry per key.
    entries: Vec<(K, V)>,
}

impl<K, V> Default for DenseMap<K, V> {
    fn default() -> Self {
        DenseMap { entries: Vec::new() }
    }
}

impl<K: Ord + Copy, V> DenseMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find(&self, key: &K) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.cmp(key))
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.find(key).is_ok()
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.find(key).ok().map(|i| &mut self.entries[i].1)
    }

    /// Sets the key's value; the one it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                super::first_uses::grow_gently(&mut self.entries);
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.find(key).ok().map(|i| self.entries.remove(i).1)
    }

    /// The key's value, made by `make` when it has none.
    pub fn entry_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                super::first_uses::grow_gently(&mut self.entries);
                self.entries.insert(i, (key, make()));
                i
            }
        };
        &mut self.entries[i].1
    }

    /// As a B-tree map's `entry(key)`, for `or_insert_with` and `or_default`.
    pub fn entry(&mut self, key: K) -> Entry<'_, K, V> {
        Entry { map: self, key }
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.entries.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> + '_ {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> + '_ {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }
}

/// A key's place in a `DenseMap`.
pub struct Entry<'a, K, V> {
    map: &'a mut DenseMap<K, V>,
    key: K,
}

impl<'a, K: Ord + Copy, V> Entry<'a, K, V> {
    pub fn or_insert_with(self, make: impl FnOnce() -> V) -> &'a mut V {
        self.map.entry_or_insert_with(self.key, make)
    }

    pub fn or_default(self) -> &'a mut V
    where
        V: Default,
    {
        self.map.entry_or_insert_with(self.key, V::default)
    }
}

impl<K: Ord + Copy, V> std::ops::Index<&K> for DenseMap<K, V> {
    type Output = V;

    /// As a B-tree map's: panics when the key is not there.
    fn index(&self, key: &K) -> &V {
        self.get(key).expect("no entry for the key in the DenseMap")
    }
}

impl<K: Ord + Copy, V> FromIterator<(K, V)> for DenseMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        // Through a B-tree: sorted, and a key given twice keeps its last value.
        let sorted: BTreeMap<K, V> = iter.into_iter().collect();
        DenseMap { entries: sorted.into_iter().collect() }
    }
}

impl<K: Ord + Copy, V> Extend<(K, V)> for DenseMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K: Ord + Copy, V> IntoIterator for DenseMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<K: Serialize, V: Serialize> Serialize for DenseMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, K: Ord + Copy + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for DenseMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(BTreeMap::<K, V>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same steps on a B-tree map and on this leave the same entries and
    /// the same JSON.
    #[test]
    fn it_answers_as_a_btree_map() {
        let mut dense: DenseMap<u64, String> = DenseMap::new();
        let mut tree: BTreeMap<u64, String> = BTreeMap::new();
        for (k, v) in [(5, "e"), (1, "a"), (9, "i"), (5, "E"), (0, "z")] {
            assert_eq!(dense.insert(k, v.into()), tree.insert(k, v.into()));
        }
        dense.entry(7).or_insert_with(|| "g".into()).push('!');
        tree.entry(7).or_insert_with(|| "g".into()).push('!');
        dense.entry(7).or_default().push('?');
        tree.entry(7).or_default().push('?');
        assert_eq!(dense.remove(&1), tree.remove(&1));
        assert_eq!(dense.remove(&1), None);
        assert_eq!(dense.iter().collect::<Vec<_>>(), tree.iter().collect::<Vec<_>>());
        assert_eq!(serde_json::to_string(&dense).unwrap(), serde_json::to_string(&tree).unwrap());
        let back: DenseMap<u64, String> = serde_json::from_str(&serde_json::to_string(&tree).unwrap()).unwrap();
        assert_eq!(back, dense);
        assert_eq!((dense.get(&7).map(String::as_str), dense.contains_key(&9), dense.len()), (Some("g!?"), true, 4));
    }
}
