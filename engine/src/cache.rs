//! The per-core hot-segment cache.
//!
//! Each worker owns one, so a hit takes no lock and touches no shared cache
//! line. An entry holds what serving a file needs without touching the disk
//! again: validators plus either the whole body in memory (small files, where
//! one copy is cheaper than the splice round trip) or an open descriptor to
//! splice from at any offset (larger files: zero copy, no open/close per
//! request). Entries are keyed by asset-relative path and carry the file's
//! stamp (device, inode, size, mtime); every lookup is checked against a fresh
//! `fstatat`, so a file replaced by rename or rewritten in place is never
//! served from the old copy. Eviction is CLOCK (second chance), bounded by
//! bytes held in memory and by entry count (open descriptors).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::rc::Rc;

use bytes::Bytes;
use streamgate_net::conditional::Validators;

use crate::fs::FileStamp;

/// Where a cached file's bytes come from.
#[derive(Clone)]
pub enum Cached {
    /// The whole body, in memory.
    Memory(Bytes),
    /// An open descriptor of exactly the stamped version.
    File(Rc<File>),
}

impl Cached {
    fn memory(&self) -> usize {
        match self {
            Self::Memory(b) => b.len(),
            Self::File(_) => 0,
        }
    }
}

/// One cached file version.
pub struct Entry {
    /// The file's stamp when it was opened.
    pub stamp: FileStamp,
    /// Validators derived from the stamp (computed once, reused per hit).
    pub validators: Rc<Validators>,
    /// The body or the descriptor to send it from.
    pub content: Cached,
    referenced: bool,
}

/// Bounds of one worker's cache.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of bodies held in memory.
    pub memory_bytes: usize,
    /// Largest body held in memory; larger files are cached as descriptors.
    pub max_memory_object: usize,
    /// Entries (each larger file holds one open descriptor).
    pub max_entries: usize,
}

/// A CLOCK cache bounded by memory and entry count.
pub struct HotCache {
    limits: Limits,
    used: usize,
    map: HashMap<Rc<str>, Entry>,
    clock: VecDeque<Rc<str>>,
}

impl HotCache {
    /// An empty cache.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            used: 0,
            map: HashMap::new(),
            clock: VecDeque::new(),
        }
    }

    /// Whether a body of `size` bytes is kept in memory (else as a descriptor).
    pub fn keeps_in_memory(&self, size: u64) -> bool {
        usize::try_from(size)
            .is_ok_and(|s| s <= self.limits.max_memory_object.min(self.limits.memory_bytes))
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

    /// Inserts an entry, evicting older ones as needed.
    pub fn insert(
        &mut self,
        key: &str,
        stamp: FileStamp,
        validators: Rc<Validators>,
        content: Cached,
    ) {
        let size = content.memory();
        if size > self.limits.memory_bytes || self.limits.max_entries == 0 {
            return;
        }
        self.remove(key);
        while self.used + size > self.limits.memory_bytes
            || self.map.len() >= self.limits.max_entries
        {
            if !self.evict_one() {
                return;
            }
        }
        let key: Rc<str> = Rc::from(key);
        self.used += size;
        self.clock.push_back(Rc::clone(&key));
        self.map.insert(
            key,
            Entry {
                stamp,
                validators,
                content,
                referenced: false,
            },
        );
    }

    /// Bytes held in memory.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Entries held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.map.remove(key) {
            self.used -= old.content.memory();
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

    fn cache(memory_bytes: usize, max_memory_object: usize, max_entries: usize) -> HotCache {
        HotCache::new(Limits {
            memory_bytes,
            max_memory_object,
            max_entries,
        })
    }

    fn put(c: &mut HotCache, key: &str, ino: u64, size: usize) {
        let s = stamp(ino, size as u64);
        let v = Rc::new(Validators::new(ino, size as u64, 1, 0));
        let content = if c.keeps_in_memory(size as u64) {
            Cached::Memory(Bytes::from(vec![0u8; size]))
        } else {
            Cached::File(Rc::new(File::open("/dev/null").unwrap()))
        };
        c.insert(key, s, v, content);
    }

    #[test]
    fn stale_entries_are_never_returned() {
        let mut c = cache(100, 50, 10);
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
        let mut c = cache(100, 50, 10);
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
    fn large_files_are_kept_as_descriptors_within_the_entry_bound() {
        let mut c = cache(100, 50, 2);
        put(&mut c, "big", 1, 60);
        assert_eq!(c.used(), 0, "a descriptor holds no body in memory");
        assert!(matches!(
            c.get("big", &stamp(1, 60)).map(|e| &e.content),
            Some(Cached::File(_))
        ));
        put(&mut c, "big2", 2, 600);
        put(&mut c, "big3", 3, 6000);
        assert_eq!(c.len(), 2, "entry bound holds");
    }
}
