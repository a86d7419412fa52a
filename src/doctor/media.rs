//! The media stack: FFmpeg's codecs the pipeline needs, and the GPU
//! stages (opened, not guessed).

use streamgate_transcode_gpu::stages::{Capabilities, GpuPath};

use super::Finding;

pub fn checks() -> Vec<Finding> {
    vec![codecs(), gpu()]
}

fn codecs() -> Finding {
    match streamgate_transcode_gpu::probe::missing_codecs() {
        Ok(()) => Finding::ok(
            "ffmpeg",
            format!(
                "libavcodec {}: h264 decoder, libx264 and aac encoders present",
                streamgate_transcode_gpu::probe::libavcodec_version()
            ),
        ),
        Err(missing) => Finding::fail(
            "ffmpeg",
            format!("this FFmpeg lacks {}", missing.join(", ")),
            "install Debian's FFmpeg libraries (scripts/setup.sh)",
        ),
    }
}

fn gpu() -> Finding {
    let caps = Capabilities::probe();
    let said = |path: &GpuPath| match path {
        GpuPath::NotBuilt => "CPU (no GPU path in this build)".to_string(),
        GpuPath::Usable => "GPU".to_string(),
        GpuPath::Unusable(why) => format!("CPU ({why})"),
    };
    Finding::ok(
        "gpu",
        format!(
            "decode: {}; scale: {}; encode: {}",
            said(&caps.decode),
            said(&caps.scale),
            said(&caps.encode)
        ),
    )
}
