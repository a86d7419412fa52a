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
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// (ppid, utime + stime) from the text of a `stat` file.
fn parse_stat(text: &str) -> Option<(u32, u64)> {
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

/// CPU seconds used so far by the threads of `pid` whose name starts with
/// `prefix` (e.g. the engine's `sg-worker-N` serving threads, leaving out
/// the control plane and housekeeping threads of the same process).
pub fn thread_cpu_seconds(pid: u32, prefix: &str) -> f64 {
    let mut ticks = 0;
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let Ok(text) = fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            let name = text
                .find('(')
                .zip(text.rfind(')'))
                .map_or("", |(a, b)| &text[a + 1..b]);
            if name.starts_with(prefix) {
                ticks += parse_stat(&text).map_or(0, |(_, t)| t);
            }
        }
    }
    ticks as f64 / ticks_per_second()
}

/// CPU seconds (user + system) of every child this process has waited for
/// (a load generator run to completion).
pub fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
