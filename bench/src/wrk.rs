//! Running `wrk` and reading its report.

use std::process::Command;

/// What one wrk run measured.
#[derive(Debug, Clone, Copy)]
pub struct WrkResult {
    /// Completed requests.
    pub requests: f64,
    /// Requests per second.
    pub rps: f64,
    /// Megabytes (10^6) per second read by the client.
    pub mb_per_s: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Socket errors and non-2xx responses together.
    pub errors: f64,
}

/// Runs wrk against `url`.
pub fn run(
    url: &str,
    threads: usize,
    connections: usize,
    seconds: u64,
) -> Result<WrkResult, String> {
    let out = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &connections.to_string()])
        .args(["-d", &format!("{seconds}s"), "--latency", url])
        .output()
        .map_err(|e| format!("cannot run wrk (install it with scripts/setup.sh): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse(&text).ok_or_else(|| format!("cannot read wrk output:\n{text}"))
}

fn parse(text: &str) -> Option<WrkResult> {
    let mut result = WrkResult {
        requests: 0.0,
        rps: 0.0,
        mb_per_s: 0.0,
        p99_ms: 0.0,
        errors: 0.0,
    };
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => result.rps = v.parse().ok()?,
            ["Transfer/sec:", v] => result.mb_per_s = bytes(v)? / 1e6,
            ["99%", v] => result.p99_ms = millis(v)?,
            [n, "requests", "in", ..] => result.requests = n.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => result.errors += n.parse::<f64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                result.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<f64>().ok())
                    .sum::<f64>();
            }
            _ => {}
        }
    }
    (result.requests > 0.0).then_some(result)
}

/// "12.34MB" → bytes.
fn bytes(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    let scale = match unit {
        "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n * scale)
}

/// "1.23ms" / "456.00us" / "1.02s" → milliseconds.
fn millis(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_wrk_report() {
        let text = "Running 5s test @ http://127.0.0.1:1/x\n  1 threads and 32 connections\n\
  Latency Distribution\n     50%  400.00us\n     99%    1.25ms\n\
  108000 requests in 5.00s, 6.60GB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n\
Requests/sec:  21600.00\nTransfer/sec:      1.32GB\n";
        let r = parse(text).unwrap();
        assert_eq!(r.requests, 108_000.0);
        assert_eq!(r.rps, 21_600.0);
        assert_eq!(r.p99_ms, 1.25);
        assert_eq!(r.errors, 3.0);
        assert!((r.mb_per_s - 1.32 * 1_073.741_824).abs() < 0.01);
    }
}
