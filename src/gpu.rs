//! `streamgate gpu info`: what this machine's GPU offers each transcode
//! stage, asked of the driver (a CUDA device context, the NVDEC decoders
//! FFmpeg has, an NVENC session), and where `--gpu auto` would run each
//! stage. Exit 0 either way: "no GPU" is an answer.

use clap::Subcommand;
use streamgate_transcode_gpu::gpu::GpuReport;
use streamgate_transcode_gpu::stages::{self, Capabilities};
use streamgate_transcode_gpu::GpuMode;

/// `streamgate gpu`.
#[derive(Subcommand)]
pub enum GpuCommand {
    /// Devices, CUDA, NVDEC decoders and NVENC: opened, not guessed.
    Info {
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `streamgate gpu …`.
pub fn run(command: GpuCommand) -> Result<(), String> {
    let GpuCommand::Info { json } = command;
    let report = GpuReport::probe();
    let plan = stages::plan(GpuMode::Auto, &Capabilities::from_report(&report))
        .map_err(|e| e.to_string())?;
    if json {
        let doc = serde_json::json!({
            "report": report,
            "usable": report.usable(),
            "auto": plan.describe(),
        });
        println!("{doc:#}");
    } else {
        for line in report.lines() {
            println!("{line}");
        }
        println!("--gpu auto: {}", plan.describe());
    }
    Ok(())
}
