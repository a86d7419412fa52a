//! RFC 6381 codec strings for HLS CODECS and DASH @codecs.

/// `PPCCLL` (profile, constraints, level) from an AVCDecoderConfigurationRecord
/// (`avcC`), for `avc1.`/`avc3.` codec strings.
pub fn avc_profile_level(avcc: &[u8]) -> Option<String> {
    match avcc {
        [1, profile, constraints, level, ..] => {
            Some(format!("{profile:02x}{constraints:02x}{level:02x}"))
        }
        _ => None,
    }
}

/// `av01.P.LLT.DD` from an AV1CodecConfigurationRecord (`av1C`).
pub fn av01(av1c: &[u8]) -> Option<String> {
    let (&b1, &b2) = (av1c.get(1)?, av1c.get(2)?);
    let profile = b1 >> 5;
    let level = b1 & 0x1f;
    let tier = if b2 & 0x80 != 0 { 'H' } else { 'M' };
    let depth = match (b2 & 0x40 != 0, b2 & 0x20 != 0) {
        (true, true) => 12,
        (true, false) => 10,
        _ => 8,
    };
    Some(format!("av01.{profile}.{level:02}{tier}.{depth:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_profile_and_level() {
        assert_eq!(
            avc_profile_level(&[1, 0x64, 0x00, 0x1f, 0xff]).as_deref(),
            Some("64001f")
        );
        assert_eq!(avc_profile_level(&[1, 0x4d, 0x40]), None);
        assert_eq!(avc_profile_level(&[0, 0x64, 0x00, 0x1f]), None);
    }

    #[test]
    fn reads_av1_configuration() {
        // Main profile, level 3.1 (index 5 → "05"), main tier, 8-bit.
        assert_eq!(
            av01(&[0x81, 0x05, 0x0c, 0x00]).as_deref(),
            Some("av01.0.05M.08")
        );
        assert_eq!(av01(&[0x81, 0x2d, 0xc0]).as_deref(), Some("av01.1.13H.10"));
        assert_eq!(av01(&[0x81]), None);
    }
}
