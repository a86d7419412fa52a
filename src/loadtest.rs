//! `streamgate loadtest run` drives one origin and reports latency
//! corrected for coordinated omission; `loadtest viewers` simulates
//! players; `loadtest merge` combines the reports of runs made at the same
//! time (see `docs/loadtest.md`).

use clap::{Args, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use streamgate_loadtest::client::tls;
use streamgate_loadtest::viewers::{self, Rule, TokenFormat, TokenFrom, ViewersStatus};
use streamgate_loadtest::{
    html, run, Protocol, Report, RunOptions, Status, Target, ViewersOptions, ViewersReport,
};

use crate::config::parse_duration;

/// `streamgate loadtest …`
#[derive(Subcommand)]
pub enum LoadtestCommand {
    /// Load one origin over HTTP/1.1 keep-alive connections or HTTP/2
    /// streams, closed loop or at a fixed rate.
    Run(RunArgs),
    /// Simulated players of an HLS or DASH stream: buffer, ABR, stalls.
    Viewers(ViewersArgs),
    /// Combine the JSON reports of runs made at the same time (on several
    /// load machines) into one: counts add, histograms merge exactly.
    Merge {
        /// Reports written by `loadtest run --json` (or all by `viewers`).
        #[arg(required = true, num_args = 1..)]
        reports: Vec<PathBuf>,
        /// Where to write the combined report.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also write the plots of the combined report here.
        #[arg(long)]
        html: Option<PathBuf>,
    },
}

/// How to reach the target: options `run` and `viewers` share.
#[derive(Args)]
pub struct ClientArgs {
    /// HTTP/2: by ALPN over https://, with prior knowledge (h2c) over http://.
    #[arg(long)]
    http2: bool,
    /// Accept any TLS certificate (self-signed test servers).
    #[arg(long)]
    insecure: bool,
    /// Also trust the certificates of this PEM file.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Extra header, `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// How long one answer may take before it counts as a timeout.
    #[arg(long, default_value = "10s")]
    timeout: String,
    /// Load threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Allow a target that is not on this machine (only servers you run).
    #[arg(long)]
    allow_remote: bool,
}

/// `streamgate loadtest run`
#[derive(Args)]
pub struct RunArgs {
    /// The URL (`http://` or `https://host:port/path`); only this machine
    /// unless --allow-remote. With --urls, the origin of the listed paths.
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
    /// Connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Requests in flight per HTTP/2 connection.
    #[arg(long, default_value_t = 1)]
    streams: usize,
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
    /// Also print latency from the actual send (not corrected).
    #[arg(long)]
    uncorrected: bool,
    /// Write every figure as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a page of plots here (one self-contained file).
    #[arg(long)]
    html: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

/// `streamgate loadtest viewers`
#[derive(Args)]
pub struct ViewersArgs {
    /// The HLS multivariant playlist or DASH MPD. With --token-from, the
    /// engine's origin (the manifest comes from the token answer).
    #[arg(long)]
    url: String,
    /// Simulated viewers.
    #[arg(long, default_value_t = 10)]
    viewers: usize,
    /// Start the viewers evenly over this time.
    #[arg(long, default_value = "0s")]
    ramp: String,
    /// How long the run lasts, ramp included.
    #[arg(long, default_value = "60s")]
    duration: String,
    /// Simulated clock speed (2 = twice real time, link included).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Rendition rule: throughput (hls.js), bola (dash.js), fixed:N (0 = lowest).
    #[arg(long, default_value = "throughput")]
    abr: String,
    /// Each viewer's link, kbit/s.
    #[arg(long)]
    throttle: Option<f64>,
    /// Playback buffer target, seconds.
    #[arg(long, default_value_t = 30.0)]
    buffer: f64,
    /// Each session first POSTs here for a playback token (the JSON API's
    /// `/api/v1/assets/ID/playback`) and plays the manifest it names.
    #[arg(long)]
    token_from: Option<String>,
    /// Header for --token-from, e.g. `Authorization: Bearer sgs_…` (repeatable).
    #[arg(long = "token-header")]
    token_headers: Vec<String>,
    /// Which manifest of the token answer to play: hls or dash.
    #[arg(long, default_value = "hls")]
    token_format: String,
    /// Write every figure as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a page of plots here (one self-contained file).
    #[arg(long)]
    html: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs a `loadtest` subcommand.
pub fn run_command(command: LoadtestCommand) -> Result<(), String> {
    match command {
        LoadtestCommand::Run(args) => run_one(args),
        LoadtestCommand::Viewers(args) => run_viewers(args),
        LoadtestCommand::Merge {
            reports,
            json,
            html,
        } => merge(&reports, json.as_deref(), html.as_deref()),
    }
}

fn headers(lines: &[String], flag: &str) -> Result<Vec<(String, String)>, String> {
    lines
        .iter()
        .map(|h| match h.split_once(':') {
            Some((name, value))
                if !name.trim().is_empty()
                    && !h.contains(['\r', '\n'])
                    && !name.contains(char::is_whitespace) =>
            {
                Ok((name.trim().to_string(), value.trim().to_string()))
            }
            _ => Err(format!("{flag} {h:?} is not a `Name: value` line")),
        })
        .collect()
}

/// What the client options say: protocol, TLS configuration, headers.
fn client(c: &ClientArgs, target: &Target) -> Result<(Protocol, Option<tls::TlsConfig>), String> {
    let protocol = if c.http2 {
        Protocol::Http2
    } else {
        Protocol::Http1
    };
    let tls = if target.https {
        Some(tls::config(protocol, c.cacert.as_deref(), c.insecure).map_err(|e| e.to_string())?)
    } else {
        None
    };
    Ok((protocol, tls))
}

/// A status line: rewritten on a terminal, a plain line every 5 s in logs.
fn live_line(terminal: bool, shown: &mut bool, elapsed_s: u64, line: String) {
    if terminal {
        eprint!("\r{line}   ");
        *shown = true;
    } else if elapsed_s % 5 == 0 {
        eprintln!("{line}");
    }
}

fn run_one(a: RunArgs) -> Result<(), String> {
    let method = match a.method.to_ascii_uppercase().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        other => return Err(format!("--method takes GET or HEAD, not {other}")),
    };
    let extra = headers(&a.client.headers, "--header")?;
    let target = Target::parse(&a.url, a.client.allow_remote).map_err(|e| e.to_string())?;
    let (protocol, tls) = client(&a.client, &target)?;
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
        headers: extra,
        connections: a.connections,
        protocol,
        streams: a.streams,
        tls,
        threads: a.client.threads,
        rate: a.rate,
        duration: parse_duration(&a.duration).map_err(|e| format!("--duration: {e}"))?,
        requests: a.requests,
        warmup: parse_duration(&a.warmup).map_err(|e| format!("--warmup: {e}"))?,
        timeout: parse_duration(&a.client.timeout).map_err(|e| format!("--timeout: {e}"))?,
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
        live_line(terminal, &mut shown, s.elapsed.as_secs(), line);
    };
    let report = run(&options, &mut live).map_err(|e| e.to_string())?;
    if shown {
        eprintln!();
    }
    print!("{}", report.to_table(a.uncorrected));
    write(a.json.as_deref(), || {
        serde_json::to_string_pretty(&report.to_json()).unwrap_or_default() + "\n"
    })?;
    write(a.html.as_deref(), || {
        html::run_page(&report, &format!("streamgate loadtest run {}", a.url))
    })
}

fn run_viewers(a: ViewersArgs) -> Result<(), String> {
    let target = Target::parse(&a.url, a.client.allow_remote).map_err(|e| e.to_string())?;
    let (protocol, tls) = client(&a.client, &target)?;
    let token_from = match &a.token_from {
        Some(url) => Some(TokenFrom {
            target: Target::parse(url, a.client.allow_remote).map_err(|e| e.to_string())?,
            headers: headers(&a.token_headers, "--token-header")?,
            format: match a.token_format.as_str() {
                "hls" => TokenFormat::Hls,
                "dash" => TokenFormat::Dash,
                other => return Err(format!("--token-format takes hls or dash, not {other}")),
            },
        }),
        None => None,
    };
    let tls = match (&tls, &token_from) {
        (None, Some(t)) if t.target.https => Some(
            tls::config(
                Protocol::Http1,
                a.client.cacert.as_deref(),
                a.client.insecure,
            )
            .map_err(|e| e.to_string())?,
        ),
        _ => tls,
    };
    let options = ViewersOptions {
        target,
        viewers: a.viewers,
        ramp: parse_duration(&a.ramp).map_err(|e| format!("--ramp: {e}"))?,
        duration: parse_duration(&a.duration).map_err(|e| format!("--duration: {e}"))?,
        speed: a.speed,
        abr: Rule::parse(&a.abr).map_err(|e| e.to_string())?,
        throttle_kbps: a.throttle,
        buffer_s: a.buffer,
        headers: headers(&a.client.headers, "--header")?,
        protocol,
        tls,
        threads: a.client.threads,
        timeout: parse_duration(&a.client.timeout).map_err(|e| format!("--timeout: {e}"))?,
        token_from,
    };
    let terminal = std::io::stderr().is_terminal();
    let mut shown = false;
    let mut live = |s: ViewersStatus| {
        let line = format!(
            "{:>5.0} s  {} playing  {} stalled  {} starting  startup p50 {}  {} requests  {} errors",
            s.elapsed.as_secs_f64(),
            s.playing,
            s.stalled,
            s.starting,
            s.startup_p50_ms
                .map_or("-".to_string(), |ms| format!("{ms} ms")),
            s.requests,
            s.errors
        );
        live_line(terminal, &mut shown, s.elapsed.as_secs(), line);
    };
    let report = viewers::viewers(&options, &mut live).map_err(|e| e.to_string())?;
    if shown {
        eprintln!();
    }
    print!("{}", report.to_table());
    write(a.json.as_deref(), || {
        serde_json::to_string_pretty(&report.to_json()).unwrap_or_default() + "\n"
    })?;
    write(a.html.as_deref(), || {
        html::viewers_page(&report, &format!("streamgate loadtest viewers {}", a.url))
    })
}

fn merge(paths: &[PathBuf], json: Option<&Path>, html_out: Option<&Path>) -> Result<(), String> {
    let mut values = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
        values.push((path, value));
    }
    let viewers = values
        .iter()
        .filter(|(_, v)| v["kind"] == "viewers")
        .count();
    if viewers == values.len() {
        let mut reports = Vec::new();
        for (path, v) in &values {
            reports
                .push(ViewersReport::from_json(v).map_err(|e| format!("{}: {e}", path.display()))?);
        }
        let merged = ViewersReport::merge(&reports).ok_or("nothing to merge")?;
        print!("{}", merged.to_table());
        write(json, || {
            serde_json::to_string_pretty(&merged.to_json()).unwrap_or_default() + "\n"
        })?;
        return write(html_out, || {
            html::viewers_page(&merged, "streamgate loadtest merge")
        });
    }
    if viewers > 0 {
        return Err("cannot merge `run` and `viewers` reports together".into());
    }
    let mut reports = Vec::new();
    for (path, v) in &values {
        reports.push(Report::from_json(v).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    let merged = Report::merge(&reports).ok_or("nothing to merge")?;
    print!("{}", merged.to_table(true));
    write(json, || {
        serde_json::to_string_pretty(&merged.to_json()).unwrap_or_default() + "\n"
    })?;
    write(html_out, || {
        html::run_page(&merged, "streamgate loadtest merge")
    })
}

fn write(path: Option<&Path>, text: impl FnOnce() -> String) -> Result<(), String> {
    let Some(path) = path else {
        return Ok(());
    };
    std::fs::write(path, text()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
