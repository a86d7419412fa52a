//! The service manager's side of a run (`Type=notify`, through the
//! `sd-notify` crate): `READY=1` once every listener is bound, the keys
//! loaded and the database migrated; `STATUS=` lines a person can read in
//! `systemctl status`; `WATCHDOG=1` only while every serving worker's loop
//! turns and the control plane answers; `RELOADING=1` … `READY=1` around a
//! SIGHUP; `STOPPING=1` when draining. Without `NOTIFY_SOCKET` (not under
//! systemd) every call does nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use sd_notify::NotifyState;
use streamgate_control_plane::ControlHealth;
use streamgate_engine::EngineHealth;

/// A worker whose loop has not turned this long is stuck (a healthy one
/// turns it every 50 ms).
const STUCK_AFTER: Duration = Duration::from_secs(2);
/// Longest wait for the control plane's answer.
const CONTROL_ANSWER: Duration = Duration::from_secs(5);

/// What a process serves, for its health and its status line.
#[derive(Clone)]
pub struct Served {
    /// The engine, when this process runs one.
    pub engine: Option<EngineHealth>,
    /// The control plane, when this process runs one (a remote one is not
    /// this process's health: its outage must not restart engines).
    pub control: Option<ControlHealth>,
}

impl Served {
    /// `Ok("serving 12 of 13 assets, 2 jobs queued, 1 running")` when
    /// every worker turns and the control plane answers; `Err(why)`
    /// otherwise.
    pub fn check(&self) -> Result<String, String> {
        let mut parts = Vec::new();
        if let Some(engine) = &self.engine {
            let stalled = engine.stalled_workers(STUCK_AFTER);
            if !stalled.is_empty() {
                return Err(format!(
                    "worker {stalled:?} stuck (its loop has not turned for over {STUCK_AFTER:?})"
                ));
            }
        }
        if let Some(control) = &self.control {
            let (assets, ready) = control.check(CONTROL_ANSWER)?;
            parts.push(format!("serving {ready} of {assets} assets"));
        }
        if let Some((queued, running)) = self.engine.as_ref().and_then(|e| e.job_counts()) {
            parts.push(format!("{queued} jobs queued, {running} running"));
        }
        if parts.is_empty() {
            parts.push("serving".into());
        }
        Ok(parts.join(", "))
    }
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// Start-up is done.
fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Start-up is done for what `served` holds: `READY=1` with its status
/// line (or why it is unhealthy), and the thread that keeps both going.
pub fn started(served: &Served) -> Watchdog {
    ready(&served.check().unwrap_or_else(|why| why));
    let served = served.clone();
    Watchdog::start(move || served.check())
}

/// After a reload: `READY=1` with the status line now.
pub fn reloaded(served: &Served) {
    ready(&served.check().unwrap_or_else(|why| why));
}

/// A status line.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// A reload begins (systemd 253 and later want the monotonic time with it).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading"),
        ]),
        Err(_) => send(&[NotifyState::Reloading, NotifyState::Status("reloading")]),
    }
}

/// Draining for a stop.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// The thread that feeds the watchdog and refreshes the status line.
pub struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Every half `WatchdogSec` (or every 10 s without a watchdog, for the
    /// status line alone), asks `check`: `Ok(status)` pings the watchdog
    /// and shows the status; `Err(why)` withholds the ping — systemd then
    /// restarts the service at `WatchdogSec` — and shows why.
    pub fn start(check: impl Fn() -> Result<String, String> + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let watchdog = sd_notify::watchdog_enabled();
        let every = watchdog.map_or(Duration::from_secs(10), |d| d / 2);
        let thread = std::env::var_os("NOTIFY_SOCKET").and_then(|_| {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("sg-watchdog".into())
                .spawn(move || {
                    let mut last = String::new();
                    while !stop.load(Ordering::SeqCst) {
                        let line = match check() {
                            Ok(line) => {
                                if watchdog.is_some() {
                                    send(&[NotifyState::Watchdog]);
                                }
                                line
                            }
                            Err(why) => {
                                tracing::error!(%why, "unhealthy: the watchdog is not fed");
                                format!("unhealthy: {why}")
                            }
                        };
                        if line != last {
                            status(&line);
                            last = line;
                        }
                        sleep_unless(&stop, every);
                    }
                })
                .map_err(|e| tracing::error!(error = %e, "no watchdog thread"))
                .ok()
        });
        Self { stop, thread }
    }
}

/// Sleeps `total`, waking early when `stop` turns true.
fn sleep_unless(stop: &AtomicBool, total: Duration) {
    let step = Duration::from_millis(100);
    let mut slept = Duration::ZERO;
    while slept < total && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(step.min(total - slept));
        slept += step;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
