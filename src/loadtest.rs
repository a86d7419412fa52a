//! `streamgate loadtest run --url URL …`: drives one URL and reports
//! latency corrected for coordinated omission (see `docs/loadtest.md`).

use std::path::PathBuf;

use clap::Subcommand;
use streamgate_loadtest::{run, RunOptions, Target};

use crate::config::parse_duration;

/// `streamgate loadtest …`
#[derive(Subcommand)]
pub enum LoadtestCommand {
    /// Load one URL over HTTP/1.1 keep-alive connections, closed loop or
    /// at a fixed rate.
    Run {
        /// The URL (`http://host:port/path`); only this machine unless
        /// --allow-remote. With --urls, the origin of the listed paths.
        #[arg(long)]
        url: String,
        /// A file of requests: `URL [WEIGHT]` a line, or an access log
        /// (combined format) whose paths go to --url's origin.
        #[arg(long)]
        urls: Option<PathBuf>,
        /// Requests per second over all connections (open loop; fractions
        /// allowed). Without it: closed loop, as fast as answers come.
        #[arg(long)]
        rate: Option<f64>,
        /// Connections, each with one request in flight.
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// How long to measure, e.g. 30s, 5m.
        #[arg(long, default_value = "10s")]
        duration: String,
        /// Stop after this many measured requests.
        #[arg(long)]
        requests: Option<u64>,
        /// Load before measuring, not counted.
        #[arg(long, default_value = "0s")]
        warmup: String,
        /// GET or HEAD.
        #[arg(long, default_value = "GET")]
        method: String,
        /// Extra header, `Name: value` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// How long one answer may take before it counts as a timeout.
        #[arg(long, default_value = "10s")]
        timeout: String,
        /// Also print latency from the actual send (not corrected).
        #[arg(long)]
        uncorrected: bool,
        /// Write every figure as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Allow a target that is not on this machine (only servers you run).
        #[arg(long)]
        allow_remote: bool,
    },
}

/// Runs a `loadtest` subcommand.
pub fn run_command(command: LoadtestCommand) -> Result<(), String> {
    let LoadtestCommand::Run {
        url,
        urls,
        rate,
        connections,
        duration,
        requests,
        warmup,
        method,
        headers,
        timeout,
        uncorrected,
        json,
        allow_remote,
    } = command;
    let method = match method.to_ascii_uppercase().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        other => return Err(format!("--method takes GET or HEAD, not {other}")),
    };
    if let Some(bad) = headers
        .iter()
        .find(|h| !h.contains(':') || h.contains(['\r', '\n']))
    {
        return Err(format!("--header {bad:?} is not a `Name: value` line"));
    }
    let target = Target::parse(&url, allow_remote).map_err(|e| e.to_string())?;
    let list = match &urls {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            streamgate_loadtest::urls::parse(&text, &file.display().to_string(), &target, method)
                .map_err(|e| e.to_string())?
        }
        None => Vec::new(),
    };
    let options = RunOptions {
        target,
        method,
        list,
        headers,
        connections,
        rate,
        duration: parse_duration(&duration).map_err(|e| format!("--duration: {e}"))?,
        requests,
        warmup: parse_duration(&warmup).map_err(|e| format!("--warmup: {e}"))?,
        timeout: parse_duration(&timeout).map_err(|e| format!("--timeout: {e}"))?,
    };
    let report = run(&options).map_err(|e| e.to_string())?;
    print!("{}", report.to_table(uncorrected));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?;
        std::fs::write(&path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
