//! Playback-token enforcement for `/p/<token>/<asset>/…` (Contract 4).
//!
//! Each worker keeps its own copy of the public keys and revocations and its
//! own cache of tokens whose signature it has verified, so a segment request
//! costs a hash lookup and a few comparisons: the signature is checked once
//! per token per core. Time, asset and revocation are checked on every
//! request, cached or not. When the key set changes (rotation, revocation),
//! the housekeeping tick swaps it in and empties the cache.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use streamgate_token::{check, Claims, KeySet, Rejection};

/// Tokens a worker remembers; past it the cache starts over.
const CACHE_ENTRIES: usize = 16_384;
/// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds.
const SKEW_SECONDS: u64 = 30;

/// The current key set, shared by the loader and the workers.
#[derive(Default)]
pub struct SharedKeys {
    version: AtomicU64,
    current: Mutex<Arc<KeySet>>,
}

impl SharedKeys {
    /// Publishes a new key set.
    pub fn publish(&self, keys: KeySet) {
        if let Ok(mut current) = self.current.lock() {
            *current = Arc::new(keys);
        }
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    fn snapshot(&self) -> (u64, Arc<KeySet>) {
        let version = self.version.load(Ordering::SeqCst);
        let keys = self
            .current
            .lock()
            .map(|k| Arc::clone(&k))
            .unwrap_or_default();
        (version, keys)
    }
}

/// One worker's gate.
pub struct Gate {
    shared: Arc<SharedKeys>,
    version: Cell<u64>,
    keys: RefCell<Arc<KeySet>>,
    verified: RefCell<HashMap<Box<str>, Claims, BuildHasherDefault<TokenHasher>>>,
}

/// FxHash-style hasher for the verified-token cache. Only tokens whose
/// signature verified are ever inserted, so an attacker cannot fill the map
/// with colliding keys; SipHash's flood resistance would buy nothing here and
/// costs a visible share of a segment request for ~250-byte keys.
#[derive(Default)]
struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Gate {
    /// A gate reading keys from `shared`.
    pub fn new(shared: Arc<SharedKeys>) -> Self {
        let (version, keys) = shared.snapshot();
        Self {
            shared,
            version: Cell::new(version),
            keys: RefCell::new(keys),
            verified: RefCell::default(),
        }
    }

    /// Picks up a new key set if one was published (housekeeping tick).
    pub fn refresh(&self) {
        if self.shared.version.load(Ordering::SeqCst) != self.version.get() {
            let (version, keys) = self.shared.snapshot();
            self.version.set(version);
            *self.keys.borrow_mut() = keys;
            self.verified.borrow_mut().clear();
        }
    }

    /// Whether `token` opens `asset` now.
    pub fn admit(&self, token: &str, asset: &str) -> Result<(), Rejection> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let keys = self.keys.borrow();
        let mut verified = self.verified.borrow_mut();
        if let Some(claims) = verified.get(token) {
            return check(claims, asset, now, SKEW_SECONDS, &keys);
        }
        let claims = keys.verify_signature(token)?;
        let result = check(&claims, asset, now, SKEW_SECONDS, &keys);
        // Remember a genuine token even when it is refused for this asset or
        // time: the signature need not be checked again.
        if verified.len() >= CACHE_ENTRIES {
            verified.clear();
        }
        verified.insert(token.into(), claims);
        result
    }
}

/// Reads `<dir>/*.pub` (base64url Ed25519 public keys; the file stem is the
/// kid) and `<dir>/revoked` (one jti a line). A missing directory is an
/// empty set: every token is refused.
pub fn load(dir: &Path) -> KeySet {
    let mut keys = KeySet::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return keys;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "pub") {
            let kid = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            match read_public(&path) {
                Some(public) if keys.add(&kid, &public).is_ok() => {}
                _ => eprintln!(
                    "streamgate engine: ignoring unreadable key {}",
                    path.display()
                ),
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("revoked")) {
        for jti in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            keys.revoke(jti);
        }
    }
    keys
}

fn read_public(path: &Path) -> Option<[u8; 32]> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(path).ok()?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()?
        .try_into()
        .ok()
}

/// A cheap fingerprint of the key directory (names, sizes, mtimes).
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut items: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    Some((e.path(), m.len(), m.modified().ok()))
                })
                .collect()
        })
        .unwrap_or_default();
    items.sort();
    items
}

/// Loads the keys now and reloads them whenever the directory changes.
pub fn watch(dir: PathBuf, shared: Arc<SharedKeys>) -> std::io::Result<()> {
    shared.publish(load(&dir));
    let mut seen = fingerprint(&dir);
    std::thread::Builder::new()
        .name("sg-keys".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let now = fingerprint(&dir);
            if now != seen {
                seen = now;
                shared.publish(load(&dir));
            }
        })?;
    Ok(())
}
