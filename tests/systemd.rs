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
