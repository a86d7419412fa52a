//! What this machine's NVIDIA GPU offers, asked of the driver through
//! FFmpeg rather than guessed from a model name: `streamgate gpu info`,
//! `streamgate doctor`, the engine's metrics, and the stage plan
//! ([`crate::stages::Capabilities`]).
//!
//! - **CUDA**: an FFmpeg CUDA device context is created (FFmpeg loads
//!   `libcuda` at run time, so this binary needs no CUDA to build or run).
//!   Without one, no GPU stage can run, and the reason is the driver's.
//! - **NVDEC**: which `*_cuvid` decoders this FFmpeg build has.
//! - **NVENC**: an encode session is opened (256×256); Hopper cards
//!   (H100/H200) refuse it with `NV_ENC_ERR_UNSUPPORTED_DEVICE`.
//! - **Devices**: listed from `/proc/driver/nvidia/gpus` for people to read;
//!   nothing is decided from them.

use ffmpeg_next as ff;
use serde::Serialize;

use crate::backend::{self, VideoEncoder};

/// NVDEC decoders FFmpeg may have, by the codec they decode.
const NVDEC: [(&str, &str); 4] = [
    ("h264", "h264_cuvid"),
    ("hevc", "hevc_cuvid"),
    ("av1", "av1_cuvid"),
    ("vp9", "vp9_cuvid"),
];

/// One GPU the driver lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// PCI bus id (`0000:01:00.0`).
    pub bus: String,
    /// What the driver calls it (for people: nothing is decided from it).
    pub model: String,
}

/// One NVDEC decoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NvdecDecoder {
    /// The codec (`h264`).
    pub codec: &'static str,
    /// FFmpeg's decoder (`h264_cuvid`).
    pub decoder: &'static str,
    /// Whether this FFmpeg build has it.
    pub in_build: bool,
}

/// The probe's findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuReport {
    /// GPUs the driver lists.
    pub devices: Vec<Device>,
    /// `None` when a CUDA device context opened; otherwise why not.
    pub cuda_unusable: Option<String>,
    /// NVDEC decoders in this FFmpeg build.
    pub nvdec: Vec<NvdecDecoder>,
    /// `None` when an NVENC session opened; otherwise why not.
    pub nvenc_unusable: Option<String>,
}

impl GpuReport {
    /// Probes this machine.
    pub fn probe() -> Self {
        crate::init();
        let devices = devices();
        let driver = std::path::Path::new("/proc/driver/nvidia").exists();
        Self {
            cuda_unusable: cuda_device().err().map(|why| {
                if driver {
                    why
                } else {
                    format!("no NVIDIA driver loaded (/proc/driver/nvidia is absent); {why}")
                }
            }),
            devices,
            nvdec: NVDEC
                .iter()
                .map(|&(codec, decoder)| NvdecDecoder {
                    codec,
                    decoder,
                    in_build: ff::decoder::find_by_name(decoder).is_some(),
                })
                .collect(),
            nvenc_unusable: backend::try_open(VideoEncoder::Nvenc).err(),
        }
    }

    /// Whether any GPU stage can run here.
    pub fn usable(&self) -> bool {
        self.cuda_unusable.is_none()
    }

    /// Lines for `streamgate gpu info`.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.devices.is_empty() {
            out.push("devices: none listed by an NVIDIA driver".to_string());
        }
        for d in &self.devices {
            out.push(format!("device: {} {}", d.bus, d.model));
        }
        out.push(match &self.cuda_unusable {
            None => "cuda: a device context opens".to_string(),
            Some(why) => format!("cuda: no GPU: {why}"),
        });
        let decoders: Vec<String> = self
            .nvdec
            .iter()
            .map(|d| {
                format!(
                    "{} ({})",
                    d.decoder,
                    if d.in_build {
                        "in FFmpeg"
                    } else {
                        "not in this FFmpeg"
                    }
                )
            })
            .collect();
        out.push(format!("nvdec: {}", decoders.join(", ")));
        out.push(match &self.nvenc_unusable {
            None => "nvenc: a session opens".to_string(),
            Some(why) => format!("nvenc: unusable: {why}"),
        });
        out
    }
}

/// Creates (and releases) an FFmpeg CUDA device context.
fn cuda_device() -> Result<(), String> {
    let mut device: *mut ff::ffi::AVBufferRef = std::ptr::null_mut();
    // FFmpeg logs the driver's refusal itself; keep the probe quiet.
    let level = ff::log::get_level();
    ff::log::set_level(ff::log::Level::Quiet);
    // SAFETY: a valid out pointer; null device name, options and flags 0
    // ask for the default device. The context is released below.
    let rc = unsafe {
        ff::ffi::av_hwdevice_ctx_create(
            &mut device,
            ff::ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA,
            std::ptr::null(),
            std::ptr::null_mut(),
            0,
        )
    };
    if let Ok(level) = level {
        ff::log::set_level(level);
    }
    if rc < 0 {
        return Err(format!("no CUDA device context ({})", ff::Error::from(rc)));
    }
    // SAFETY: `device` is the reference av_hwdevice_ctx_create returned.
    unsafe { ff::ffi::av_buffer_unref(&mut device) };
    Ok(())
}

/// GPUs listed by the NVIDIA driver (`/proc/driver/nvidia/gpus/<bus>/information`).
fn devices() -> Vec<Device> {
    let Ok(entries) = std::fs::read_dir("/proc/driver/nvidia/gpus") else {
        return Vec::new();
    };
    let mut found: Vec<Device> = entries
        .flatten()
        .map(|e| {
            let model = std::fs::read_to_string(e.path().join("information"))
                .ok()
                .and_then(|text| {
                    text.lines()
                        .find_map(|l| l.strip_prefix("Model:").map(|m| m.trim().to_string()))
                })
                .unwrap_or_default();
            Device {
                bus: e.file_name().to_string_lossy().into_owned(),
                model,
            }
        })
        .collect();
    found.sort_by(|a, b| a.bus.cmp(&b.bus));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_says_what_it_found_and_why() {
        let report = GpuReport::probe();
        assert_eq!(report.nvdec.len(), 4);
        let lines = report.lines().join("\n");
        if std::path::Path::new("/proc/driver/nvidia/gpus").exists() {
            // A GPU box (bench/gpu.sh checks the rest there).
            assert!(!report.devices.is_empty(), "{lines}");
            return;
        }
        // No driver (this VM, CI): "no GPU", with FFmpeg's reason, and no
        // stage usable.
        assert!(!report.usable());
        assert!(report.devices.is_empty());
        assert!(lines.contains("devices: none"), "{lines}");
        assert!(
            lines.contains("cuda: no GPU: no NVIDIA driver loaded")
                && lines.contains("no CUDA device context ("),
            "{lines}"
        );
        assert!(lines.contains("nvenc: unusable"), "{lines}");
    }
}
