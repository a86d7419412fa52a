//! `streamgate loadtest run --url URL …` drives one origin and reports
//! latency corrected for coordinated omission; `loadtest merge` combines
//! the reports of runs made at the same time (see `docs/loadtest.md`).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use std::io::IsTerminal;

use streamgate_loadtest::{run, Report, RunOptions, Status, Target};

use crate::config::parse_duration;

/// `streamgate loadtest …`
#[derive(Subcommand)]
pub enum LoadtestCommand {
    /// Load one origin over HTTP/1.1 keep-alive connections, closed loop
    /// or at a fixed rate.
    Run(RunArgs),
    /// Combine the JSON reports of runs made at the same time (on several
    /// load machines) into one: counts add, latency histograms merge
    /// exactly.
    Merge {
        /// Reports written by `loadtest run --json`.
        #[arg(required = true, num_args = 1..)]
        reports: Vec<PathBuf>,
        /// Where to write the combined report.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// `streamgate loadtest run`
#[derive(Args)]
pub struct RunArgs {
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
}

/// Runs a `loadtest` subcommand.
pub fn run_command(command: LoadtestCommand) -> Result<(), String> {
    match command {
        LoadtestCommand::Run(args) => run_one(args),
        LoadtestCommand::Merge { reports, json } => merge(&reports, json.as_deref()),
    }
}

fn run_one(a: RunArgs) -> Result<(), String> {
    let method = match a.method.to_ascii_uppercase().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        other => return Err(format!("--method takes GET or HEAD, not {other}")),
    };
    if let Some(bad) = a
        .headers
        .iter()
        .find(|h| !h.contains(':') || h.contains(['\r', '\n']))
    {
        return Err(format!("--header {bad:?} is not a `Name: value` line"));
    }
    let target = Target::parse(&a.url, a.allow_remote).map_err(|e| e.to_string())?;
    let list = match &a.urls {
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
        headers: a.headers,
        connections: a.connections,
        rate: a.rate,
        duration: parse_duration(&a.duration).map_err(|e| format!("--duration: {e}"))?,
        requests: a.requests,
        warmup: parse_duration(&a.warmup).map_err(|e| format!("--warmup: {e}"))?,
        timeout: parse_duration(&a.timeout).map_err(|e| format!("--timeout: {e}"))?,
    };
    let terminal = std::io::stderr().is_terminal();
    let mut shown = false;
    let mut live = |s: Status| {
        let line = format!(
            "{:>5.0} s  {} requests  {:.1} req/s  {} errors",
            s.elapsed.as_secs_f64(),
            s.requests,
            s.requests as f64 / s.elapsed.as_secs_f64().max(0.001),
            s.errors
        );
        // One line rewritten on a terminal; a plain line every 5 s in logs.
        if terminal {
            eprint!("\r{line}   ");
            shown = true;
        } else if s.elapsed.as_secs() % 5 == 0 {
            eprintln!("{line}");
        }
    };
    let report = run(&options, &mut live).map_err(|e| e.to_string())?;
    if shown {
        eprintln!();
    }
    print!("{}", report.to_table(a.uncorrected));
    write_json(&report, a.json.as_deref())
}

fn merge(paths: &[PathBuf], json: Option<&Path>) -> Result<(), String> {
    let mut reports = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
        reports.push(Report::from_json(&value).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    let merged = Report::merge(&reports).ok_or("nothing to merge")?;
    print!("{}", merged.to_table(true));
    write_json(&merged, json)
}

fn write_json(report: &Report, path: Option<&Path>) -> Result<(), String> {
    let Some(path) = path else {
        return Ok(());
    };
    let text = serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}
