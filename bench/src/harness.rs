//! Helpers shared by the benchmarks: ports, waiting for servers, medians.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The median of a non-empty sample.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

/// Waits until `port` accepts connections or `child` exits.
pub fn wait_for_port(port: u16, child: &mut Child, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited early: {status}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{what} did not listen on {port}"))
}

/// Replaces the text between the `section` markers in `path` (appending
/// the block when the markers are missing).
pub fn record(path: &Path, section: &str, report: &str) -> Result<(), String> {
    let begin = format!("<!-- bench:{section}:begin -->");
    let end = format!("<!-- bench:{section}:end -->");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map_or(String::new(), |o| {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        });
    let block = format!("{begin}\nLatest run: {date}.\n\n{report}{end}");
    let updated = match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &text[..b], &text[e + end.len()..]),
        _ => format!("{text}\n{block}\n"),
    };
    std::fs::write(path, updated).map_err(|e| e.to_string())
}
