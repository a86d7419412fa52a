//! [`AssetIndex`]: what a published asset holds — each object's size and
//! content-derived entity tag, and when the asset was published — kept as
//! `<asset>/.index.json` and written last.
//!
//! Why it exists: two origins serving the same segment must give it the same
//! `ETag` and `Last-Modified`, or a CDN revalidating against the other origin
//! misses every time. A tag from the local inode differs per node; a tag from
//! the content, recorded once at publish, does not. The index also says
//! which objects exist, so an origin reading through to object storage
//! answers 404 for a path the asset never had without asking the bucket, and
//! its presence is the asset's "complete" mark (it goes up after every other
//! object).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The index's name inside an asset (hidden: never served, never listed).
pub const INDEX_NAME: &str = ".index.json";

/// The objects of one published asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetIndex {
    /// Format version (1).
    pub version: u32,
    /// When the asset was published, seconds since the epoch: every object's
    /// `Last-Modified`, on every origin.
    pub published: u64,
    /// Objects by path inside the asset (`720p/1.m4s`).
    pub objects: BTreeMap<String, ObjectInfo>,
}

/// One object of an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// Strong entity tag, quotes included: the first 128 bits of the
    /// content's SHA-256, in hex.
    pub etag: String,
}

/// In which order publishing makes objects visible: media and init
/// segments first, then media playlists, then the entry manifests (so a
/// player that finds a manifest finds everything it names), the index last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PublishRank {
    /// Segments, init segments, posters: named by playlists.
    Media,
    /// Per-rendition playlists: named by the master playlist.
    MediaPlaylist,
    /// `master.m3u8` and `manifest.mpd`: what players start from.
    Entry,
}

impl PublishRank {
    /// The rank of the object at `path` inside an asset.
    pub fn of(path: &str) -> Self {
        let is_manifest = path.ends_with(".m3u8") || path.ends_with(".mpd");
        match (is_manifest, path.contains('/')) {
            (false, _) => Self::Media,
            (true, true) => Self::MediaPlaylist,
            (true, false) => Self::Entry,
        }
    }
}

impl AssetIndex {
    /// Indexes the asset directory `dir` (hashing every file), published at
    /// `published`. Hidden names (the index itself, dotfiles) are left out.
    pub fn of_dir(dir: &Path, published: SystemTime) -> io::Result<Self> {
        let mut objects = BTreeMap::new();
        visible_files(dir, &mut |relative, path, _| {
            let (size, etag) = hash_file(path)?;
            objects.insert(relative, ObjectInfo { size, etag });
            Ok(())
        })?;
        Ok(Self {
            version: 1,
            published: published
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            objects,
        })
    }

    /// Writes the index into the asset directory `dir`, synced.
    pub fn write_into(&self, dir: &Path) -> io::Result<()> {
        let path = dir.join(INDEX_NAME);
        std::fs::write(&path, self.to_json())?;
        File::open(&path)?.sync_all()
    }

    /// The index as stored.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an index always serializes")
    }

    /// Reads a stored index; `InvalidData` when it is not one.
    pub fn parse(bytes: &[u8]) -> io::Result<Self> {
        let index: Self = serde_json::from_slice(bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("asset index: {e}")))?;
        if index.version != 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("asset index version {} is not 1", index.version),
            ));
        }
        Ok(index)
    }

    /// The object at `path` inside the asset.
    pub fn get(&self, path: &str) -> Option<&ObjectInfo> {
        self.objects.get(path)
    }

    /// Paths in publish order (see [`PublishRank`]).
    pub fn publish_order(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = self.objects.keys().map(String::as_str).collect();
        paths.sort_by_key(|p| (PublishRank::of(p), *p));
        paths
    }

    /// Bytes in all objects.
    pub fn total_bytes(&self) -> u64 {
        self.objects.values().map(|o| o.size).sum()
    }
}

/// The entity tag of `content` (see [`ObjectInfo::etag`]).
pub fn etag_of(content: &[u8]) -> String {
    tag(&Sha256::digest(content))
}

pub(crate) fn tag(digest: &[u8]) -> String {
    let mut out = String::with_capacity(34);
    out.push('"');
    for byte in &digest[..16] {
        out.push_str(&format!("{byte:02x}"));
    }
    out.push('"');
    out
}

/// Calls `visit` with the `/`-separated path below `dir`, the full path and
/// the metadata of every regular file beneath `dir`, leaving out hidden
/// names and whatever is under them (the index itself, staging areas).
pub(crate) fn visible_files(
    dir: &Path,
    visit: &mut dyn FnMut(String, &Path, &std::fs::Metadata) -> io::Result<()>,
) -> io::Result<()> {
    walk(dir, "", visit)
}

fn walk(
    dir: &Path,
    prefix: &str,
    visit: &mut dyn FnMut(String, &Path, &std::fs::Metadata) -> io::Result<()>,
) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        // A directory entry's metadata does not follow symbolic links.
        let meta = entry.metadata()?;
        if meta.is_dir() {
            walk(&entry.path(), &relative, visit)?;
        } else if meta.is_file() {
            visit(relative, &entry.path(), &meta)?;
        }
    }
    Ok(())
}

fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, tag(&hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_content_same_tag_wherever_it_is() {
        let base = std::env::temp_dir().join(format!("sg-index-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        for dir in [&a, &b] {
            std::fs::create_dir_all(dir.join("720p")).unwrap();
            std::fs::write(dir.join("master.m3u8"), b"#EXTM3U\n").unwrap();
            std::fs::write(dir.join("720p/1.m4s"), vec![3u8; 70_000]).unwrap();
            std::fs::write(dir.join(".hidden"), b"x").unwrap();
        }
        std::fs::write(b.join("720p/2.m4s"), b"other").unwrap();
        let at = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let (ia, ib) = (
            AssetIndex::of_dir(&a, at).unwrap(),
            AssetIndex::of_dir(&b, at).unwrap(),
        );
        assert_eq!(ia.get("720p/1.m4s"), ib.get("720p/1.m4s"));
        assert_eq!(ia.get("720p/1.m4s").unwrap().size, 70_000);
        assert_ne!(ib.get("720p/1.m4s"), ib.get("720p/2.m4s"));
        assert_eq!(ia.get("master.m3u8").unwrap().etag, etag_of(b"#EXTM3U\n"));
        assert!(ia.get(".hidden").is_none());
        assert_eq!(ia.published, 1_700_000_000);
        ia.write_into(&a).unwrap();
        let back = AssetIndex::parse(&std::fs::read(a.join(INDEX_NAME)).unwrap()).unwrap();
        assert_eq!(back, ia);
        assert_eq!(
            AssetIndex::of_dir(&a, at).unwrap(),
            ia,
            "the index leaves itself out"
        );
        assert!(AssetIndex::parse(b"{}").is_err());
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn manifests_go_up_after_what_they_name() {
        let mut index = AssetIndex {
            version: 1,
            published: 0,
            objects: BTreeMap::new(),
        };
        for path in [
            "manifest.mpd",
            "master.m3u8",
            "720p/index.m3u8",
            "720p/init.mp4",
            "720p/1.m4s",
            "poster.jpg",
        ] {
            index.objects.insert(
                path.into(),
                ObjectInfo {
                    size: 1,
                    etag: etag_of(b"x"),
                },
            );
        }
        assert_eq!(
            index.publish_order(),
            [
                "720p/1.m4s",
                "720p/init.mp4",
                "poster.jpg",
                "720p/index.m3u8",
                "manifest.mpd",
                "master.m3u8"
            ]
        );
    }
}
