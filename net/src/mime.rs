//! Content-Type and cache class by file extension, for what an origin serves.

/// How long caches may keep a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheClass {
    /// Never changes once published (init segments, media segments, posters):
    /// `public, max-age=31536000, immutable`.
    Immutable,
    /// May be rewritten (playlists, MPDs, anything unknown): a short TTL.
    Manifest,
}

/// Content-Type and cache class for a path, by its extension.
pub fn classify(path: &str) -> (&'static str, CacheClass) {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    let ext = ext.to_ascii_lowercase();
    match ext.as_str() {
        "m3u8" => ("application/vnd.apple.mpegurl", CacheClass::Manifest),
        "mpd" => ("application/dash+xml", CacheClass::Manifest),
        "m4s" => ("video/iso.segment", CacheClass::Immutable),
        "mp4" => ("video/mp4", CacheClass::Immutable),
        "m4a" => ("audio/mp4", CacheClass::Immutable),
        "ts" => ("video/mp2t", CacheClass::Immutable),
        "aac" => ("audio/aac", CacheClass::Immutable),
        "vtt" => ("text/vtt; charset=utf-8", CacheClass::Immutable),
        "jpg" | "jpeg" => ("image/jpeg", CacheClass::Immutable),
        "png" => ("image/png", CacheClass::Immutable),
        "json" => ("application/json", CacheClass::Manifest),
        _ => ("application/octet-stream", CacheClass::Manifest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(classify("a/master.m3u8").0, "application/vnd.apple.mpegurl");
        assert_eq!(classify("a/manifest.mpd").0, "application/dash+xml");
        assert_eq!(
            classify("a/720p/1.M4S"),
            ("video/iso.segment", CacheClass::Immutable)
        );
        assert_eq!(classify("a/720p/init.mp4").1, CacheClass::Immutable);
        assert_eq!(classify("a/x.ts").0, "video/mp2t");
        assert_eq!(classify("a/sub.vtt").0, "text/vtt; charset=utf-8");
        assert_eq!(classify("a/poster.jpg").0, "image/jpeg");
        assert_eq!(
            classify("a/noext"),
            ("application/octet-stream", CacheClass::Manifest)
        );
    }
}
