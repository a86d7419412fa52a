//! `streamgate doctor`: what an operator runs first. Each check says OK,
//! WARN or FAIL with what to do; the exit status is non-zero on any FAIL;
//! `--json` for scripts. The checks look at this machine and the
//! configuration as `serve` would read them, changing nothing.

mod control;
mod media;
mod storage;
mod system;

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::config::FileConfig;

/// `streamgate doctor`
#[derive(Args)]
pub struct DoctorArgs {
    /// Configuration file (TOML, Contract 6).
    #[arg(long, env = "STREAMGATE_CONFIG")]
    config: Option<PathBuf>,
    /// One JSON document instead of lines.
    #[arg(long)]
    json: bool,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but look at it.
    Warn,
    /// Will not work as configured.
    Fail,
}

/// One check's finding.
#[derive(Debug, Serialize)]
pub struct Finding {
    /// What was checked (`io_uring`, `nofile`, `database`, …).
    pub check: &'static str,
    /// How it came out.
    pub level: Level,
    /// What was found.
    pub said: String,
    /// What to do about it, when something is to be done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub todo: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, said: impl Into<String>) -> Self {
        Self {
            check,
            level: Level::Ok,
            said: said.into(),
            todo: None,
        }
    }

    fn warn(check: &'static str, said: impl Into<String>, todo: impl Into<String>) -> Self {
        Self {
            check,
            level: Level::Warn,
            said: said.into(),
            todo: Some(todo.into()),
        }
    }

    fn fail(check: &'static str, said: impl Into<String>, todo: impl Into<String>) -> Self {
        Self {
            check,
            level: Level::Fail,
            said: said.into(),
            todo: Some(todo.into()),
        }
    }
}

/// Runs every check and prints the findings.
pub fn run(args: DoctorArgs) -> Result<(), String> {
    let file = FileConfig::load(args.config.as_deref())?;
    let engine = file.engine_config()?;
    let control = file.control_config()?;
    let mut findings = Vec::new();
    findings.extend(system::checks(&file, &engine));
    findings.extend(media::checks());
    findings.extend(control::checks(&control));
    findings.extend(storage::checks(control.bucket.as_ref()));
    let fails = findings.iter().filter(|f| f.level == Level::Fail).count();
    let warns = findings.iter().filter(|f| f.level == Level::Warn).count();
    if args.json {
        let doc = serde_json::json!({ "findings": findings, "fail": fails, "warn": warns });
        println!("{doc:#}");
    } else {
        for f in &findings {
            let level = match f.level {
                Level::Ok => "OK  ",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            println!("{level} {:<12} {}", f.check, f.said);
            if let Some(todo) = &f.todo {
                println!("     {:<12} → {todo}", "");
            }
        }
        println!(
            "{fails} failed, {warns} warnings, {} checks",
            findings.len()
        );
    }
    if fails > 0 {
        Err(format!("doctor: {fails} check(s) failed"))
    } else {
        Ok(())
    }
}
