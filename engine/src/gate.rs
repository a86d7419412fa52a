//! Access decisions made locally: playback tokens for
//! `/p/<token>/<asset>/…` (Contract 4) and the set of open assets for `/v/`.
//!
//! Each worker keeps its own copy of the public keys, revocations and open
//! assets (pulled from the control plane by `sync`) and its own cache of
//! tokens whose signature it has verified, so a segment request costs a hash
//! lookup and a few comparisons: the signature is checked once per token per
//! core. Time, asset and revocation are checked on every request, cached or
//! not. When the state changes (rotation, revocation, an asset gated or
//! opened), the housekeeping tick swaps it in and empties the cache.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use streamgate_token::{check, Claims, KeySet, Rejection};

/// Tokens a worker remembers; past it the cache starts over.
const CACHE_ENTRIES: usize = 16_384;
/// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds.
const SKEW_SECONDS: u64 = 30;

/// What the control plane says about access.
#[derive(Default)]
pub struct AccessState {
    /// Public keys and revoked token ids.
    pub keys: KeySet,
    /// Assets served under `/v/` without a token.
    pub open_assets: HashSet<String>,
}

/// The current access state, shared by the sync thread and the workers.
#[derive(Default)]
pub struct SharedAccess {
    version: AtomicU64,
    current: Mutex<Arc<AccessState>>,
}

impl SharedAccess {
    /// Publishes a new state.
    pub fn publish(&self, state: AccessState) {
        if let Ok(mut current) = self.current.lock() {
            *current = Arc::new(state);
        }
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    fn snapshot(&self) -> (u64, Arc<AccessState>) {
        let version = self.version.load(Ordering::SeqCst);
        let state = self
            .current
            .lock()
            .map(|s| Arc::clone(&s))
            .unwrap_or_default();
        (version, state)
    }
}

/// One worker's gate.
pub struct Gate {
    shared: Arc<SharedAccess>,
    version: Cell<u64>,
    state: RefCell<Arc<AccessState>>,
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
    /// A gate reading the access state from `shared`.
    pub fn new(shared: Arc<SharedAccess>) -> Self {
        let (version, state) = shared.snapshot();
        Self {
            shared,
            version: Cell::new(version),
            state: RefCell::new(state),
            verified: RefCell::default(),
        }
    }

    /// Picks up a new state if one was published (housekeeping tick).
    pub fn refresh(&self) {
        if self.shared.version.load(Ordering::SeqCst) != self.version.get() {
            let (version, state) = self.shared.snapshot();
            self.version.set(version);
            *self.state.borrow_mut() = state;
            self.verified.borrow_mut().clear();
        }
    }

    /// Whether `token` opens `asset` now.
    pub fn admit(&self, token: &str, asset: &str) -> Result<(), Rejection> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let state = self.state.borrow();
        let keys = &state.keys;
        let mut verified = self.verified.borrow_mut();
        if let Some(claims) = verified.get(token) {
            return check(claims, asset, now, SKEW_SECONDS, keys);
        }
        let claims = keys.verify_signature(token)?;
        let result = check(&claims, asset, now, SKEW_SECONDS, keys);
        // Remember a genuine token even when it is refused for this asset or
        // time: the signature need not be checked again.
        if verified.len() >= CACHE_ENTRIES {
            verified.clear();
        }
        verified.insert(token.into(), claims);
        result
    }

    /// Whether `asset` is open (served under `/v/` without a token).
    pub fn is_open(&self, asset: &str) -> bool {
        self.state.borrow().open_assets.contains(asset)
    }
}
