//! The whole transcode: probe, decode once, fan frames out to one encoder
//! thread per rendition, package, publish.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ff::{frame, Packet};
use ffmpeg_next as ff;

use crate::backend::{self, GpuMode};
use crate::error::{io, TranscodeError};
use crate::ladder::{self, Codec, Rung};
use crate::package::{self, Rendition};
use crate::probe;
use crate::stages::{self, SharedFrame};

use crate::publish;
use crate::rendition::{self, Common, Encoded};

/// What to transcode and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Source file.
    pub input: PathBuf,
    /// Asset directory to create (must not exist).
    pub out: PathBuf,
    /// Ladder before pruning, highest first.
    pub ladder: Vec<Rung>,
    /// Segment length in seconds.
    pub segment_seconds: u32,
    /// GPU use.
    pub gpu: GpuMode,
    /// x264 preset (CPU encodes).
    pub preset: String,
    /// Publish into this store (a bucket) rather than `out`'s directory.
    pub publish_to: Option<publish::PublishTo>,
}

impl Options {
    /// Defaults: the default ladder, 4 s segments, `--gpu auto`, `veryfast`.
    pub fn new(input: PathBuf, out: PathBuf) -> Self {
        Self {
            input,
            out,
            ladder: ladder::DEFAULT_LADDER.to_vec(),
            segment_seconds: 4,
            gpu: GpuMode::Auto,
            preset: "veryfast".into(),
            publish_to: None,
        }
    }
}

/// Progress of a running transcode.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Frames decoded so far.
    pub frames: u64,
    /// Expected frames (0 when unknown).
    pub total_frames: u64,
    /// Decode rate, frames per second.
    pub fps: f64,
}

impl Progress {
    /// Percent done, when the total is known.
    pub fn percent(&self) -> Option<f64> {
        (self.total_frames > 0)
            .then(|| (self.frames as f64 * 100.0 / self.total_frames as f64).min(100.0))
    }

    /// Seconds left at the current rate, when known.
    pub fn eta_seconds(&self) -> Option<f64> {
        (self.total_frames > 0 && self.fps > 0.0)
            .then(|| self.total_frames.saturating_sub(self.frames) as f64 / self.fps)
    }
}

/// A finished transcode.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The published asset directory.
    pub dir: PathBuf,
    /// Video renditions, highest first.
    pub videos: Vec<Rendition>,
    /// The audio rendition, if the source had audio.
    pub audio: Option<Rendition>,
    /// The encoder used for video.
    pub encoder: &'static str,
}

type Worker = JoinHandle<Result<Encoded, TranscodeError>>;

/// Runs a transcode, calling `progress` about twice a second.
pub fn transcode(
    opts: &Options,
    progress: &mut dyn FnMut(Progress),
) -> Result<Summary, TranscodeError> {
    let (store, name) = publish::target(&opts.out, opts.publish_to.as_ref())?;
    let staging = publish::stage(&*store, &name)?;
    let (mut input, probe) = probe::probe(&opts.input)?;
    let plan = stages::choose(opts.gpu)?;
    let encoder = plan.encode;
    let rungs = ladder::prune(&opts.ladder, probe.height);
    let av1 = if rungs.iter().any(|r| r.codec == Codec::Av1) {
        Some(backend::select_av1()?)
    } else {
        None
    };
    let fps = probe.fps();
    let gop = ((fps * f64::from(opts.segment_seconds)).round() as u32).max(1);
    let common = Common {
        segment_seconds: opts.segment_seconds,
        frame_rate: probe.frame_rate,
        gop,
        preset: opts.preset.clone(),
    };

    let video_stream = input
        .stream(probe.video_index)
        .ok_or(TranscodeError::NotVideo(opts.input.clone()))?;
    let video_tb = video_stream.time_base();
    let mut video_dec = ff::codec::context::Context::from_parameters(video_stream.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(|e| TranscodeError::Corrupt(format!("video decoder: {e}")))?;
    let mut audio_dec = match probe.audio_index.and_then(|i| input.stream(i)) {
        Some(s) => Some(
            ff::codec::context::Context::from_parameters(s.parameters())
                .and_then(|c| c.decoder().audio())
                .map_err(|e| TranscodeError::Corrupt(format!("audio decoder: {e}")))?,
        ),
        None => None,
    };

    // One encoder thread per rendition; bounded queues keep memory flat.
    let src = (
        probe.width,
        probe.height,
        video_dec.format(),
        probe.sample_aspect,
    );
    let mut video_tx: Vec<SyncSender<SharedFrame>> = Vec::new();
    let mut workers: Vec<Worker> = Vec::new();
    for rung in &rungs {
        let dir = staging.path().join(rung.name());
        std::fs::create_dir(&dir).map_err(|e| io("creating a rendition directory", e))?;
        let (tx, rx) = sync_channel(4);
        let (rung, common) = (*rung, common.clone());
        let backend = match rung.codec {
            Codec::H264 => encoder,
            Codec::Av1 => av1.unwrap_or(encoder),
        };
        workers.push(spawn(&rung.name(), move || {
            rendition::video(dir, rung, src, common, (plan.scale, backend), rx)
        })?);
        video_tx.push(tx);
    }
    let mut audio_tx = None;
    let declared = video_stream_seconds(&input, probe.video_index)
        .or((probe.duration > 0.0).then_some(probe.duration));
    let video_seconds = declared;
    if audio_dec.is_some() {
        let dir = staging.path().join("audio");
        std::fs::create_dir(&dir).map_err(|e| io("creating the audio directory", e))?;
        let (tx, rx) = sync_channel(32);
        let seconds = opts.segment_seconds;
        workers.push(spawn("audio", move || {
            rendition::audio(dir, seconds, rx, video_seconds)
        })?);
        audio_tx = Some(tx);
    }

    let total_frames = (probe.duration * fps).round() as u64;
    let started = Instant::now();
    // At 0 % from the start, then every half second: a job is visible as
    // running (in /jobs, the metrics, `ingest`) from its first frame.
    progress(Progress {
        frames: 0,
        total_frames,
        fps: 0.0,
    });
    let mut last_report = Instant::now();
    let mut frames = 0u64;
    let mut last_pts: Option<i64> = None;
    let mut decoded = frame::Video::empty();
    // The poster comes from about a tenth into the video.
    let poster_at = (total_frames / 10).max(1);
    let mut poster_frame: Option<SharedFrame> = None;
    let mut audio_frame = frame::Audio::empty();
    let mut packet = Packet::empty();
    let decode_result: Result<(), TranscodeError> = (|| {
        // Each decoded frame goes to every rung by reference: the decoder
        // fills a fresh frame each time, and the rungs share it read-only.
        let mut fan_out = |decoded: &mut frame::Video,
                           frames: &mut u64|
         -> Result<(), TranscodeError> {
            *frames += 1;
            let shared: SharedFrame = Arc::new(std::mem::replace(decoded, frame::Video::empty()));
            if *frames == poster_at || poster_frame.is_none() {
                poster_frame = Some(Arc::clone(&shared));
            }
            for tx in &video_tx {
                // A closed queue means that encoder failed; its error is
                // collected when joining.
                if tx.send(Arc::clone(&shared)).is_err() {
                    return Err(TranscodeError::Encode("an encoder stopped".into()));
                }
            }
            Ok(())
        };
        loop {
            match packet.read(&mut input) {
                Ok(()) => {}
                Err(ff::Error::Eof) => break,
                Err(e) => return Err(TranscodeError::Corrupt(format!("reading the input: {e}"))),
            }
            let index = packet.stream();
            if index == probe.video_index {
                video_dec
                    .send_packet(&packet)
                    .map_err(|e| TranscodeError::Corrupt(format!("video: {e}")))?;
                while video_dec.receive_frame(&mut decoded).is_ok() {
                    last_pts = decoded.timestamp().or(last_pts);
                    fan_out(&mut decoded, &mut frames)?;
                }
            } else if Some(index) == probe.audio_index {
                if let (Some(dec), Some(tx)) = (&mut audio_dec, &audio_tx) {
                    dec.send_packet(&packet)
                        .map_err(|e| TranscodeError::Corrupt(format!("audio: {e}")))?;
                    while dec.receive_frame(&mut audio_frame).is_ok() {
                        if tx.send(audio_frame.clone()).is_err() {
                            return Err(TranscodeError::Encode("the audio encoder stopped".into()));
                        }
                    }
                }
            }
            if last_report.elapsed() >= Duration::from_millis(500) {
                last_report = Instant::now();
                let secs = started.elapsed().as_secs_f64().max(0.001);
                progress(Progress {
                    frames,
                    total_frames,
                    fps: frames as f64 / secs,
                });
            }
        }
        video_dec
            .send_eof()
            .map_err(|e| TranscodeError::Corrupt(format!("video: {e}")))?;
        while video_dec.receive_frame(&mut decoded).is_ok() {
            last_pts = decoded.timestamp().or(last_pts);
            fan_out(&mut decoded, &mut frames)?;
        }
        if let (Some(dec), Some(tx)) = (&mut audio_dec, &audio_tx) {
            let _ = dec.send_eof();
            while dec.receive_frame(&mut audio_frame).is_ok() {
                let _ = tx.send(audio_frame.clone());
            }
        }
        Ok(())
    })();
    drop(video_tx);
    drop(audio_tx);
    let results: Vec<Result<Encoded, TranscodeError>> = workers
        .into_iter()
        .map(|w| {
            w.join().unwrap_or_else(|_| {
                Err(TranscodeError::Encode("an encoder thread panicked".into()))
            })
        })
        .collect();
    decode_result?;
    let mut encoded = Vec::new();
    for r in results {
        encoded.push(r?);
    }
    if frames == 0 {
        return Err(TranscodeError::Corrupt(
            "no video frame could be decoded".into(),
        ));
    }
    // A truncated file often still demuxes cleanly: compare what was decoded
    // with what the container promised.
    let decoded_seconds = last_pts.map_or(0.0, |p| p as f64 * f64::from(video_tb))
        - input
            .stream(probe.video_index)
            .map_or(0.0, |s| s.start_time() as f64 * f64::from(video_tb));
    if probe.duration > 0.0 && decoded_seconds + 1.0 + 2.0 / fps < probe.duration {
        return Err(TranscodeError::Corrupt(format!(
            "decoded {decoded_seconds:.2} s of the {:.2} s the container declares",
            probe.duration
        )));
    }
    progress(Progress {
        frames,
        total_frames: frames,
        fps: frames as f64 / started.elapsed().as_secs_f64().max(0.001),
    });

    let mut videos = Vec::new();
    let mut audio = None;
    for e in encoded {
        let dir = staging.path().join(&e.name);
        let r = Rendition::read(&dir, e)?;
        if let (Some(_), Some(iframes)) = (r.encoded.size, r.iframe_playlist()) {
            std::fs::write(dir.join("iframes.m3u8"), iframes)
                .map_err(|e| io("writing iframes.m3u8", e))?;
        }
        if r.encoded.size.is_some() {
            videos.push(r);
        } else {
            audio = Some(r);
        }
    }
    if let (Some(frame), Some((w, h))) =
        (&poster_frame, videos.first().and_then(|v| v.encoded.size))
    {
        crate::poster::write(frame, w, h, &staging.path().join("poster.jpg"))?;
    }
    let master = package::master_playlist(&videos, audio.as_ref(), fps);
    std::fs::write(staging.path().join("master.m3u8"), master)
        .map_err(|e| io("writing master.m3u8", e))?;
    let mpd = package::mpd(
        &videos,
        audio.as_ref(),
        probe.frame_rate,
        opts.segment_seconds,
    );
    std::fs::write(staging.path().join("manifest.mpd"), mpd)
        .map_err(|e| io("writing manifest.mpd", e))?;
    let dir = staging.target().to_path_buf();
    store.publish(staging)?;
    Ok(Summary {
        dir,
        videos,
        audio,
        encoder: encoder.name(),
    })
}

fn spawn(
    name: &str,
    f: impl FnOnce() -> Result<Encoded, TranscodeError> + Send + 'static,
) -> Result<Worker, TranscodeError> {
    std::thread::Builder::new()
        .name(format!("sg-enc-{name}"))
        .spawn(f)
        .map_err(|e| io("starting an encoder thread", e))
}

/// The video stream's own declared length, when the container has one.
fn video_stream_seconds(input: &ff::format::context::Input, index: usize) -> Option<f64> {
    let stream = input.stream(index)?;
    (stream.duration() > 0).then(|| stream.duration() as f64 * f64::from(stream.time_base()))
}
