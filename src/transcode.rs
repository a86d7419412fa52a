//! `streamgate transcode INPUT --out DIR`: progress on stderr, a bar on a
//! terminal and plain lines otherwise.

use std::path::PathBuf;

use clap::Args;
use streamgate_transcode_gpu::{ladder, transcode, GpuMode, Options, Progress};

use crate::progress::Bar;

/// Arguments of `streamgate transcode`.
#[derive(Args)]
pub struct TranscodeArgs {
    /// Source file (anything libavformat opens).
    input: PathBuf,
    /// Asset directory to create; it must not exist.
    #[arg(long)]
    out: PathBuf,
    /// Rungs as heights, optionally with kb/s: 1080,720 or 1080:5000,720:2800.
    #[arg(long, default_value = "1080,720,480,360")]
    ladder: String,
    /// Segment length in seconds.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=30))]
    segment_seconds: u32,
    /// GPU encoding: auto (when one opens), off, or require.
    #[arg(long, default_value = "auto")]
    gpu: GpuMode,
    /// x264 preset for CPU encodes.
    #[arg(long, default_value = "veryfast")]
    preset: String,
    /// Queue the job for the running engine's job runner instead of
    /// transcoding here (spool: <data_dir>/jobs).
    #[arg(long)]
    queue: bool,
    /// Configuration file, to find the data dir (with --queue).
    #[arg(long, env = "STREAMGATE_CONFIG")]
    config: Option<PathBuf>,
}

/// Runs the transcode and prints where the asset went.
pub fn run(args: TranscodeArgs) -> Result<(), String> {
    if args.queue {
        return queue(&args);
    }
    let mut opts = Options::new(args.input, args.out);
    opts.ladder = ladder::parse(&args.ladder).map_err(|e| e.to_string())?;
    opts.segment_seconds = args.segment_seconds;
    opts.gpu = args.gpu;
    opts.preset = args.preset;
    let mut bar = Bar::new("transcode");
    let mut report = |p: Progress| {
        let eta = p.eta_seconds().map_or("?".into(), |v| format!("{v:.0}s"));
        bar.show(
            p.percent(),
            &format!("frames={} {:.0} fps ETA {eta}", p.frames, p.fps),
        );
    };
    let summary = transcode(&opts, &mut report).map_err(|e| e.to_string());
    bar.finish();
    let summary = summary?;
    let names: Vec<String> = summary
        .videos
        .iter()
        .map(|v| v.encoded.name.clone())
        .collect();
    println!(
        "{}: {} ({}), audio: {}",
        summary.dir.display(),
        names.join(", "),
        summary.encoder,
        if summary.audio.is_some() {
            "yes"
        } else {
            "none"
        }
    );
    Ok(())
}

/// `--queue`: adds the job to the spool and says how to follow it.
fn queue(args: &TranscodeArgs) -> Result<(), String> {
    let config = crate::config::FileConfig::load(args.config.as_deref())?;
    ladder::parse(&args.ladder).map_err(|e| e.to_string())?;
    let input = std::path::absolute(&args.input).map_err(|e| e.to_string())?;
    let out = std::path::absolute(&args.out).map_err(|e| e.to_string())?;
    let spool = streamgate_transcode_gpu::jobs::Spool::open(&config.spool_dir(), 1)
        .map_err(|e| e.to_string())?;
    let id = spool
        .submit(&input, &out, &args.ladder, args.segment_seconds)
        .map_err(|e| e.to_string())?;
    let admin = config.engine_config()?.admin;
    println!("{id}");
    eprintln!("queued; follow it at http://{admin}/jobs");
    Ok(())
}
