//! One rendition's encoder thread: scale (video) or resample (audio),
//! encode, and package CMAF segments with FFmpeg's HLS muxer in fMP4 mode.
//!
//! The muxer cuts a segment at the first keyframe after each `hls_time`
//! boundary. Video keyframes are forced at exactly every `segment_seconds ×
//! fps` frames with scene-cut detection off and closed GOPs, so every video
//! rendition is cut at the same frames; the media playlist's EXTINF values
//! come from the packets' real timestamps.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;

use ff::{codec, encoder, format, frame, software, Dictionary, Packet, Rational};
use ffmpeg_next as ff;

use crate::backend::VideoEncoder;
use crate::error::{encode, TranscodeError};
use crate::ladder::Rung;
use crate::stages::{ScaleStage, SharedFrame};

/// Settings shared by every rendition of one transcode.
#[derive(Debug, Clone)]
pub struct Common {
    /// Segment length in seconds.
    pub segment_seconds: u32,
    /// Source frame rate (numerator, denominator).
    pub frame_rate: (i32, i32),
    /// Frames per GOP = per segment.
    pub gop: u32,
    /// x264 preset.
    pub preset: String,
}

/// What an encoder thread reports when done.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Directory name under the asset (`720p`, `audio`).
    pub name: String,
    /// Output size (video only).
    pub size: Option<(u32, u32)>,
    /// Target bitrate, bits per second.
    pub target_bps: u64,
    /// Exact media duration encoded, seconds (frames / fps, samples / rate).
    pub duration: f64,
}

/// One rendition's output: FFmpeg's HLS muxer in fMP4 mode writing
/// `dir/index.m3u8`, `init.mp4` and `<n>.m4s`, with the encoder's single
/// stream.
struct Muxer {
    octx: format::context::Output,
    encoder_tb: Rational,
    stream_tb: Rational,
    packet: Packet,
}

impl Muxer {
    /// Opens the muxer for an opened encoder and writes the header.
    /// `starts_at_zero`: the track's first frame presents at time 0 even
    /// though it decodes earlier (video with B-frames).
    fn start(
        dir: &Path,
        segment_seconds: u32,
        codec: ff::Codec,
        encoder: &impl AsRef<codec::Context>,
        encoder_tb: Rational,
        starts_at_zero: bool,
    ) -> Result<Self, TranscodeError> {
        let mut octx = format::output_as(&dir.join("index.m3u8"), "hls")
            .map_err(|e| encode("opening the HLS muxer", e))?;
        let mut opts = Dictionary::new();
        opts.set("hls_time", &segment_seconds.to_string());
        opts.set("hls_segment_type", "fmp4");
        opts.set("hls_fmp4_init_filename", "init.mp4");
        opts.set(
            "hls_segment_filename",
            &dir.join("%d.m4s").to_string_lossy(),
        );
        opts.set("hls_playlist_type", "vod");
        opts.set("hls_flags", "independent_segments");
        opts.set("start_number", "1");
        if starts_at_zero {
            // B-frames put the first decode time two frames before the
            // first presentation. Left to itself the muxer shifts the whole
            // track so decoding starts at 0, and the picture then starts at
            // 2/fps, after the audio: a hole hls.js seeks over. CMAF's way:
            // keep presentation at 0 and write signed composition offsets
            // (trun version 1), so the first frame presents at tfdt = 0.
            opts.set("avoid_negative_ts", "disabled");
            opts.set("hls_segment_options", "movflags=+negative_cts_offsets");
        }
        let mut ost = octx
            .add_stream(codec)
            .map_err(|e| encode("adding the output stream", e))?;
        ost.set_parameters(encoder);
        ost.set_time_base(encoder_tb);
        octx.write_header_with(opts)
            .map_err(|e| encode("writing the HLS header", e))?;
        let stream_tb = octx.stream(0).map(|s| s.time_base()).unwrap_or(encoder_tb);
        Ok(Self {
            octx,
            encoder_tb,
            stream_tb,
            packet: Packet::empty(),
        })
    }

    /// Writes every packet the encoder has ready.
    fn drain(&mut self, enc: &mut encoder::Encoder) -> Result<(), TranscodeError> {
        while enc.receive_packet(&mut self.packet).is_ok() {
            self.packet.set_stream(0);
            self.packet.rescale_ts(self.encoder_tb, self.stream_tb);
            self.packet
                .write_interleaved(&mut self.octx)
                .map_err(|e| encode("writing a packet", e))?;
        }
        Ok(())
    }

    /// Flushes `enc` and finishes the playlist.
    fn finish(mut self, enc: &mut encoder::Encoder) -> Result<(), TranscodeError> {
        enc.send_eof()
            .map_err(|e| encode("flushing the encoder", e))?;
        self.drain(enc)?;
        self.octx
            .write_trailer()
            .map_err(|e| encode("finishing the HLS output", e))
    }
}

/// Encodes one video rung from the decoded frames arriving on `frames`
/// (`None` ends the stream). Runs on its own thread.
pub fn video(
    dir: PathBuf,
    rung: Rung,
    src: (u32, u32, ff::format::Pixel, (u32, u32)),
    common: Common,
    (scale, backend): (ScaleStage, VideoEncoder),
    frames: Receiver<SharedFrame>,
) -> Result<Encoded, TranscodeError> {
    crate::lower_priority();
    let (src_w, src_h, src_fmt, sar) = src;
    let (w, h) = rung.size(src_w, src_h, sar);
    let codec = backend
        .find()
        .ok_or(TranscodeError::MissingCodec(backend.name()))?;
    let time_base = Rational(common.frame_rate.1, common.frame_rate.0);

    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| encode("video encoder", e))?;
    enc.set_width(w);
    enc.set_height(h);
    enc.set_format(ff::format::Pixel::YUV420P);
    enc.set_time_base(time_base);
    enc.set_frame_rate(Some(Rational(common.frame_rate.0, common.frame_rate.1)));
    enc.set_gop(common.gop);
    enc.set_max_b_frames(2);
    enc.set_bit_rate(rung.kbps as usize * 1000);
    enc.set_flags(codec::Flags::GLOBAL_HEADER);
    let mut opts = Dictionary::new();
    if backend.takes_vbv() {
        // Capped VBV: peaks at 110% of the target over a two-second buffer.
        enc.set_max_bit_rate(rung.kbps as usize * 1100);
        opts.set("bufsize", &(rung.kbps as usize * 2200).to_string());
    }
    backend.options(&mut opts, &common);
    let mut enc = enc.open_as_with(codec, opts).map_err(|e| {
        encode(
            &format!("opening {} for {}", backend.name(), rung.name()),
            e,
        )
    })?;

    let mut mux = Muxer::start(&dir, common.segment_seconds, codec, &enc, time_base, true)?;

    let mut scaler = scale.scaler((src_w, src_h, src_fmt), w, h)?;
    let mut scaled = frame::Video::empty();
    let mut index: i64 = 0;
    for frame in frames {
        scaler.scale(&frame, &mut scaled)?;
        // Constant frame rate: the n-th decoded frame is shown at n/fps.
        scaled.set_pts(Some(index));
        scaled.set_kind(ff::picture::Type::None);
        index += 1;
        enc.send_frame(&scaled).map_err(|e| encode("encoding", e))?;
        mux.drain(&mut enc)?;
    }
    mux.finish(&mut enc)?;
    Ok(Encoded {
        name: rung.name(),
        size: Some((w, h)),
        target_bps: u64::from(rung.kbps) * 1000,
        duration: index as f64 * f64::from(common.frame_rate.1) / f64::from(common.frame_rate.0),
    })
}

/// Output audio: AAC-LC, stereo, 48 kHz, 128 kb/s.
const AUDIO_RATE: i32 = 48_000;
const AUDIO_BPS: usize = 128_000;

/// Encodes the audio rendition from decoded frames arriving on `frames`.
///
/// With `video_seconds` (the video's length, when the container declares it)
/// audio is cut to end inside the video, so no sliver segment trails it.
pub fn audio(
    dir: PathBuf,
    segment_seconds: u32,
    frames: Receiver<frame::Audio>,
    video_seconds: Option<f64>,
) -> Result<Encoded, TranscodeError> {
    crate::lower_priority();
    let codec = encoder::find(codec::Id::AAC).ok_or(TranscodeError::MissingCodec("AAC"))?;
    let layout = ff::ChannelLayout::STEREO;
    let fmt = ff::format::Sample::F32(ff::format::sample::Type::Planar);
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .audio()
        .map_err(|e| encode("audio encoder", e))?;
    enc.set_rate(AUDIO_RATE);
    enc.set_channel_layout(layout);
    enc.set_format(fmt);
    enc.set_bit_rate(AUDIO_BPS);
    enc.set_time_base(Rational(1, AUDIO_RATE));
    enc.set_flags(codec::Flags::GLOBAL_HEADER);
    let mut enc = enc
        .open_as(codec)
        .map_err(|e| encode("opening the AAC encoder", e))?;
    let frame_size = enc.frame_size().max(1) as usize;
    let mut mux = Muxer::start(
        &dir,
        segment_seconds,
        codec,
        &enc,
        Rational(1, AUDIO_RATE),
        false,
    )?;

    let mut resampler: Option<software::resampling::Context> = None;
    let mut fifo: [Vec<f32>; 2] = [Vec::new(), Vec::new()];
    let mut next_pts: i64 = 0;
    let emit = |fifo: &mut [Vec<f32>; 2],
                n: usize,
                pts: i64,
                enc: &mut encoder::audio::Encoder,
                mux: &mut Muxer|
     -> Result<(), TranscodeError> {
        let mut out = frame::Audio::new(fmt, n, layout);
        out.set_rate(AUDIO_RATE as u32);
        for (ch, samples) in fifo.iter_mut().enumerate() {
            out.plane_mut::<f32>(ch)[..n].copy_from_slice(&samples[..n]);
            samples.drain(..n);
        }
        out.set_pts(Some(pts));
        enc.send_frame(&out)
            .map_err(|e| encode("encoding audio", e))?;
        mux.drain(enc)
    };
    let push = |fifo: &mut [Vec<f32>; 2], converted: &frame::Audio| {
        let n = converted.samples();
        for (ch, samples) in fifo.iter_mut().enumerate() {
            samples.extend_from_slice(&converted.plane::<f32>(ch)[..n]);
        }
    };
    // The track also holds the encoder's priming samples and, after the
    // flush, one more frame: stop on the last whole frame inside the video.
    let frame = frame_size as i64;
    let cap = video_seconds.map(|v| {
        let whole = (v * f64::from(AUDIO_RATE)).round() as i64 / frame * frame;
        (whole - frame - initial_padding(&enc)).max(0)
    });
    let room = |next_pts: i64| cap.map_or(i64::MAX, |c| (c - next_pts).max(0));
    // Input samples and rate, to cut the resampler's flush back to the
    // source's true length.
    let mut input_samples = 0u64;
    let mut input_rate = 0u32;
    for input in frames {
        if room(next_pts) == 0 {
            continue; // keep draining the queue so the decoder never blocks
        }
        input_samples += input.samples() as u64;
        input_rate = input.rate();
        let rs = match &mut resampler {
            Some(rs) => rs,
            None => {
                let in_layout = if input.channel_layout().is_empty() {
                    ff::ChannelLayout::default(i32::from(input.channels()))
                } else {
                    input.channel_layout()
                };
                resampler.insert(
                    software::resampling::Context::get(
                        input.format(),
                        in_layout,
                        input.rate(),
                        fmt,
                        layout,
                        AUDIO_RATE as u32,
                    )
                    .map_err(|e| encode("creating the resampler", e))?,
                )
            }
        };
        // Room for every output sample: a frame sized like the input would
        // leave the rate-conversion surplus queued inside swresample.
        let capacity = input.samples() * AUDIO_RATE as usize / input.rate().max(1) as usize + 64;
        let mut converted = frame::Audio::new(fmt, capacity, layout);
        rs.run(&input, &mut converted)
            .map_err(|e| encode("resampling", e))?;
        push(&mut fifo, &converted);
        while fifo[0].len() >= frame_size && room(next_pts) >= frame {
            emit(&mut fifo, frame_size, next_pts, &mut enc, &mut mux)?;
            next_pts += frame;
        }
    }
    if let Some(rs) = &mut resampler {
        loop {
            let mut tail = frame::Audio::new(fmt, 4096, layout);
            rs.flush(&mut tail)
                .map_err(|e| encode("flushing the resampler", e))?;
            if tail.samples() == 0 {
                break;
            }
            push(&mut fifo, &tail);
        }
    }
    let mut keep = room(next_pts);
    if input_rate > 0 {
        let source = (input_samples * AUDIO_RATE as u64 / u64::from(input_rate)) as i64;
        keep = keep.min((source - next_pts).max(0));
    }
    for samples in &mut fifo {
        samples.truncate(keep.clamp(0, samples.len() as i64) as usize);
    }
    while fifo[0].len() >= frame_size {
        emit(&mut fifo, frame_size, next_pts, &mut enc, &mut mux)?;
        next_pts += frame_size as i64;
    }
    if !fifo[0].is_empty() {
        let n = fifo[0].len();
        emit(&mut fifo, n, next_pts, &mut enc, &mut mux)?;
        next_pts += n as i64;
    }
    mux.finish(&mut enc)?;
    Ok(Encoded {
        name: "audio".into(),
        size: None,
        target_bps: AUDIO_BPS as u64,
        duration: next_pts as f64 / f64::from(AUDIO_RATE),
    })
}

/// Samples of priming the encoder puts before the first real sample.
fn initial_padding(enc: &encoder::audio::Encoder) -> i64 {
    // SAFETY: reading a plain integer field of an opened codec context.
    unsafe { i64::from((*enc.as_ptr()).initial_padding) }
}
