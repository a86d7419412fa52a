//! How the libraries' `tracing` events are shown: one plain line each on
//! stderr (journald adds its own timestamp and keeps the level), at
//! `info` and above unless `STREAMGATE_LOG` names another level
//! (`error`, `warn`, `info`, `debug`, `trace`, `off`).

use tracing_subscriber::filter::LevelFilter;

/// Installs the stderr subscriber for this process.
pub fn init() {
    let level = std::env::var("STREAMGATE_LOG")
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    // Under systemd (JOURNAL_STREAM set) the journal stamps each line.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false);
    let installed = if journald {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
    // Only fails if a subscriber is already installed, which is fine.
    let _ = installed;
}
