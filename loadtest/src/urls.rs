//! `--urls FILE`: the requests to spread the load over, one a line — a URL
//! with an optional weight (`http://host/path 3`), or a line of a combined
//! format access log (its method and path; the host comes from `--url`).
//! Blank lines and `#` comments are skipped. A bad line is refused with its
//! number.

use crate::{LoadError, Target};

/// One request to send, and how often relative to the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weighted {
    /// `GET` or `HEAD`.
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    /// Relative share (at least 1).
    pub weight: u32,
}

/// Reads a URL list. Every URL must be on `origin`'s host and port (one
/// connection pool); access-log lines take it as theirs.
pub fn parse(
    text: &str,
    file: &str,
    origin: &Target,
    default_method: &'static str,
) -> Result<Vec<Weighted>, LoadError> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| LoadError::BadOption(format!("{file}:{}: {why}: {line:?}", n + 1));
        let entry = if let Some(request) = access_log_request(line) {
            let (method, path) = request.ok_or_else(|| {
                bad("an access-log line whose request is not GET or HEAD of a path")
            })?;
            Weighted {
                method,
                path: path.to_string(),
                weight: 1,
            }
        } else {
            let mut words = line.split_whitespace();
            let url = words.next().unwrap_or_default();
            let weight = match words.next() {
                None => 1,
                Some(w) => w
                    .parse::<u32>()
                    .ok()
                    .filter(|w| *w >= 1)
                    .ok_or_else(|| bad("the weight is not a whole number of at least 1"))?,
            };
            if words.next().is_some() {
                return Err(bad("expected `URL [WEIGHT]`"));
            }
            let target = Target::parse(url, true).map_err(|e| bad(&e.to_string()))?;
            if target.addr != origin.addr {
                return Err(bad(&format!("not on {} (one origin per run)", origin.host)));
            }
            Weighted {
                method: default_method,
                path: target.path,
                weight,
            }
        };
        out.push(entry);
    }
    if out.is_empty() {
        return Err(LoadError::BadOption(format!("{file}: no URLs in it")));
    }
    Ok(out)
}

/// For a combined/common log format line, its request: `Some(None)` when
/// the line is one but its request is unusable.
fn access_log_request(line: &str) -> Option<Option<(&'static str, &str)>> {
    // `host ident user [date] "METHOD path PROTO" status bytes …`
    let quoted = line.split_once(" \"")?.1;
    if !line.contains("] \"") {
        return None;
    }
    let request = quoted.split('"').next()?;
    let mut parts = request.split(' ');
    let method = match parts.next()? {
        "GET" => "GET",
        "HEAD" => "HEAD",
        _ => return Some(None),
    };
    Some(
        parts
            .next()
            .filter(|p| p.starts_with('/'))
            .map(|p| (method, p)),
    )
}

/// Picks requests in proportion to their weights, in a fixed pseudo-random
/// order per connection (xorshift), so runs repeat.
pub struct Picker {
    cumulative: Vec<u64>,
    state: u64,
}

impl Picker {
    /// A picker over `weights` for connection `seed`.
    pub fn new(weights: &[Weighted], seed: u64) -> Self {
        let mut total = 0;
        let cumulative = weights
            .iter()
            .map(|w| {
                total += u64::from(w.weight);
                total
            })
            .collect();
        Self {
            cumulative,
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    /// The index of the next request.
    pub fn pick(&mut self) -> usize {
        let total = *self.cumulative.last().unwrap_or(&1);
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let ticket = self.state % total;
        self.cumulative.partition_point(|&c| c <= ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Target {
        Target::parse("http://127.0.0.1:8080/", false).unwrap()
    }

    #[test]
    fn urls_weights_and_access_log_lines() {
        let text = "# a list\nhttp://127.0.0.1:8080/v/a/1.m4s 3\n\nhttp://127.0.0.1:8080/v/a/master.m3u8\n\
            127.0.0.1 - - [02/Dec/2026:10:00:00 +0000] \"HEAD /v/a/2.m4s HTTP/1.1\" 200 0 \"-\" \"curl\"\n";
        let list = parse(text, "urls.txt", &origin(), "GET").unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!((list[0].path.as_str(), list[0].weight), ("/v/a/1.m4s", 3));
        assert_eq!(
            (list[2].method, list[2].path.as_str()),
            ("HEAD", "/v/a/2.m4s")
        );
        // Picks follow the weights.
        let mut picker = Picker::new(&list, 1);
        let mut counts = [0u32; 3];
        for _ in 0..5000 {
            counts[picker.pick()] += 1;
        }
        assert!((2700..3300).contains(&counts[0]), "{counts:?}");
        assert!((800..1200).contains(&counts[1]), "{counts:?}");
    }

    #[test]
    fn a_bad_line_is_refused_with_its_number() {
        for (text, says) in [
            (
                "http://127.0.0.1:8080/a\nhttp://127.0.0.1:8080/b zero\n",
                "urls.txt:2:",
            ),
            ("http://127.0.0.1:9/a\n", "one origin per run"),
            ("ftp://x/\n", "not an http:// or https:// URL"),
            (
                "1.2.3.4 - - [d] \"POST /x HTTP/1.1\" 200 1\n",
                "not GET or HEAD",
            ),
            ("# nothing\n", "no URLs"),
        ] {
            let err = parse(text, "urls.txt", &origin(), "GET")
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }
}
