//! The service manager's view of `streamgate serve`, without systemd: the
//! test binds its own `NOTIFY_SOCKET` and reads what a `Type=notify` unit
//! would tell systemd — READY with a status line, watchdog pings, RELOADING
//! then READY around SIGHUP, pings withheld while a worker is stuck (fault
//! injection stalls one), STOPPING on SIGTERM.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::{Engine, Options, Scratch};

/// The datagrams the service sent, each as its `KEY=value` lines.
struct Notifications {
    socket: UnixDatagram,
    seen: Vec<Vec<String>>,
}

impl Notifications {
    fn bind(s: &Scratch) -> (Self, String) {
        let path = s.0.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        (
            Self {
                socket,
                seen: Vec::new(),
            },
            path.display().to_string(),
        )
    }

    /// Reads until a datagram satisfies `wanted` (within `wait`); returns it.
    fn until(&mut self, wait: Duration, wanted: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            let lines: Vec<String> = String::from_utf8_lossy(&buf[..n])
                .lines()
                .map(str::to_string)
                .collect();
            self.seen.push(lines.clone());
            if wanted(&lines) {
                return lines;
            }
        }
        panic!("not notified within {wait:?}; got {:?}", self.seen);
    }
}

fn has(lines: &[String], prefix: &str) -> bool {
    lines.iter().any(|l| l.starts_with(prefix))
}

#[test]
fn serve_speaks_the_notify_protocol_and_a_stuck_worker_stops_the_watchdog() {
    let s = Scratch::new("notify");
    let (mut notes, socket) = Notifications::bind(&s);
    let e = Engine::start_with(
        Options {
            open: false,
            engine_toml: "fault_injection = true".into(),
            env: vec![
                ("NOTIFY_SOCKET".into(), socket),
                // WatchdogSec=1s: a ping every half second.
                ("WATCHDOG_USEC".into(), "1000000".into()),
            ],
            ..Options::default()
        },
        |dir| common::write(&dir.join("film/master.m3u8"), b"#EXTM3U\n"),
    );
    let ready = notes.until(Duration::from_secs(5), |l| has(l, "READY=1"));
    assert!(
        ready.iter().any(|l| l.starts_with("STATUS=serving ")),
        "{ready:?}"
    );
    notes.until(Duration::from_secs(3), |l| has(l, "WATCHDOG=1"));
    // The status line follows the catalog (the import happened after READY).
    notes.until(Duration::from_secs(5), |l| {
        has(l, "STATUS=serving 1 of 1 assets")
    });

    // SIGHUP: RELOADING=1 (with the monotonic time), then READY=1.
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(e.pid(), libc::SIGHUP) };
    let reloading = notes.until(Duration::from_secs(3), |l| has(l, "RELOADING=1"));
    assert!(has(&reloading, "MONOTONIC_USEC="), "{reloading:?}");
    notes.until(Duration::from_secs(3), |l| has(l, "READY=1"));

    // A worker stuck for 5 s: the pings stop until it turns again.
    let stalled = common::post(e.admin, "/debug/stall?worker=0&seconds=5");
    assert_eq!(stalled, 200);
    let unhealthy = notes.until(Duration::from_secs(5), |l| has(l, "STATUS=unhealthy"));
    assert!(
        unhealthy.iter().any(|l| l.contains("worker [0] stuck")),
        "{unhealthy:?}"
    );
    let from = notes.seen.len();
    notes.until(Duration::from_secs(8), |l| has(l, "STATUS=serving"));
    let while_stuck = &notes.seen[from..];
    // Nothing came while it was stuck but the ping of its recovery, sent
    // with (just before) the status line that says it serves again.
    let pings = while_stuck.iter().filter(|l| has(l, "WATCHDOG=1")).count();
    assert_eq!(pings, 1, "pings while a worker was stuck: {while_stuck:?}");
    notes.until(Duration::from_secs(3), |l| has(l, "WATCHDOG=1"));

    // SIGTERM: STOPPING=1 while draining.
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(e.pid(), libc::SIGTERM) };
    notes.until(Duration::from_secs(5), |l| has(l, "STOPPING=1"));
}

#[test]
fn fault_injection_is_off_unless_configured() {
    let e = Engine::start(|_| {});
    assert_eq!(
        common::post(e.admin, "/debug/stall?worker=0&seconds=5"),
        404
    );
    assert_eq!(common::try_get(e.admin, "/healthz").unwrap().status, 200);
}

/// The unit files as packaged.
fn units() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let mut units: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "service"))
        .collect();
    units.sort();
    assert_eq!(units.len(), 4, "{units:?}");
    units
}

#[test]
fn every_unit_verifies_and_scores_at_most_2_0_exposure() {
    let s = Scratch::new("units");
    for unit in units() {
        // `verify` checks the binary exists and is executable: point
        // ExecStart at the one built here.
        let text = std::fs::read_to_string(&unit)
            .unwrap()
            .replace("/usr/bin/streamgate", env!("CARGO_BIN_EXE_streamgate"));
        let copy = s.0.join(unit.file_name().unwrap());
        std::fs::write(&copy, text).unwrap();
        let verify = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .expect("systemd-analyze (the systemd package; scripts/setup.sh --tests)");
        let said = String::from_utf8_lossy(&verify.stderr);
        assert!(
            verify.status.success() && said.trim().is_empty(),
            "{}: {said}",
            unit.display()
        );
        let security = std::process::Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&unit)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&security.stdout);
        let exposure: f64 = report
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|rest| rest.split(": ").nth(1))
            .and_then(|score| score.split_whitespace().next())
            .and_then(|score| score.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level in: {report}"));
        assert!(exposure <= 2.0, "{}: exposure {exposure}", unit.display());
    }
}

/// The system calls a systemd syscall group stands for, nested groups
/// expanded (`systemd-analyze syscall-filter`).
fn syscall_group(group: &str) -> std::collections::BTreeSet<String> {
    let out = std::process::Command::new("systemd-analyze")
        .args(["syscall-filter", group])
        .output()
        .unwrap();
    let mut calls = std::collections::BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
        let name = line.trim();
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        if name.starts_with('@') {
            calls.extend(syscall_group(name));
        } else {
            calls.insert(name.to_string());
        }
    }
    calls
}

#[test]
fn every_system_call_serve_makes_passes_the_units_filter() {
    let s = Scratch::new("seccomp");
    let trace = s.0.join("trace");
    let input = common::clip(&s.0, "clip.mp4", "160x120", 1, false);
    let e = Engine::start_with(
        Options {
            open: false,
            tls: true,
            engine_toml: "job_workers = 1\nupload_ladder = \"240\"".into(),
            wrapper: ["strace", "-f", "-qq", "-o", trace.to_str().unwrap()]
                .map(String::from)
                .to_vec(),
            ..Options::default()
        },
        |dir| common::write(&dir.join("film/master.m3u8"), b"#EXTM3U\n"),
    );
    // The traced process (strace's child): killed if the test fails.
    let served = std::fs::read_to_string(format!("/proc/{}/task/{0}/children", e.pid()))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse::<i32>()
        .unwrap();
    struct KillOnDrop(i32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            // SAFETY: kill(2); harmless if it already exited.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let _guard = KillOnDrop(served);
    // Serve over every wire, upload and transcode, reload, drain.
    use common::wire::Wire;
    e.wait_status("/v/film/master.m3u8", 200);
    for wire in [Wire::Http1, Wire::Https1, Wire::H2, Wire::H2c] {
        assert_eq!(e.over(wire).get("/v/film/master.m3u8", "").status, 200);
    }
    e.upload_whole(&std::fs::read(&input).unwrap(), "clip.mp4", "traced");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !e
        .cli(&["asset", "show", "traced"], &[])
        .contains("status:  ready")
    {
        assert!(Instant::now() < deadline, "never transcoded");
        std::thread::sleep(Duration::from_millis(300));
    }
    // SAFETY: kill(2) on the traced streamgate process.
    unsafe { libc::kill(served, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: as above.
    unsafe { libc::kill(served, libc::SIGTERM) };
    let mut e = e;
    let status = e.child.wait().unwrap();
    assert!(status.success(), "strace: {status:?}");

    let made: std::collections::BTreeSet<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let call = l.split_once(' ')?.1.trim_start();
            let name = call.split('(').next()?;
            (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
                .then(|| name.to_string())
        })
        .collect();
    assert!(made.contains("io_uring_enter"), "{made:?}");
    // The unit's filter: @system-service, less @privileged.
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/streamgate.service"),
    )
    .unwrap();
    assert!(unit.contains("SystemCallFilter=@system-service\nSystemCallFilter=~@privileged\n"));
    let allowed = &syscall_group("@system-service") - &syscall_group("@privileged");
    // execve is the wrapper's (strace starting the binary). fchown is
    // SQLite's, and only as root (this test's user): its unix VFS gives a
    // new journal the database's owner when euid is 0. The unit runs as
    // `streamgate`, where SQLite makes no such call (and ignores its
    // failure if it did).
    // SAFETY: geteuid has no preconditions.
    let as_root = unsafe { libc::geteuid() } == 0;
    let refused: Vec<_> = made
        .iter()
        .filter(|c| !allowed.contains(*c) && *c != "execve")
        .filter(|c| !(as_root && *c == "fchown"))
        .collect();
    let traced = std::fs::read_to_string(&trace).unwrap();
    let first_uses: Vec<&str> = refused
        .iter()
        .filter_map(|c| traced.lines().find(|l| l.contains(&format!(" {c}("))))
        .collect();
    assert!(
        refused.is_empty(),
        "system calls the unit's filter would refuse: {refused:?}; first uses: {first_uses:#?}"
    );
}
