//! The per-core hot-segment cache.
//!
//! Each worker owns one, so a hit takes no lock and touches no shared cache
//! line. Entries are keyed by asset-relative path and carry the file's stamp
//! (device, inode, size, mtime); every lookup is checked against a fresh
//! `fstatat`, so a file replaced by rename or rewritten in place is never
//! served from the old copy. Eviction is CLOCK (second chance), bounded in
//! bytes.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use bytes::Bytes;
use streamgate_net::conditional::Validators;

use crate::fs::FileStamp;

/// One cached file version.
pub struct Entry {
    /// The file's stamp when it was read.
    pub stamp: FileStamp,
    /// Validators derived from the stamp (computed once, reused per hit).
    pub validators: Rc<Validators>,
    /// The whole body.
    pub body: Bytes,
    referenced: bool,
}

/// A byte-bounded CLOCK cache.
pub struct HotCache {
    budget: usize,
    max_object: usize,
    used: usize,
    map: HashMap<Rc<str>, Entry>,
    clock: VecDeque<Rc<str>>,
}

impl HotCache {
    /// A cache of at most `budget` bytes admitting objects up to `max_object`.
    pub fn new(budget: usize, max_object: usize) -> Self {
        Self {
            budget,
            max_object: max_object.min(budget),
            used: 0,
            map: HashMap::new(),
            clock: VecDeque::new(),
        }
    }

    /// Whether a body of `size` bytes would be admitted.
    pub fn admits(&self, size: u64) -> bool {
        usize::try_from(size).is_ok_and(|s| s <= self.max_object)
    }

    /// Whether an entry (fresh or not) exists for `key`: a miss needs no stat.
    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// The entry for `key` if its stamp still equals `current`; a stale entry
    /// is dropped.
    pub fn get(&mut self, key: &str, current: &FileStamp) -> Option<&Entry> {
        let fresh = self.map.get(key).map(|e| e.stamp == *current)?;
        if !fresh {
            self.remove(key);
            return None;
        }
        let entry = self.map.get_mut(key)?;
        entry.referenced = true;
        Some(entry)
    }

    /// Inserts a body, evicting older entries as needed.
    pub fn insert(&mut self, key: &str, stamp: FileStamp, validators: Rc<Validators>, body: Bytes) {
        if !self.admits(body.len() as u64) {
            return;
        }
        self.remove(key);
        while self.used + body.len() > self.budget {
            if !self.evict_one() {
                return;
            }
        }
        let key: Rc<str> = Rc::from(key);
        self.used += body.len();
        self.clock.push_back(Rc::clone(&key));
        self.map.insert(
            key,
            Entry {
                stamp,
                validators,
                body,
                referenced: false,
            },
        );
    }

    /// Bytes held.
    pub fn used(&self) -> usize {
        self.used
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.map.remove(key) {
            self.used -= old.body.len();
        }
    }

    /// Advances the clock hand until one entry is evicted.
    fn evict_one(&mut self) -> bool {
        while let Some(key) = self.clock.pop_front() {
            match self.map.get_mut(&key) {
                // Keys of removed or replaced entries linger in the clock;
                // skip them. A replaced entry was pushed again on insert.
                None => continue,
                Some(e) if e.referenced => {
                    e.referenced = false;
                    self.clock.push_back(key);
                }
                Some(_) => {
                    self.remove(&key);
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ino: u64, size: u64) -> FileStamp {
        FileStamp {
            dev: 1,
            ino,
            size,
            mtime_secs: 1,
            mtime_nanos: 0,
        }
    }

    fn put(c: &mut HotCache, key: &str, ino: u64, size: usize) {
        let s = stamp(ino, size as u64);
        let v = Rc::new(Validators::new(ino, size as u64, 1, 0));
        c.insert(key, s, v, Bytes::from(vec![0u8; size]));
    }

    #[test]
    fn stale_entries_are_never_returned() {
        let mut c = HotCache::new(100, 50);
        put(&mut c, "a", 1, 10);
        assert!(c.get("a", &stamp(1, 10)).is_some());
        assert!(
            c.get("a", &stamp(2, 10)).is_none(),
            "replaced file must miss"
        );
        assert!(
            c.get("a", &stamp(1, 10)).is_none(),
            "stale entry was dropped"
        );
        assert_eq!(c.used(), 0);
    }

    #[test]
    fn stays_within_budget_and_keeps_referenced_entries() {
        let mut c = HotCache::new(100, 50);
        put(&mut c, "a", 1, 40);
        put(&mut c, "b", 2, 40);
        assert!(c.get("a", &stamp(1, 40)).is_some()); // a gets a second chance
        put(&mut c, "c", 3, 40);
        assert!(c.used() <= 100);
        assert!(c.get("a", &stamp(1, 40)).is_some());
        assert!(c.get("b", &stamp(2, 40)).is_none());
        assert!(c.get("c", &stamp(3, 40)).is_some());
    }

    #[test]
    fn refuses_objects_over_the_limit() {
        let mut c = HotCache::new(100, 50);
        put(&mut c, "big", 1, 60);
        assert_eq!(c.used(), 0);
        assert!(!c.admits(60));
    }
}
