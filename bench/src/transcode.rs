//! The transcode benchmark: `streamgate transcode` against the ffmpeg CLI
//! doing the same ladder in one process (split filter, same x264 preset,
//! rate control and GOP), interleaved, with each rendition's PSNR against
//! the source measured by ffmpeg's psnr filter for both.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::harness::{median, record};

/// Options of `streamgate-bench transcode`.
pub struct Options {
    rounds: usize,
    seconds: u32,
    preset: String,
    streamgate: PathBuf,
    markdown: Option<PathBuf>,
}

impl Options {
    /// Parses `--flag value` pairs.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Self {
            rounds: 3,
            seconds: 10,
            preset: "veryfast".into(),
            streamgate: PathBuf::from("target/release/streamgate"),
            markdown: None,
        };
        for (flag, value) in crate::harness::flags(args)? {
            let num = || crate::harness::number::<usize>(flag, value);
            match flag {
                "--rounds" => o.rounds = num()?,
                "--seconds" => o.seconds = crate::harness::number(flag, value)?,
                "--preset" => o.preset = value.to_string(),
                "--streamgate" => o.streamgate = value.into(),
                "--markdown" => o.markdown = Some(value.into()),
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        o.rounds = o.rounds.max(1);
        Ok(o)
    }
}

/// (height, kb/s): the default ladder.
const LADDER: [(u32, u32); 4] = [(1080, 5000), (720, 2800), (480, 1400), (360, 800)];
const SEGMENT: u32 = 4;
const FPS: u32 = 30;

fn run_ok(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The ffmpeg CLI anchor: one process, split filter, the same encoder settings.
fn ffmpeg_ladder(src: &Path, out: &Path, preset: &str) -> Command {
    let gop = SEGMENT * FPS;
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-i"]).arg(src);
    let mut graph = format!("[0:v]split={}", LADDER.len());
    for i in 0..LADDER.len() {
        let _ = write!(graph, "[s{i}]");
    }
    for (i, (h, _)) in LADDER.iter().enumerate() {
        let _ = write!(graph, ";[s{i}]scale=-2:{h}:flags=bicubic[v{i}]");
    }
    cmd.args(["-filter_complex", &graph]);
    for (i, (_, kbps)) in LADDER.iter().enumerate() {
        cmd.args(["-map", &format!("[v{i}]")]);
        cmd.args([format!("-c:v:{i}"), "libx264".into()]);
        cmd.args([format!("-b:v:{i}"), format!("{kbps}k")]);
        cmd.args([format!("-maxrate:v:{i}"), format!("{}k", kbps * 11 / 10)]);
        cmd.args([format!("-bufsize:v:{i}"), format!("{}k", kbps * 22 / 10)]);
    }
    cmd.args([
        "-map", "0:a", "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000",
    ]);
    cmd.args([
        "-preset",
        preset,
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        "-bf",
        "2",
    ]);
    cmd.args([
        "-x264-params",
        &format!("keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:nal-hrd=vbr"),
    ]);
    cmd.args([
        "-f",
        "hls",
        "-hls_time",
        &SEGMENT.to_string(),
        "-hls_segment_type",
        "fmp4",
        "-hls_playlist_type",
        "vod",
    ]);
    cmd.args([
        "-var_stream_map",
        "v:0 v:1 v:2 v:3 a:0",
        "-master_pl_name",
        "master.m3u8",
    ]);
    cmd.arg("-hls_segment_filename").arg(out.join("%v/%d.m4s"));
    cmd.arg(out.join("%v/index.m3u8"));
    cmd
}

/// ffmpeg's psnr filter: a rendition scaled back to the source size against the source.
fn psnr(rendition: &Path, src: &Path) -> Result<f64, String> {
    let log = run_ok(
        Command::new("ffmpeg")
            .args(["-v", "info", "-nostats", "-i"])
            .arg(rendition)
            .arg("-i")
            .arg(src)
            .args([
                "-lavfi",
                "[0:v]scale=1920:1080:flags=bicubic[a];[a][1:v]psnr",
                "-f",
                "null",
                "-",
            ]),
        "psnr",
    )?;
    log.lines()
        .filter_map(|l| l.split("average:").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .next_back()
        .ok_or_else(|| format!("no PSNR in ffmpeg output for {}", rendition.display()))
}

/// Runs the comparison and prints (and optionally records) the table.
pub fn run(o: &Options) -> Result<(), String> {
    let dir = std::env::current_dir()
        .map_err(|e| e.to_string())?
        .join("bench/out/transcode");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let src = dir.join("source-1080p.mp4");
    streamgate_testkit::clip::Clip::new("1920x1080", o.seconds)
        .fps(FPS)
        .audio(48_000)
        .audio_kbps(192)
        .quality("veryfast", Some(16))
        .make(&src)?;

    let mut walls: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..o.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let out = dir.join(format!("{}-{round}", ["ffmpeg", "streamgate"][which]));
            let mut cmd = if which == 0 {
                for i in 0..=LADDER.len() {
                    std::fs::create_dir_all(out.join(i.to_string())).map_err(|e| e.to_string())?;
                }
                ffmpeg_ladder(&src, &out, &o.preset)
            } else {
                let mut c = Command::new(&o.streamgate);
                c.arg("transcode").arg(&src).arg("--out").arg(&out);
                c.args([
                    "--preset",
                    &o.preset,
                    "--gpu",
                    "off",
                    "--segment-seconds",
                    &SEGMENT.to_string(),
                ]);
                c
            };
            let started = Instant::now();
            run_ok(&mut cmd, ["ffmpeg ladder", "streamgate transcode"][which])?;
            walls[which].push(started.elapsed().as_secs_f64());
        }
    }
    let (ff_wall, sg_wall) = (median(walls[0].clone()), median(walls[1].clone()));

    let mut report = format!(
        "Command: `scripts/bench-transcode.sh` (= `streamgate-bench transcode --rounds {} --seconds {} --preset {}`)  \n\
         Source: {}-second 1920×1080 {FPS} fps testsrc2 + sine (x264 crf 16). Ladder 1080/720/480/360 at 5000/2800/1400/800 kb/s, \
         AAC 128 kb/s, {SEGMENT} s CMAF segments, x264 `{}`, VBV max 110 %, keyint {} with scene cuts off, for both. \
         The ffmpeg CLI packages with its HLS fMP4 muxer too.\n\n\
         | | ffmpeg CLI | streamgate | ratio |\n|---|---:|---:|---:|\n\
         | wall, median of {} (s) | {ff_wall:.2} | {sg_wall:.2} | {:.2}× |\n",
        o.rounds, o.seconds, o.preset, o.seconds, o.preset, SEGMENT * FPS, o.rounds, sg_wall / ff_wall
    );
    for (i, (h, _)) in LADDER.iter().enumerate() {
        let a = psnr(&dir.join(format!("ffmpeg-0/{i}/index.m3u8")), &src)?;
        let b = psnr(&dir.join(format!("streamgate-0/{h}p/index.m3u8")), &src)?;
        let _ = writeln!(
            report,
            "| PSNR {h}p (dB) | {a:.2} | {b:.2} | {:+.2} dB |",
            b - a
        );
    }
    let _ = writeln!(
        report,
        "\nWall times per run: ffmpeg {:?} s, streamgate {:?} s.",
        walls[0]
            .iter()
            .map(|w| (w * 100.0).round() / 100.0)
            .collect::<Vec<_>>(),
        walls[1]
            .iter()
            .map(|w| (w * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
    print!("{report}");
    if let Some(path) = &o.markdown {
        record(path, "transcode", &report)?;
    }
    Ok(())
}
