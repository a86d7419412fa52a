//! `streamgate serve` (control plane, engine and job runner in one process)
//! and `streamgate control` (the control plane alone).
//!
//! The engine reaches the control plane over gRPC on loopback either way, so
//! one box and a split deployment run the same code path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use streamgate_control_plane::ControlPlane;
use streamgate_engine::{Engine, EngineConfig};

use crate::config::FileConfig;
use crate::systemd::{self, Served};

/// `streamgate serve` / `streamgate control`
#[derive(Args)]
pub struct ServeArgs {
    /// Configuration file (TOML, Contract 6).
    #[arg(long, env = "STREAMGATE_CONFIG")]
    config: Option<PathBuf>,
}

fn start_control(file: &FileConfig, who: &str, own_metrics: bool) -> Result<ControlPlane, String> {
    let mut config = file.control_config()?;
    config.own_metrics = own_metrics;
    let public_url = config.public_url.clone();
    let control = ControlPlane::start(config).map_err(|e| e.to_string())?;
    if let Some(path) = &control.created.operator_token {
        eprintln!(
            "streamgate {who}: created the operator token {} (mode 0600); the CLI reads it from there",
            path.display()
        );
    }
    if let Some(dir) = &control.created.signing_key {
        eprintln!(
            "streamgate {who}: created a playback-token signing key in {} (mode 0600; public half in the database)",
            dir.display()
        );
    }
    eprintln!(
        "streamgate {who}: control plane gRPC {} · JSON API http://{} · public URL {public_url}",
        control.grpc, control.http
    );
    Ok(control)
}

/// Runs the control plane alone until SIGTERM / SIGINT.
pub fn run_control(args: ServeArgs) -> Result<(), String> {
    streamgate_engine::block_termination_signals();
    let file = FileConfig::load(args.config.as_deref())?;
    crate::log::set_level(file.log_level()?);
    let control = start_control(&file, "control", true)?;
    let served = Served {
        engine: None,
        control: Some(control.health()),
    };
    let watchdog = systemd::started(&served);
    let signal = streamgate_engine::wait_for_termination_signal_or(|| {
        reload(
            "control",
            args.config.as_deref(),
            None,
            Some(&control),
            &served,
        )
    });
    eprintln!("streamgate control: signal {signal}, stopping");
    drop(watchdog);
    systemd::stopping("stopping");
    control.shutdown(Duration::from_secs(5));
    Ok(())
}

/// Runs everything until SIGTERM / SIGINT.
pub fn run_serve(args: ServeArgs) -> Result<(), String> {
    // Before any thread starts, so that every thread inherits the mask and
    // the signal reaches `wait_for_termination_signal`.
    streamgate_engine::block_termination_signals();
    let file = FileConfig::load(args.config.as_deref())?;
    crate::log::set_level(file.log_level()?);
    ensure_dir(&file.data_dir)?;
    // The engine's configuration, now and at each SIGHUP: the appliance
    // serves its pages, the packaged ones unless configured.
    let build = |file: &FileConfig| -> Result<EngineConfig, String> {
        let mut config = file.engine_config()?;
        if config.web.is_none() {
            config.web = streamgate_engine::web::default_root().map(|root| file.web_config(root));
        }
        Ok(config)
    };
    let engine_config = build(&file)?;
    ensure_dir(&engine_config.root)?;
    let control = start_control(&file, "serve", false)?;
    let (listen, admin) = (engine_config.listen, engine_config.admin);
    let workers = engine_config.worker_count();
    let engine = match Engine::start(engine_config) {
        Ok(engine) => engine,
        Err(e) => {
            control.shutdown(Duration::from_secs(1));
            return Err(e.to_string());
        }
    };
    // The engine installed the process's recorder; the control plane's
    // series go to it too.
    streamgate_control_plane::metrics::describe();
    eprintln!(
        "streamgate serve: engine http://{listen} ({workers} workers; /v/<id>/ open assets, /p/<token>/<id>/ gated) · admin http://{admin}"
    );
    eprintln!(
        "streamgate serve: ready (data in {})",
        file.data_dir.display()
    );
    let served = Served {
        engine: Some(engine.health()),
        control: Some(control.health()),
    };
    // Listeners bound, keys loaded, database migrated: both halves started.
    let watchdog = systemd::started(&served);
    let signal = streamgate_engine::wait_for_termination_signal_or(|| {
        reload(
            "serve",
            args.config.as_deref(),
            Some((&engine, &build)),
            Some(&control),
            &served,
        )
    });
    eprintln!("streamgate serve: signal {signal}, draining");
    drop(watchdog);
    systemd::stopping("draining");
    let drained = engine.shutdown();
    control.shutdown(Duration::from_secs(5));
    if drained {
        eprintln!("streamgate serve: drained, exiting");
    } else {
        eprintln!("streamgate serve: grace period over with responses still in flight, exiting");
    }
    Ok(())
}

fn ensure_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))
}

/// Builds an engine's configuration from the file (with a command's
/// overrides).
pub type BuildEngineConfig<'a> = dyn Fn(&FileConfig) -> Result<EngineConfig, String> + 'a;

/// What SIGHUP does to a running process, one logic for `serve`, `engine`
/// and `control`: reads the configuration again (`engine_config` builds
/// the engine's, with any command-line overrides), applies what can
/// change live — log level; the engine's TTLs, CORS, connection cap and
/// certificates; the control plane's TTLs, limits and RPC URLs — and says
/// which changed keys need a restart. A file that does not load changes
/// nothing.
pub fn reload(
    who: &str,
    path: Option<&Path>,
    engine: Option<(&Engine, &BuildEngineConfig<'_>)>,
    control: Option<&ControlPlane>,
    served: &Served,
) {
    systemd::reloading();
    let outcome = (|| -> Result<Vec<&'static str>, String> {
        let file = FileConfig::load(path)?;
        let level = file.log_level()?;
        let engine_config = match &engine {
            Some((_, build)) => Some(build(&file)?),
            None => None,
        };
        let control_config = match control {
            Some(_) => Some(file.control_config()?),
            None => None,
        };
        // Everything read and valid: now apply.
        crate::log::set_level(level);
        let mut restart = Vec::new();
        if let (Some((engine, _)), Some(next)) = (&engine, &engine_config) {
            restart.extend(engine.reload(Some(next)).map_err(|e| e.to_string())?);
        }
        if let (Some(control), Some(next)) = (control, control_config) {
            restart.extend(control.reload(next)?);
        }
        Ok(restart)
    })();
    match outcome {
        Ok(restart) if restart.is_empty() => eprintln!("streamgate {who}: SIGHUP: reloaded"),
        Ok(restart) => eprintln!(
            "streamgate {who}: SIGHUP: reloaded; changed keys that need a restart: {}",
            restart.join(", ")
        ),
        Err(e) => eprintln!("streamgate {who}: SIGHUP: {e}; keeping what was loaded"),
    }
    systemd::reloaded(served);
}
