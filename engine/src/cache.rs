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
//!
//! The clock is the classic circular array: each entry owns one slot, a
//! removed entry frees its slot for the next insert, and a replaced entry
//! keeps its slot. So the clock never holds more slots than the most entries
//! the cache ever held at once, however often a playlist is rewritten.

use std::collections::HashMap;
use std::fs::File;
use std::rc::Rc;

use bytes::Bytes;
use streamgate_net::conditional::Validators;

use streamgate_assets::FileStamp;

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
    /// This entry's position on the clock.
    slot: usize,
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
    /// The clock: one slot per entry, `None` where an entry was removed.
    slots: Vec<Option<Rc<str>>>,
    /// Empty slots, reused before the clock grows.
    free: Vec<usize>,
    /// The clock hand: the next slot eviction looks at.
    hand: usize,
}

impl HotCache {
    /// An empty cache.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            used: 0,
            map: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            hand: 0,
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
            self.remove(key);
            return;
        }
        if let Some(entry) = self.map.get_mut(key) {
            // A new version of a cached file keeps its key's slot.
            self.used = self.used - entry.content.memory() + size;
            entry.stamp = stamp;
            entry.validators = validators;
            entry.content = content;
            entry.referenced = false;
            while self.used > self.limits.memory_bytes {
                if !self.evict_one() {
                    break;
                }
            }
            return;
        }
        while self.used + size > self.limits.memory_bytes
            || self.map.len() >= self.limits.max_entries
        {
            if !self.evict_one() {
                return;
            }
        }
        let key: Rc<str> = Rc::from(key);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(Rc::clone(&key));
                slot
            }
            None => {
                self.slots.push(Some(Rc::clone(&key)));
                self.slots.len() - 1
            }
        };
        self.used += size;
        self.map.insert(
            key,
            Entry {
                stamp,
                validators,
                content,
                referenced: false,
                slot,
            },
        );
    }

    /// Drops the entry for `key`, if any (its file is gone or unreadable:
    /// the descriptor it held must not keep the file's space allocated).
    pub fn remove(&mut self, key: &str) {
        if let Some(old) = self.map.remove(key) {
            self.used -= old.content.memory();
            self.slots[old.slot] = None;
            self.free.push(old.slot);
        }
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

    /// Slots on the clock (occupied or free).
    #[cfg(test)]
    fn clock_len(&self) -> usize {
        self.slots.len()
    }

    /// Advances the clock hand until one entry is evicted; `false` when the
    /// cache is empty.
    fn evict_one(&mut self) -> bool {
        if self.map.is_empty() {
            return false;
        }
        // Each full turn clears every reference bit, so two turns suffice.
        for _ in 0..2 * self.slots.len() {
            let slot = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let Some(key) = self.slots[slot].clone() else {
                continue;
            };
            let Some(entry) = self.map.get_mut(&key) else {
                continue;
            };
            if entry.referenced {
                entry.referenced = false;
            } else {
                self.remove(&key);
                return true;
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
    fn rewriting_a_file_does_not_grow_the_clock() {
        let mut c = cache(1000, 50, 10);
        put(&mut c, "other", 1, 10);
        // A playlist rewritten over and over: each version misses (stale),
        // then the new version is inserted.
        for version in 0..100_000u64 {
            let current = stamp(100 + version, 20);
            assert!(c.get("live.m3u8", &current).is_none());
            put(&mut c, "live.m3u8", 100 + version, 20);
        }
        assert_eq!(c.len(), 2);
        assert!(c.clock_len() <= c.len() + 2, "clock has {}", c.clock_len());
        // Removing and re-adding many keys reuses slots too.
        for round in 0..1000u64 {
            put(&mut c, "gone", 10_000 + round, 10);
            c.remove("gone");
        }
        assert!(c.clock_len() <= c.len() + 2, "clock has {}", c.clock_len());
        assert_eq!(c.used(), 30);
    }

    #[test]
    fn eviction_still_works_after_slots_are_reused() {
        let mut c = cache(100, 50, 3);
        for i in 0..50u64 {
            put(&mut c, &format!("k{i}"), i + 1, 10);
            if i % 3 == 0 {
                c.remove(&format!("k{i}"));
            }
        }
        assert!(c.len() <= 3);
        assert!(c.clock_len() <= 3);
        assert!(
            c.get("k49", &stamp(50, 10)).is_some(),
            "the newest survives"
        );
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
