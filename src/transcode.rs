//! `streamgate transcode INPUT --out DIR`: progress on stderr, a bar on a
//! terminal and plain lines otherwise.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use streamgate_transcode_gpu::{ladder, transcode, GpuMode, Options, Progress};

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
}

/// Runs the transcode and prints where the asset went.
pub fn run(args: TranscodeArgs) -> Result<(), String> {
    let mut opts = Options::new(args.input, args.out);
    opts.ladder = ladder::parse(&args.ladder).map_err(|e| e.to_string())?;
    opts.segment_seconds = args.segment_seconds;
    opts.gpu = args.gpu;
    opts.preset = args.preset;
    let tty = std::io::stderr().is_terminal();
    let mut report = |p: Progress| {
        let pct = p.percent().map_or("?".into(), |v| format!("{v:.0}"));
        let eta = p.eta_seconds().map_or("?".into(), |v| format!("{v:.0}s"));
        if tty {
            let filled = p.percent().map_or(0, |v| (v / 5.0) as usize);
            eprint!(
                "\r[{:<20}] {pct:>3}%  {:.0} fps  ETA {eta}   ",
                "#".repeat(filled),
                p.fps
            );
            let _ = std::io::stderr().flush();
        } else {
            eprintln!(
                "transcode: {pct}% frames={} fps={:.1} eta={eta}",
                p.frames, p.fps
            );
        }
    };
    let summary = transcode(&opts, &mut report).map_err(|e| e.to_string());
    if tty {
        eprintln!();
    }
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
