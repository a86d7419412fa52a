//! Validators (ETag, Last-Modified) and conditional-request evaluation
//! (RFC 9110 §13): If-None-Match, If-Modified-Since and If-Range.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::request::trim_ows;

/// The validators of one file version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// Strong entity-tag, quotes included: changes whenever the file is
    /// replaced (new inode), resized or touched.
    pub etag: String,
    /// Modification time, whole seconds since the epoch (HTTP dates have no
    /// sub-second precision).
    pub last_modified_secs: u64,
    /// `Last-Modified` as an IMF-fixdate, formatted once.
    pub last_modified: String,
}

impl Validators {
    /// Derives validators from file metadata.
    pub fn new(inode: u64, size: u64, mtime_secs: u64, mtime_nanos: u32) -> Self {
        Self {
            etag: format!("\"{mtime_secs:x}.{mtime_nanos:x}-{size:x}-{inode:x}\""),
            last_modified_secs: mtime_secs,
            last_modified: http_date(UNIX_EPOCH + Duration::from_secs(mtime_secs)),
        }
    }

    /// Validators recorded when an object was published: a tag derived from
    /// its content (quotes included) and the publish time, so every origin
    /// serving the same object gives the same ones.
    pub fn published(etag: &str, published_secs: u64) -> Self {
        Self {
            etag: etag.to_string(),
            last_modified_secs: published_secs,
            last_modified: http_date(UNIX_EPOCH + Duration::from_secs(published_secs)),
        }
    }
}

/// Whether a GET/HEAD should be answered 304 Not Modified.
///
/// If-None-Match wins when present (If-Modified-Since is then ignored, as
/// RFC 9110 §13.1.3 requires); it uses weak comparison.
pub fn not_modified(
    if_none_match: Option<&[u8]>,
    if_modified_since: Option<&[u8]>,
    validators: &Validators,
) -> bool {
    if let Some(list) = if_none_match {
        return etag_list_matches(list, &validators.etag);
    }
    if let Some(since) = if_modified_since.and_then(parse_http_date) {
        return validators.last_modified_secs <= since;
    }
    false
}

/// Whether a Range may be honoured given an `If-Range` header (absent means
/// yes). An entity-tag must match strongly; a date must equal Last-Modified.
pub fn if_range_allows(if_range: Option<&[u8]>, validators: &Validators) -> bool {
    let Some(value) = if_range.map(trim_ows) else {
        return true;
    };
    if value.starts_with(b"\"") {
        return value == validators.etag.as_bytes();
    }
    if value.starts_with(b"W/") {
        return false; // weak tags never match strongly
    }
    parse_http_date(value) == Some(validators.last_modified_secs)
}

/// Weak comparison of `etag` against an If-None-Match list (`*` matches all).
fn etag_list_matches(list: &[u8], etag: &str) -> bool {
    let list = trim_ows(list);
    if list == b"*" {
        return true;
    }
    let ours = opaque(etag.as_bytes());
    list.split(|&b| b == b',')
        .map(trim_ows)
        .any(|tag| opaque(tag) == ours)
}

fn opaque(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

/// Parses any of the three HTTP date formats into seconds since the epoch.
pub fn parse_http_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(trim_ows(value)).ok()?;
    let time = httpdate::parse_http_date(text).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Formats a time as an IMF-fixdate.
pub fn http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Validators {
        Validators::new(7, 100, 1_700_000_000, 5)
    }

    #[test]
    fn etag_changes_with_each_input() {
        let base = v();
        assert_ne!(base, Validators::new(8, 100, 1_700_000_000, 5));
        assert_ne!(base, Validators::new(7, 101, 1_700_000_000, 5));
        assert_ne!(base, Validators::new(7, 100, 1_700_000_000, 6));
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let tag = v().etag;
        assert!(not_modified(Some(tag.as_bytes()), None, &v()));
        assert!(not_modified(
            Some(format!("\"x\", W/{tag}").as_bytes()),
            None,
            &v()
        ));
        assert!(not_modified(Some(b"*"), None, &v()));
        assert!(!not_modified(Some(b"\"other\""), None, &v()));
        // If-None-Match present and not matching: If-Modified-Since is ignored.
        let future = b"Sun, 06 Nov 2094 08:49:37 GMT";
        assert!(!not_modified(Some(b"\"other\""), Some(future), &v()));
    }

    #[test]
    fn if_modified_since() {
        let lm = v().last_modified.clone();
        assert!(not_modified(None, Some(lm.as_bytes()), &v()));
        assert!(!not_modified(
            None,
            Some(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            &v()
        ));
        assert!(!not_modified(None, Some(b"garbage"), &v()));
        // The obsolete formats are accepted too.
        assert!(not_modified(
            None,
            Some(b"Sunday, 06-Nov-94 08:49:37 GMT"),
            &Validators::new(1, 1, 784_111_777, 0)
        ));
    }

    #[test]
    fn if_range() {
        let val = v();
        assert!(if_range_allows(None, &val));
        assert!(if_range_allows(Some(val.etag.as_bytes()), &val));
        assert!(!if_range_allows(
            Some(format!("W/{}", val.etag).as_bytes()),
            &val
        ));
        assert!(!if_range_allows(Some(b"\"stale\""), &val));
        assert!(if_range_allows(Some(val.last_modified.as_bytes()), &val));
        assert!(!if_range_allows(
            Some(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            &val
        ));
    }
}
