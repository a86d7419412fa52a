//! `streamgate transcode` end to end: real FFmpeg libraries, clips made by
//! the ffmpeg CLI (lavfi testsrc2 + sine), outputs checked with ffprobe and
//! ffmpeg, and served by the real engine.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{clip, decodes_cleanly, transcode, Engine, Options, Scratch};

fn ok(output: &Output) {
    assert!(
        output.status.success(),
        "transcode failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn extinfs(playlist: &Path) -> Vec<f64> {
    std::fs::read_to_string(playlist)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|v| v.trim_end_matches(',').parse().unwrap())
        .collect()
}

fn ffprobe(args: &[&str], target: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn leftovers(parent: &Path) -> Vec<String> {
    std::fs::read_dir(parent)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("staging"))
        .collect()
}

#[test]
fn ladder_is_pruned_aligned_and_truthful() {
    let s = Scratch::new("tc-ladder");
    let input = clip(&s.0, "src.mp4", "854x480", 7, true);
    let out = s.0.join("assets/a1");
    ok(&transcode(&input, &out, &["--ladder", "1080,720,480,360"]));

    // Never upscale: 1080 and 720 are gone.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["360p", "480p", "audio"]);
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    assert_eq!(master.matches("#EXT-X-STREAM-INF").count(), 2, "{master}");
    for needle in [
        "#EXT-X-VERSION:7",
        "RESOLUTION=854x480",
        "RESOLUTION=640x360",
        "AVERAGE-BANDWIDTH=",
        "mp4a.40.2",
        "avc1.",
        "FRAME-RATE=25.000",
        "TYPE=AUDIO",
    ] {
        assert!(master.contains(needle), "master lacks {needle}:\n{master}");
    }

    // Identical segment boundaries in every video rendition, and EXTINF sums
    // equal to the source duration within one frame.
    let a = extinfs(&out.join("480p/index.m3u8"));
    let b = extinfs(&out.join("360p/index.m3u8"));
    assert_eq!(a, b, "segment boundaries differ");
    assert_eq!(a.len(), 4, "7 s in 2 s segments: {a:?}");
    let total: f64 = a.iter().sum();
    assert!((total - 7.0).abs() <= 1.0 / 25.0, "EXTINF sum {total}");
    let media = std::fs::read_to_string(out.join("480p/index.m3u8")).unwrap();
    for needle in [
        "#EXT-X-MAP:URI=\"init.mp4\"",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-ENDLIST",
        "1.m4s",
    ] {
        assert!(media.contains(needle), "media playlist lacks {needle}");
    }

    // ffprobe reads every rendition.
    for (dir, codec) in [("480p", "h264"), ("360p", "h264"), ("audio", "aac")] {
        let info = ffprobe(
            &[
                "-show_entries",
                "stream=codec_name,height",
                "-of",
                "csv=p=0",
            ],
            &out.join(dir).join("index.m3u8").to_string_lossy(),
        );
        assert!(info.starts_with(codec), "{dir}: {info}");
    }
    // The MPD carries the same timeline.
    let mpd = std::fs::read_to_string(out.join("manifest.mpd")).unwrap();
    assert_eq!(mpd.matches("<Representation").count(), 3);
    let audio_segments = extinfs(&out.join("audio/index.m3u8")).len();
    assert_eq!(mpd.matches("<S t=").count(), 2 * a.len() + audio_segments);
    decodes_cleanly(&out.join("master.m3u8").to_string_lossy());
    decodes_cleanly(&out.join("manifest.mpd").to_string_lossy());
    // The I-frame playlist's byte ranges hold exactly a keyframe: init plus
    // the range decodes to one I frame.
    assert!(master.contains("#EXT-X-I-FRAME-STREAM-INF") && master.contains("480p/iframes.m3u8"));
    let iframes = std::fs::read_to_string(out.join("480p/iframes.m3u8")).unwrap();
    assert!(iframes.contains("#EXT-X-I-FRAMES-ONLY"));
    let len: usize = iframes
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-BYTERANGE:"))
        .and_then(|r| r.trim_end_matches("@0").parse().ok())
        .expect("a byte range");
    let mut keyframe = std::fs::read(out.join("480p/init.mp4")).unwrap();
    keyframe.extend_from_slice(&std::fs::read(out.join("480p/1.m4s")).unwrap()[..len]);
    let probe_file = s.0.join("keyframe.mp4");
    std::fs::write(&probe_file, keyframe).unwrap();
    let frames = ffprobe(
        &[
            "-select_streams",
            "v",
            "-show_frames",
            "-show_entries",
            "frame=key_frame,pict_type",
            "-of",
            "csv=p=0",
        ],
        &probe_file.to_string_lossy(),
    );
    assert!(frames.starts_with("1,I"), "{frames}");
    // The poster is a JPEG at the top rendition's size.
    let poster = ffprobe(
        &[
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ],
        &out.join("poster.jpg").to_string_lossy(),
    );
    assert_eq!(poster.trim(), "mjpeg,854,480");
    assert!(leftovers(&s.0.join("assets")).is_empty());
}

/// Where the first segment of a rendition starts presenting, in seconds:
/// its `tfdt` plus the first sample's composition offset.
fn first_presentation_time(rendition: &Path) -> f64 {
    let init = std::fs::read(rendition.join("init.mp4")).unwrap();
    let first = std::fs::read(rendition.join("1.m4s")).unwrap();
    let ticks = streamgate_transcode_gpu::package::mp4::first_presentation_ticks(&first)
        .expect("a moof with tfdt and trun");
    let timescale = streamgate_transcode_gpu::package::mp4::timescale(&init).unwrap();
    ticks as f64 / f64::from(timescale)
}

#[test]
fn video_and_audio_start_together_at_zero() {
    // x264's B-frames delay the first frame's decode time by two frames; a
    // rendition whose first sample presents at 2/fps leaves a hole at the
    // start (hls.js: bufferSeekOverHole) and audio leading the picture.
    let s = Scratch::new("tc-start");
    let input = clip(&s.0, "src.mp4", "640x360", 5, true);
    let out = s.0.join("assets/a1");
    ok(&transcode(&input, &out, &["--ladder", "360,240"]));
    let audio = first_presentation_time(&out.join("audio"));
    assert!(audio.abs() < 1e-6, "audio starts at {audio}");
    for rung in ["360p", "240p"] {
        let video = first_presentation_time(&out.join(rung));
        assert!(
            (video - audio).abs() < 1e-6,
            "{rung}: video starts at {video} s, audio at {audio} s"
        );
        let total: f64 = extinfs(&out.join(rung).join("index.m3u8")).iter().sum();
        assert!(
            (total - 5.0).abs() <= 1.0 / 25.0,
            "{rung}: EXTINF sum {total}"
        );
    }
    // Every frame still decodes, in order, from the HLS rendition.
    assert_eq!(
        common::decoded_video_frames(&out.join("360p/index.m3u8").to_string_lossy()),
        125
    );
}

#[test]
fn a_source_without_audio_works() {
    let s = Scratch::new("tc-noaudio");
    let input = clip(&s.0, "silent.mkv", "640x360", 4, false);
    let out = s.0.join("silent");
    ok(&transcode(&input, &out, &["--ladder", "360,240"]));
    assert!(!out.join("audio").exists());
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    assert!(!master.contains("EXT-X-MEDIA"), "{master}");
    assert_eq!(
        extinfs(&out.join("360p/index.m3u8")),
        extinfs(&out.join("240p/index.m3u8"))
    );
    decodes_cleanly(&out.join("manifest.mpd").to_string_lossy());
}

#[test]
fn bad_inputs_fail_cleanly_and_publish_nothing() {
    let s = Scratch::new("tc-bad");
    let good = clip(&s.0, "good.mkv", "320x240", 6, true);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = s.0.join("truncated.mkv");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = s.0.join("garbage.mp4");
    std::fs::write(
        &garbage,
        (0..50_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let text = s.0.join("notes.txt");
    std::fs::write(&text, "this is not a video\n".repeat(100)).unwrap();
    let audio_only = s.0.join("tone.m4a");
    assert!(Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-t",
            "2",
            "-c:a",
            "aac"
        ])
        .arg(&audio_only)
        .status()
        .unwrap()
        .success());
    let mp4 = clip(&s.0, "cut.mp4", "320x240", 4, false);
    let mp4_bytes = std::fs::read(&mp4).unwrap();
    std::fs::write(&mp4, &mp4_bytes[..mp4_bytes.len() * 2 / 3]).unwrap();

    let cases = [
        (truncated, "truncated"),
        (garbage, "not a media file"),
        (text, "not a media file"),
        (audio_only, "no video stream"),
        (mp4, "cut.mp4 is not a media file"),
        (s.0.join("missing.mp4"), "cannot open"),
    ];
    for (input, expected) in cases {
        let out = s.0.join("assets").join("x");
        let result = transcode(&input, &out, &["--ladder", "240"]);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{}: succeeded", input.display());
        assert!(
            stderr.contains(expected),
            "{}: wanted `{expected}` in: {stderr}",
            input.display()
        );
        assert!(
            !out.exists(),
            "{}: something was published",
            input.display()
        );
        if s.0.join("assets").exists() {
            assert!(
                leftovers(&s.0.join("assets")).is_empty(),
                "staging left behind"
            );
        }
    }
    // An existing output is never overwritten.
    let out = s.0.join("exists");
    std::fs::create_dir(&out).unwrap();
    let result = transcode(&good, &out, &["--ladder", "240"]);
    assert!(!result.status.success());
    assert!(String::from_utf8_lossy(&result.stderr).contains("exists already"));
}

#[test]
fn the_engine_serves_a_transcoded_asset_over_hls_and_dash() {
    let s = Scratch::new("tc-serve");
    let input = clip(&s.0, "src.mp4", "640x360", 4, true);
    let e = Engine::start_with(Options::default(), |root| {
        ok(&transcode(
            &input,
            &root.join("movie"),
            &["--ladder", "360,240"],
        ));
    });
    for manifest in ["master.m3u8", "manifest.mpd"] {
        let url = format!("http://{}/v/movie/{manifest}", e.addr);
        decodes_cleanly(&url);
        let info = ffprobe(
            &["-show_entries", "stream=codec_name", "-of", "csv=p=0"],
            &url,
        );
        assert!(
            info.contains("h264") && info.contains("aac"),
            "{manifest}: {info}"
        );
    }
    let segment = e.get("/v/movie/360p/1.m4s", "");
    assert_eq!(segment.status, 200);
    assert_eq!(segment.header("Content-Type"), Some("video/iso.segment"));
    let poster = e.get("/v/movie/poster.jpg", "");
    assert_eq!(
        (poster.status, poster.header("Content-Type")),
        (200, Some("image/jpeg"))
    );
    assert!(poster.body.starts_with(&[0xff, 0xd8]), "not a JPEG");
}

/// Polls the admin `/jobs` listing until `done` says so.
fn wait_jobs(e: &Engine, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let listing = String::from_utf8(common::try_get(e.admin, "/jobs").unwrap().body).unwrap();
        if done(&listing) {
            return listing;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {listing}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn queue(e: &Engine, input: &Path, out: &Path) -> String {
    let result = Command::new(env!("CARGO_BIN_EXE_streamgate"))
        .arg("transcode")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args([
            "--queue",
            "--ladder",
            "360,240",
            "--segment-seconds",
            "2",
            "--config",
        ])
        .arg(e.config_path())
        .output()
        .unwrap();
    ok(&result);
    String::from_utf8(result.stdout).unwrap().trim().to_string()
}

#[test]
fn a_job_survives_kill_9_and_completes_after_restart() {
    let s = Scratch::new("tc-jobs");
    let input = clip(&s.0, "long.mp4", "640x360", 20, true);
    let bad = s.0.join("bad.mp4");
    std::fs::write(&bad, b"not a video at all").unwrap();
    let mut e = Engine::start_with(
        Options {
            engine_toml: "job_workers = 1\njob_attempts = 2\njob_preset = \"slower\"".into(),
            ..Options::default()
        },
        |_| {},
    );
    let out = e.root.join("movie");
    let id = queue(&e, &input, &out);
    // Kill the engine in the middle of the transcode.
    wait_jobs(&e, "the job to run", |l| {
        l.contains(&format!("{id} running")) && l.contains("percent=")
    });
    e.kill9_and_restart();
    assert!(!out.exists(), "a half-done asset was published");
    // Restarted: the interrupted job runs again (attempt 2) and publishes.
    let listing = wait_jobs(&e, "the job to finish", |l| {
        l.contains(&format!("{id} done")) || l.contains(&format!("{id} failed"))
    });
    assert!(
        listing.contains(&format!("{id} done attempts=2")),
        "{listing}"
    );
    decodes_cleanly(&format!("http://{}/v/movie/master.m3u8", e.addr));
    assert!(leftovers(&e.root).is_empty(), "staging left behind");
    let metrics = String::from_utf8(common::try_get(e.admin, "/metrics").unwrap().body).unwrap();
    assert!(
        metrics.contains("streamgate_jobs{state=\"done\"} 1"),
        "{metrics}"
    );

    // A job that cannot succeed is retried, then marked failed with its error.
    let bad_id = queue(&e, &bad, &e.root.join("broken"));
    let listing = wait_jobs(&e, "the bad job to fail", |l| {
        l.contains(&format!("{bad_id} failed"))
    });
    assert!(
        listing.contains(&format!("{bad_id} failed attempts=2")),
        "{listing}"
    );
    assert!(listing.contains("not a media file"), "{listing}");
    assert!(!e.root.join("broken").exists());
}

#[test]
fn av1_rungs_by_config_align_with_h264() {
    let s = Scratch::new("tc-av1");
    let input = clip(&s.0, "src.mp4", "640x360", 4, true);
    let out = s.0.join("av1");
    ok(&transcode(&input, &out, &["--ladder", "360,240:av1"]));
    assert_eq!(
        extinfs(&out.join("360p/index.m3u8")),
        extinfs(&out.join("240p-av1/index.m3u8"))
    );
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    assert!(master.contains("CODECS=\"av01.0."), "{master}");
    let info = ffprobe(
        &[
            "-show_entries",
            "stream=codec_name,height",
            "-of",
            "csv=p=0",
        ],
        &out.join("240p-av1/index.m3u8").to_string_lossy(),
    );
    assert_eq!(info.lines().next(), Some("av1,240"));
    let mpd = std::fs::read_to_string(out.join("manifest.mpd")).unwrap();
    assert_eq!(
        mpd.matches("contentType=\"video\"").count(),
        2,
        "one AdaptationSet per codec"
    );
    decodes_cleanly(&out.join("master.m3u8").to_string_lossy());
    decodes_cleanly(&out.join("manifest.mpd").to_string_lossy());
}

#[test]
fn a_gated_asset_plays_through_its_token_path() {
    let s = Scratch::new("tc-gated");
    let input = clip(&s.0, "src.mp4", "320x240", 4, true);
    let e = Engine::start_with(
        Options {
            open: false,
            ..Options::default()
        },
        |root| {
            ok(&transcode(
                &input,
                &root.join("gated"),
                &["--ladder", "240"],
            ));
        },
    );
    e.gate_unreachable("gated");
    let token = e.issue_token("gated");
    let master = format!("/p/{token}/gated/master.m3u8");
    e.wait_status(&master, 200);
    // Relative URIs in the manifests carry the token to every segment.
    decodes_cleanly(&format!("http://{}{master}", e.addr));
    decodes_cleanly(&format!("http://{}/p/{token}/gated/manifest.mpd", e.addr));
    assert_eq!(e.get("/v/gated/master.m3u8", "").status, 404);
}

#[test]
fn finished_jobs_leave_the_spool_after_the_retention() {
    let s = Scratch::new("tc-retention");
    let bad = s.0.join("bad.mp4");
    std::fs::write(&bad, b"not a video at all").unwrap();
    let e = Engine::start_with(
        Options {
            engine_toml: "job_workers = 1\njob_attempts = 1\njob_retention = \"2s\"".into(),
            ..Options::default()
        },
        |_| {},
    );
    let id = queue(&e, &bad, &e.root.join("broken"));
    wait_jobs(&e, "the job to fail", |l| {
        l.contains(&format!("{id} failed"))
    });
    // Pruned once the retention has passed, at the next sweep (every second here).
    let listing = wait_jobs(&e, "the finished job to be pruned", |l| !l.contains(&id));
    assert!(listing.trim().is_empty(), "{listing}");
    assert_eq!(
        std::fs::read_dir(e.scratch.0.join("jobs"))
            .unwrap()
            .filter(|f| f
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml"))
            .count(),
        0
    );
}
