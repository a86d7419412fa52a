//! `streamgate`: the appliance's command line (Contract 1).
//!
//! `serve` (everything in one process), `engine` and `control` (the two
//! halves apart), `transcode`, `asset …` and `token issue` (operator calls
//! over gRPC), `ingest` (tus upload, then follows the transcode), `config
//! check`, `loadtest run` (the load harness, `streamgate-loadtest`).

mod asset;
mod backup;
mod client;
mod config;
mod doctor;
mod gpu;
mod ingest;
mod jobs;
mod loadtest;
mod log;
mod progress;
mod serve;
mod systemd;
mod token;
mod transcode;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use streamgate_engine::{AccessPolicy, Engine};

use crate::config::FileConfig;

#[derive(Parser)]
#[command(name = "streamgate", version, about = "StreamGate streaming origin")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything on one box: control plane, engine and job runner.
    Serve(serve::ServeArgs),
    /// Run the data plane: serve packaged assets over HTTP/1.1.
    Engine(EngineArgs),
    /// Run the control plane alone (gRPC + JSON API).
    Control(serve::ServeArgs),
    /// Run transcode jobs from the shared queue on this node (scale-out:
    /// `[storage] kind = "s3"`).
    Worker(worker::WorkerArgs),
    /// List the shared transcode queue (operator; `[storage] kind = "s3"`).
    Jobs(jobs::JobsArgs),
    /// Manage assets (operator).
    Asset(asset::AssetArgs),
    /// Upload a video to a running appliance (resumable) and wait until it plays.
    Ingest(ingest::IngestArgs),
    /// Transcode a file into a packaged ABR asset (HLS + DASH over CMAF).
    Transcode(transcode::TranscodeArgs),
    /// Playback tokens (Contract 4).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Check this machine and the configuration: io_uring, limits, kTLS,
    /// GPU, FFmpeg, data dir, database, chains, clock (OK / WARN / FAIL).
    Doctor(doctor::DoctorArgs),
    /// Back the data dir up while the appliance serves (database, keys,
    /// operator token, job spool; assets with --assets).
    Backup(backup::BackupArgs),
    /// Restore a backup into the configuration's data dir.
    Restore(backup::RestoreArgs),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The GPU: what each transcode stage can use on this machine.
    #[command(subcommand)]
    Gpu(gpu::GpuCommand),
    /// TLS on the engine.
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Load-test an origin or a CDN (latency corrected for coordinated
    /// omission).
    #[command(subcommand)]
    Loadtest(loadtest::LoadtestCommand),
}

#[derive(Args)]
struct EngineArgs {
    /// Configuration file (TOML, Contract 6).
    #[arg(long, env = "STREAMGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Assets root (default: <data_dir>/assets).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Public HTTP address.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin address (/metrics, /healthz, /readyz).
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// Worker threads (0 = one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Serve every asset under /v/ without tokens.
    #[arg(long)]
    open: bool,
}

#[derive(Subcommand)]
enum TlsCommand {
    /// Make the running engine read its certificate and key again (as
    /// SIGHUP does): new handshakes use them, open connections keep theirs.
    Reload {
        /// Configuration file (the engine's admin address comes from it).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Parse and validate a configuration file (environment applied).
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::init();
    let result = match cli.command {
        Command::Serve(args) => serve::run_serve(args),
        Command::Engine(args) => run_engine(args),
        Command::Control(args) => serve::run_control(args),
        Command::Worker(args) => worker::run(args),
        Command::Jobs(args) => jobs::run(args),
        Command::Asset(args) => asset::run(args),
        Command::Ingest(args) => ingest::run(args),
        Command::Transcode(args) => transcode::run(args),
        Command::Token(command) => token::run(command),
        Command::Config(ConfigCommand::Check { file }) => check_config(&file),
        Command::Doctor(args) => doctor::run(args),
        Command::Gpu(command) => gpu::run(command),
        Command::Backup(args) => backup::backup(args),
        Command::Restore(args) => backup::restore(args),
        Command::Tls(TlsCommand::Reload { config }) => tls_reload(config.as_deref()),
        Command::Loadtest(command) => loadtest::run_command(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("streamgate: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `streamgate tls reload`: asks the engine's admin listener.
fn tls_reload(config: Option<&std::path::Path>) -> Result<(), String> {
    let file = FileConfig::load(config)?;
    let admin = file.engine_config()?.admin;
    let reply = streamgate_net::client::Connection::open(admin)
        .and_then(|mut c| c.send("POST", "/tls/reload", &[], b""))
        .map_err(|e| format!("cannot reach the engine's admin address {admin}: {e}"))?;
    let said = String::from_utf8_lossy(&reply.body).trim().to_string();
    match reply.status {
        200 => {
            println!("TLS certificate reloaded");
            Ok(())
        }
        _ => Err(format!("the engine did not reload: {said}")),
    }
}

fn run_engine(args: EngineArgs) -> Result<(), String> {
    let file = FileConfig::load(args.config.as_deref())?;
    log::set_level(file.log_level()?);
    // The file's engine section with the command line's overrides, now
    // and at each SIGHUP.
    let build = |file: &FileConfig| -> Result<streamgate_engine::EngineConfig, String> {
        let mut config = file.engine_config()?;
        if let Some(root) = &args.root {
            config.root = root.clone();
        }
        if let Some(listen) = args.listen {
            config.listen = listen;
        }
        if let Some(admin) = args.admin {
            config.admin = admin;
        }
        if let Some(threads) = args.threads {
            config.threads = threads;
        }
        if args.open {
            config.access = AccessPolicy::Open;
            // Nothing to learn from a control plane: every asset is open
            // and tokens are not needed.
            config.control = None;
        }
        Ok(config)
    };
    let config = build(&file)?;
    let summary = format!(
        "serving {} at http://{}/v/ with {} workers; admin http://{}",
        config.root.display(),
        config.listen,
        config.worker_count(),
        config.admin
    );
    if let (AccessPolicy::Closed, Some(control)) = (config.access, &config.control) {
        eprintln!(
            "streamgate engine: access decided locally from keys and open assets pulled from the control plane at {control}"
        );
    }
    let engine = Engine::start(config).map_err(|e| e.to_string())?;
    eprintln!("streamgate engine: {summary}");
    let served = systemd::Served {
        engine: Some(engine.health()),
        control: None,
    };
    let watchdog = systemd::started(&served);
    let signal = streamgate_engine::wait_for_termination_signal_or(|| {
        serve::reload(
            "engine",
            args.config.as_deref(),
            Some((&engine, &build)),
            None,
            &served,
        )
    });
    eprintln!("streamgate engine: signal {signal}, draining");
    drop(watchdog);
    systemd::stopping("draining");
    if engine.shutdown() {
        eprintln!("streamgate engine: drained, exiting");
    } else {
        eprintln!("streamgate engine: grace period over with responses still in flight, exiting");
    }
    Ok(())
}

fn check_config(file: &std::path::Path) -> Result<(), String> {
    let config = FileConfig::load(Some(file))?;
    let engine = config.engine_config()?;
    println!(
        "{}: ok (data_dir {}, engine listen {}, admin {}, root {})",
        file.display(),
        config.data_dir.display(),
        engine.listen,
        engine.admin,
        engine.root.display()
    );
    let control = config.control_config()?;
    println!(
        "control: grpc {}, http {}, database {}, public URL {}, chains {:?}",
        control.grpc,
        control.http,
        control.database.split('@').next_back().unwrap_or_default(),
        control.public_url,
        control.chains.keys().collect::<Vec<_>>()
    );
    config.log_level()?;
    // Against the engine running at this file's admin address, if one is:
    // what SIGHUP would apply, and what needs a restart.
    let running = streamgate_net::client::Connection::open(engine.admin)
        .and_then(|mut c| c.send("GET", "/config", &[], &[]));
    match running {
        Ok(reply) if reply.status == 200 => {
            let keys: std::collections::BTreeMap<String, String> =
                serde_json::from_slice(&reply.body)
                    .map_err(|e| format!("the running engine's /config: {e}"))?;
            let restart = streamgate_engine::reload::differing(&keys, &engine);
            if restart.is_empty() {
                println!(
                    "running engine at {}: every change reloads with SIGHUP (systemctl reload)",
                    engine.admin
                );
            } else {
                println!(
                    "running engine at {}: changed keys that need a restart: {}",
                    engine.admin,
                    restart.join(", ")
                );
            }
        }
        _ => println!("no engine answers at {}: nothing to compare", engine.admin),
    }
    Ok(())
}
