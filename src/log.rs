//! How the libraries' `tracing` events are shown: one plain line each on
//! stderr, no ANSI colours (journald adds its own timestamp and keeps the
//! level), at `info` and above unless `STREAMGATE_LOG` or `[log] level`
//! says otherwise — and SIGHUP changes the level of a running process.

use std::sync::OnceLock;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Registry};

static LEVEL: OnceLock<reload::Handle<LevelFilter, Registry>> = OnceLock::new();

/// Installs the stderr subscriber for this process, at `STREAMGATE_LOG`'s
/// level or `info` (a command that reads a config file sets its own
/// level with [`set_level`]).
pub fn init() {
    let level = std::env::var("STREAMGATE_LOG")
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let (filter, handle) = reload::Layer::new(level);
    // Under systemd (JOURNAL_STREAM set) the journal stamps each line.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    let installed = if journald {
        tracing_subscriber::registry()
            .with(filter)
            .with(fmt.without_time())
            .try_init()
    } else {
        tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .try_init()
    };
    // Only fails if a subscriber is already installed, which is fine.
    if installed.is_ok() {
        let _ = LEVEL.set(handle);
    }
}

/// Changes the level of the running process.
pub fn set_level(level: LevelFilter) {
    if let Some(handle) = LEVEL.get() {
        let _ = handle.modify(|current| *current = level);
    }
}
