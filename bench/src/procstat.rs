//! Server CPU time from /proc: utime + stime of a process and its children.

use std::fs;

/// Clock ticks per second for /proc times (USER_HZ; 100 on Linux x86-64).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// (parent pid, utime + stime in ticks) of one process.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// CPU seconds used so far by `pid` and its live direct children (nginx
/// workers are children of the master; the engine is one process).
pub fn cpu_seconds(pid: u32) -> f64 {
    let mut ticks = stat(pid).map_or(0, |(_, t)| t);
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((ppid, t)) = stat(child) {
                if ppid == pid {
                    ticks += t;
                }
            }
        }
    }
    ticks as f64 / ticks_per_second()
}
