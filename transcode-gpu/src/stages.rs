//! The media backend, stage by stage: where decoding, scaling and encoding
//! each run, decided at run time per stage and never by model name. A
//! Hopper card (H100/H200) decodes and scales but has no NVENC; an L4 does
//! all three; a box without a GPU does none — so each stage is chosen on its
//! own, from what actually opens.
//!
//! This build runs decoding (libavcodec) and scaling (swscale) on the CPU;
//! NVDEC and `scale_cuda` plug in here as further [`DecodeStage`] and
//! [`ScaleStage`] variants. The encode stage is [`VideoEncoder`]: libx264,
//! or NVENC when a session opens.

use std::sync::Arc;

use ff::{frame, software};
use ffmpeg_next as ff;

use crate::backend::{GpuMode, VideoEncoder};
use crate::error::{encode, TranscodeError};

/// A decoded frame, shared by reference between the rungs that scale it:
/// sending one to every rung costs a reference count, not a copy.
pub type SharedFrame = Arc<frame::Video>;

/// Where frames are decoded.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeStage {
    /// libavcodec's software decoders.
    Cpu,
}

/// Where each rung is scaled to its size.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleStage {
    /// swscale, bicubic.
    Cpu,
}

/// One stage's GPU path on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuPath {
    /// This build has no GPU implementation of the stage yet.
    NotBuilt,
    /// The GPU path opened.
    Usable,
    /// The GPU path exists but did not open here, and why.
    Unusable(String),
}

/// What this machine offers each stage, probed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// NVDEC decoding.
    pub decode: GpuPath,
    /// CUDA scaling.
    pub scale: GpuPath,
    /// NVENC encoding.
    pub encode: GpuPath,
}

impl Capabilities {
    /// Nothing on the GPU (for `--gpu off`: nothing is probed).
    pub fn none() -> Self {
        Self {
            decode: GpuPath::NotBuilt,
            scale: GpuPath::NotBuilt,
            encode: GpuPath::NotBuilt,
        }
    }

    /// Probes this machine ([`crate::gpu::GpuReport`]: a CUDA device
    /// context, an NVENC session; model names decide nothing).
    pub fn probe() -> Self {
        Self::from_report(&crate::gpu::GpuReport::probe())
    }

    /// What a probe's findings allow each stage. Without a CUDA device no
    /// GPU stage can run, for the driver's reason. With one, decoding and
    /// scaling stay on the CPU until this build has their GPU paths
    /// (NVDEC, `scale_cuda`), and encoding is on the GPU when an NVENC
    /// session opened.
    pub fn from_report(report: &crate::gpu::GpuReport) -> Self {
        let without_device = |built: GpuPath| match &report.cuda_unusable {
            Some(why) => GpuPath::Unusable(why.clone()),
            None => built,
        };
        Self {
            decode: without_device(GpuPath::NotBuilt),
            scale: without_device(GpuPath::NotBuilt),
            encode: match &report.nvenc_unusable {
                None => GpuPath::Usable,
                Some(why) => GpuPath::Unusable(why.clone()),
            },
        }
    }
}

/// Where each stage of one transcode runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Decoding.
    pub decode: DecodeStage,
    /// Scaling.
    pub scale: ScaleStage,
    /// Encoding H.264 rungs.
    pub encode: VideoEncoder,
}

impl Plan {
    /// One line for people: where every stage runs.
    pub fn describe(&self) -> String {
        let encode = match self.encode {
            VideoEncoder::Nvenc => "h264_nvenc on the GPU",
            _ => "libx264 on the CPU",
        };
        format!("decode on the CPU (libavcodec), scale on the CPU (swscale), encode with {encode}")
    }
}

/// Chooses every stage for `mode` from `caps`: `Off` keeps all on the CPU;
/// `Auto` takes each GPU path that is usable; `Require` fails, naming the
/// stage and the reason, when a GPU path this build has cannot be used.
pub fn plan(mode: GpuMode, caps: &Capabilities) -> Result<Plan, TranscodeError> {
    let cpu = Plan {
        decode: DecodeStage::Cpu,
        scale: ScaleStage::Cpu,
        encode: VideoEncoder::X264,
    };
    if mode == GpuMode::Off {
        return Ok(cpu);
    }
    for (stage, path) in [
        ("decode", &caps.decode),
        ("scale", &caps.scale),
        ("encode", &caps.encode),
    ] {
        if let (GpuMode::Require, GpuPath::Unusable(why)) = (mode, path) {
            return Err(TranscodeError::GpuRequired(format!("{stage}: {why}")));
        }
    }
    Ok(Plan {
        encode: if caps.encode == GpuPath::Usable {
            VideoEncoder::Nvenc
        } else {
            VideoEncoder::X264
        },
        ..cpu
    })
}

/// Probes what `mode` needs and plans every stage, saying once per process
/// where the stages run when a GPU path is passed over.
pub fn choose(mode: GpuMode) -> Result<Plan, TranscodeError> {
    crate::init();
    if mode == GpuMode::Off {
        return plan(mode, &Capabilities::none());
    }
    let caps = Capabilities::probe();
    let chosen = plan(mode, &caps)?;
    if let GpuPath::Unusable(why) = &caps.encode {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            tracing::info!(
                reason = %why,
                stages = %chosen.describe(),
                "transcode: no usable GPU encoder; encoding with libx264 on the CPU"
            )
        });
    }
    Ok(chosen)
}

/// Scales decoded frames to one rung's size.
pub trait Scale: Send {
    /// Scales `input` into `output`.
    fn scale(
        &mut self,
        input: &frame::Video,
        output: &mut frame::Video,
    ) -> Result<(), TranscodeError>;
}

/// swscale, bicubic, to YUV 4:2:0.
struct SwScale(software::scaling::Context);

// SAFETY: the context is used by one rung's thread at a time; swscale
// contexts hold no thread affinity.
unsafe impl Send for SwScale {}

impl Scale for SwScale {
    fn scale(
        &mut self,
        input: &frame::Video,
        output: &mut frame::Video,
    ) -> Result<(), TranscodeError> {
        self.0.run(input, output).map_err(|e| encode("scaling", e))
    }
}

impl ScaleStage {
    /// A scaler from `(width, height, format)` of the source to `w`×`h`.
    pub fn scaler(
        self,
        src: (u32, u32, ff::format::Pixel),
        w: u32,
        h: u32,
    ) -> Result<Box<dyn Scale>, TranscodeError> {
        match self {
            Self::Cpu => {
                let (src_w, src_h, src_fmt) = src;
                let context = software::scaling::Context::get(
                    src_fmt,
                    src_w,
                    src_h,
                    ff::format::Pixel::YUV420P,
                    w,
                    h,
                    software::scaling::Flags::BICUBIC,
                )
                .map_err(|e| encode("creating the scaler", e))?;
                Ok(Box::new(SwScale(context)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(encode: GpuPath) -> Capabilities {
        Capabilities {
            decode: GpuPath::NotBuilt,
            scale: GpuPath::NotBuilt,
            encode,
        }
    }

    #[test]
    fn off_keeps_every_stage_on_the_cpu() {
        let p = plan(GpuMode::Off, &caps(GpuPath::Usable)).unwrap();
        assert_eq!(p.encode, VideoEncoder::X264);
        assert_eq!((p.decode, p.scale), (DecodeStage::Cpu, ScaleStage::Cpu));
    }

    #[test]
    fn auto_takes_each_usable_gpu_stage_and_falls_back_per_stage() {
        let gpu = plan(GpuMode::Auto, &caps(GpuPath::Usable)).unwrap();
        assert_eq!(gpu.encode, VideoEncoder::Nvenc);
        assert!(gpu.describe().contains("h264_nvenc on the GPU"));
        // A Hopper card: NVENC refuses to open; the CPU encodes.
        let hopper = caps(GpuPath::Unusable("NV_ENC_ERR_UNSUPPORTED_DEVICE".into()));
        let p = plan(GpuMode::Auto, &hopper).unwrap();
        assert_eq!(p.encode, VideoEncoder::X264);
        assert!(p.describe().contains("libx264 on the CPU"));
    }

    fn report(cuda: Option<&str>, nvenc: Option<&str>) -> crate::gpu::GpuReport {
        crate::gpu::GpuReport {
            devices: Vec::new(),
            cuda_unusable: cuda.map(str::to_string),
            nvdec: Vec::new(),
            nvenc_unusable: nvenc.map(str::to_string),
        }
    }

    #[test]
    fn each_stage_from_the_probe() {
        // No GPU: every stage unusable, for the driver's reason.
        let none = Capabilities::from_report(&report(
            Some("no CUDA device context (x)"),
            Some("no nvenc"),
        ));
        assert_eq!(
            none.decode,
            GpuPath::Unusable("no CUDA device context (x)".into())
        );
        assert_eq!(none.scale, none.decode);
        assert_eq!(none.encode, GpuPath::Unusable("no nvenc".into()));
        let auto = plan(GpuMode::Auto, &none).unwrap();
        assert_eq!(
            (auto.decode, auto.scale, auto.encode),
            (DecodeStage::Cpu, ScaleStage::Cpu, VideoEncoder::X264)
        );
        // `require` names the first stage that cannot run on the GPU.
        let err = plan(GpuMode::Require, &none).unwrap_err().to_string();
        assert!(err.contains("decode: no CUDA device context (x)"), "{err}");

        // A Hopper card: CUDA opens, NVENC refuses.
        let hopper =
            Capabilities::from_report(&report(None, Some("NV_ENC_ERR_UNSUPPORTED_DEVICE")));
        assert_eq!(
            (hopper.decode.clone(), hopper.scale.clone()),
            (GpuPath::NotBuilt, GpuPath::NotBuilt)
        );
        assert_eq!(
            plan(GpuMode::Auto, &hopper).unwrap().encode,
            VideoEncoder::X264
        );
        let err = plan(GpuMode::Require, &hopper).unwrap_err().to_string();
        assert!(
            err.contains("encode: NV_ENC_ERR_UNSUPPORTED_DEVICE"),
            "{err}"
        );

        // An L4: NVENC opens.
        let l4 = Capabilities::from_report(&report(None, None));
        assert_eq!(
            plan(GpuMode::Require, &l4).unwrap().encode,
            VideoEncoder::Nvenc
        );
    }

    #[test]
    fn require_names_the_stage_and_the_reason() {
        let none = caps(GpuPath::Unusable("no CUDA device".into()));
        let err = plan(GpuMode::Require, &none).unwrap_err().to_string();
        assert!(err.contains("encode: no CUDA device"), "{err}");
        let ok = plan(GpuMode::Require, &caps(GpuPath::Usable)).unwrap();
        assert_eq!(ok.encode, VideoEncoder::Nvenc);
    }
}
