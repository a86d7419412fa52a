//! Parsed manifests shared by the viewers of one thread. A VOD playlist is
//! the same for every viewer, so it is parsed once and held once — ten
//! thousand viewers of a two-hour film would otherwise hold ten thousand
//! copies of its segment lists. Entries are keyed by the manifest's path
//! and a hash of its bytes, so a changed (live) playlist is parsed again;
//! every viewer still fetches its manifests, as a player does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use super::manifest::{self, Presentation, Track};
use crate::LoadError;

/// Entries kept per kind before the cache starts over (live playlists
/// change every target duration; tokenized paths differ per session).
const MAX_ENTRIES: usize = 256;

type Key = (String, u64);

thread_local! {
    static PRESENTATIONS: RefCell<HashMap<Key, Rc<Presentation>>> = RefCell::new(HashMap::new());
    static TRACKS: RefCell<HashMap<Key, Rc<Track>>> = RefCell::new(HashMap::new());
}

fn key(path: &str, text: &[u8]) -> Key {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    (path.to_string(), h.finish())
}

fn cached<T>(
    cache: &'static std::thread::LocalKey<RefCell<HashMap<Key, Rc<T>>>>,
    path: &str,
    text: &[u8],
    parse: impl FnOnce() -> Result<T, LoadError>,
) -> Result<Rc<T>, LoadError> {
    let key = key(path, text);
    if let Some(hit) = cache.with(|c| c.borrow().get(&key).cloned()) {
        return Ok(hit);
    }
    let parsed = Rc::new(parse()?);
    cache.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= MAX_ENTRIES {
            c.clear();
        }
        c.insert(key, Rc::clone(&parsed));
    });
    Ok(parsed)
}

/// A multivariant playlist or MPD, parsed once per thread.
pub fn presentation(text: &[u8], path: &str) -> Result<Rc<Presentation>, LoadError> {
    cached(&PRESENTATIONS, path, text, || manifest::parse(text, path))
}

/// An HLS media playlist, parsed once per thread.
pub fn media_playlist(text: &[u8], path: &str) -> Result<Rc<Track>, LoadError> {
    cached(&TRACKS, path, text, || manifest::media_playlist(text, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_share_one_parse_and_changed_bytes_do_not() {
        let a = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n0.m4s\n#EXT-X-ENDLIST\n";
        let b = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n0.m4s\n#EXTINF:2.0,\n1.m4s\n";
        let one = media_playlist(a, "/v/x/i.m3u8").unwrap();
        let two = media_playlist(a, "/v/x/i.m3u8").unwrap();
        assert!(Rc::ptr_eq(&one, &two));
        let grown = media_playlist(b, "/v/x/i.m3u8").unwrap();
        assert_eq!(grown.segments.len(), 2);
        assert!(!Rc::ptr_eq(&one, &grown));
    }
}
