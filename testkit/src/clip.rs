//! Test clips made by the ffmpeg CLI from its `testsrc2` pattern and a sine
//! tone: one maker for the test suite and the benchmarks, so a source means
//! the same thing in both.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What to make; [`Clip::make`] writes it.
#[derive(Debug, Clone)]
pub struct Clip {
    size: String,
    seconds: u32,
    fps: u32,
    audio_rate: Option<u32>,
    audio_kbps: Option<u32>,
    preset: &'static str,
    crf: Option<u32>,
}

impl Clip {
    /// `seconds` of H.264 video at `size` (`WxH`), 25 fps, no audio,
    /// encoded fast (x264 `ultrafast`).
    pub fn new(size: &str, seconds: u32) -> Self {
        Self {
            size: size.to_string(),
            seconds,
            fps: 25,
            audio_rate: None,
            audio_kbps: None,
            preset: "ultrafast",
            crf: None,
        }
    }

    /// Frames per second.
    pub fn fps(mut self, fps: u32) -> Self {
        self.fps = fps;
        self
    }

    /// Adds an AAC sine tone sampled at `rate` Hz.
    pub fn audio(mut self, rate: u32) -> Self {
        self.audio_rate = Some(rate);
        self
    }

    /// The AAC bitrate (ffmpeg's default otherwise).
    pub fn audio_kbps(mut self, kbps: u32) -> Self {
        self.audio_kbps = Some(kbps);
        self
    }

    /// The x264 preset and, optionally, a constant quality.
    pub fn quality(mut self, preset: &'static str, crf: Option<u32>) -> Self {
        self.preset = preset;
        self.crf = crf;
        self
    }

    /// Writes the clip to `path`.
    pub fn make(&self, path: &Path) -> Result<PathBuf, String> {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={}:rate={}", self.size, self.fps));
        if let Some(rate) = self.audio_rate {
            cmd.args(["-f", "lavfi", "-i"])
                .arg(format!("sine=frequency=440:sample_rate={rate}"));
        }
        cmd.arg("-t").arg(self.seconds.to_string()).args([
            "-c:v",
            "libx264",
            "-preset",
            self.preset,
            "-pix_fmt",
            "yuv420p",
        ]);
        if let Some(crf) = self.crf {
            cmd.arg("-crf").arg(crf.to_string());
        }
        if self.audio_rate.is_some() {
            cmd.args(["-c:a", "aac"]);
            if let Some(kbps) = self.audio_kbps {
                cmd.arg("-b:a").arg(format!("{kbps}k"));
            }
            cmd.arg("-shortest");
        }
        let out = cmd
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run ffmpeg (install it with scripts/setup.sh): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ffmpeg could not make {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(path.to_path_buf())
    }
}
