//! The machine: io_uring and the opcodes the engine uses, resource limits
//! against what the configuration needs, kTLS, the data directory.

use std::os::unix::fs::PermissionsExt;

use streamgate_engine::EngineConfig;

use super::Finding;
use crate::config::FileConfig;

pub fn checks(file: &FileConfig, engine: &EngineConfig) -> Vec<Finding> {
    vec![
        io_uring(),
        nofile(engine),
        memlock(engine),
        ktls(engine),
        data_dir(&file.data_dir),
        free_space(&file.data_dir),
    ]
}

/// The opcodes the engine's workers submit.
const OPCODES: [(u8, &str); 9] = [
    (io_uring::opcode::Accept::CODE, "ACCEPT"),
    (io_uring::opcode::Recv::CODE, "RECV"),
    (io_uring::opcode::Send::CODE, "SEND"),
    (io_uring::opcode::Read::CODE, "READ"),
    (io_uring::opcode::Write::CODE, "WRITE"),
    (io_uring::opcode::Splice::CODE, "SPLICE"),
    (io_uring::opcode::PollAdd::CODE, "POLL_ADD"),
    (io_uring::opcode::Timeout::CODE, "TIMEOUT"),
    (io_uring::opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
];

fn io_uring() -> Finding {
    let ring = match io_uring::IoUring::new(8) {
        Ok(ring) => ring,
        Err(e) => {
            return Finding::fail(
                "io_uring",
                format!("cannot set up a ring: {e}"),
                "the engine needs io_uring: Linux 5.11 or later, not disabled by \
                 kernel.io_uring_disabled or a seccomp policy (the units allow it)",
            )
        }
    };
    let mut probe = io_uring::Probe::new();
    if let Err(e) = ring.submitter().register_probe(&mut probe) {
        return Finding::fail(
            "io_uring",
            format!("cannot probe the opcodes: {e}"),
            "Linux 5.11 or later",
        );
    }
    let missing: Vec<&str> = OPCODES
        .iter()
        .filter(|(code, _)| !probe.is_supported(*code))
        .map(|(_, name)| *name)
        .collect();
    if missing.is_empty() {
        Finding::ok(
            "io_uring",
            format!(
                "a ring sets up; {} opcodes the engine uses are there",
                OPCODES.len()
            ),
        )
    } else {
        Finding::fail(
            "io_uring",
            format!("this kernel lacks {}", missing.join(", ")),
            "run a newer kernel (Debian 12's 6.1 has them all)",
        )
    }
}

fn limit(resource: libc::__rlimit_resource_t) -> u64 {
    // SAFETY: getrlimit writes one rlimit struct we own.
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(resource, &mut l) };
    l.rlim_cur
}

fn nofile(engine: &EngineConfig) -> Finding {
    let have = limit(libc::RLIMIT_NOFILE);
    // A connection each, the hot cache's open segments, and room for the
    // rest (listeners, rings, database, logs).
    let need = (engine.max_connections + engine.cache_open_files + 256) as u64;
    if have >= need {
        Finding::ok("nofile", format!("RLIMIT_NOFILE {have} ≥ {need} needed"))
    } else {
        Finding::fail(
            "nofile",
            format!(
                "RLIMIT_NOFILE {have} < {need} needed (max_connections {} + cache_open_files {} + 256)",
                engine.max_connections, engine.cache_open_files
            ),
            "raise it (the units set LimitNOFILE=1048576; a shell: ulimit -n), or lower max_connections",
        )
    }
}

/// Kernel (major, minor).
fn kernel() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']);
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (next(), next())
}

fn memlock(engine: &EngineConfig) -> Finding {
    let have = limit(libc::RLIMIT_MEMLOCK);
    let (major, minor) = kernel();
    if (major, minor) >= (5, 12) {
        return Finding::ok(
            "memlock",
            format!(
                "RLIMIT_MEMLOCK {} KiB; not needed on Linux {major}.{minor} (rings are charged to the memory cgroup)",
                have / 1024
            ),
        );
    }
    // Before 5.12 each ring's memory counts against locked memory.
    let need = engine.worker_count() as u64 * 256 * 1024;
    if have >= need {
        Finding::ok("memlock", format!("RLIMIT_MEMLOCK {have} ≥ {need} needed"))
    } else {
        Finding::fail(
            "memlock",
            format!(
                "RLIMIT_MEMLOCK {have} < {need} needed for {} rings on Linux {major}.{minor}",
                engine.worker_count()
            ),
            "raise it (LimitMEMLOCK= in the unit), or run Linux 5.12 or later",
        )
    }
}

fn ktls(engine: &EngineConfig) -> Finding {
    let available = streamgate_engine::ktls::probe() == streamgate_engine::ktls::Ktls::Available;
    match (&engine.tls, available) {
        (None, _) => Finding::ok("ktls", "not needed (no TLS listener)"),
        (Some(_), true) => {
            Finding::ok("ktls", "the kernel takes TLS over: HTTP/1.1 bodies spliced")
        }
        (Some(_), false) => Finding::warn(
            "ktls",
            "this kernel has no kTLS: TLS runs in userspace (bodies copied)",
            "works as is; for zero-copy TLS, a kernel with CONFIG_TLS (modprobe tls)",
        ),
    }
}

fn data_dir(dir: &std::path::Path) -> Finding {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) => {
            return Finding::warn(
                "data_dir",
                format!("{}: {e}", dir.display()),
                "the first start creates it (the .deb's tmpfiles.d does too)",
            )
        }
    };
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    if let Err(e) = std::fs::write(&probe, b"") {
        return Finding::fail(
            "data_dir",
            format!("{} is not writable by this user: {e}", dir.display()),
            "run as the service user (sudo -u streamgate), or fix its owner",
        );
    }
    let _ = std::fs::remove_file(&probe);
    let mode = meta.permissions().mode() & 0o777;
    let secrets: Vec<String> = ["operator.token"]
        .iter()
        .map(|n| dir.join(n))
        .chain(
            std::fs::read_dir(dir.join("keys"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "key")),
        )
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o077 != 0))
        .map(|p| p.display().to_string())
        .collect();
    if !secrets.is_empty() {
        return Finding::fail(
            "data_dir",
            format!("secrets readable by others: {}", secrets.join(", ")),
            "chmod 0600 them (and rotate what may have leaked)",
        );
    }
    if mode & 0o007 != 0 {
        Finding::warn(
            "data_dir",
            format!("{} is mode {mode:o}: others can look in", dir.display()),
            "chmod o-rwx (the units use 0750)",
        )
    } else {
        Finding::ok(
            "data_dir",
            format!("{} writable, mode {mode:o}, secrets 0600", dir.display()),
        )
    }
}

fn free_space(dir: &std::path::Path) -> Finding {
    // Before the first start the data dir may not exist: its nearest
    // existing ancestor is the file system it will be on.
    let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(dir);
    let Ok(path) = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()) else {
        return Finding::warn("disk", "data_dir path has a NUL", "fix data_dir");
    };
    // SAFETY: statvfs fills one struct we own from a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Finding::warn(
            "disk",
            "cannot stat the data dir's file system",
            "check data_dir",
        );
    }
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    let total = (st.f_blocks as u64 * st.f_frsize as u64).max(1);
    let gib = free as f64 / (1u64 << 30) as f64;
    let share = free as f64 / total as f64 * 100.0;
    if free < 1 << 30 {
        Finding::fail(
            "disk",
            format!("{gib:.1} GiB free under the data dir"),
            "free space: uploads, transcodes and the database need it",
        )
    } else if share < 10.0 {
        Finding::warn(
            "disk",
            format!("{gib:.1} GiB free ({share:.0} %)"),
            "free space before uploads fill it",
        )
    } else {
        Finding::ok("disk", format!("{gib:.1} GiB free ({share:.0} %)"))
    }
}
