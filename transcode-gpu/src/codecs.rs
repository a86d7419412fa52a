//! RFC 6381 codec strings for HLS CODECS and DASH @codecs.

/// `avc1.PPCCLL` from H.264 extradata (avcC or Annex B SPS).
pub fn avc1(extradata: &[u8]) -> String {
    let sps = if extradata.first() == Some(&1) && extradata.len() >= 4 {
        Some(&extradata[1..4]) // avcC: profile, constraints, level
    } else {
        annex_b_sps(extradata)
    };
    match sps {
        Some(b) => format!("avc1.{:02x}{:02x}{:02x}", b[0], b[1], b[2]),
        None => "avc1.640028".into(), // High@4.0: the common default
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

/// The three bytes after the NAL header of the first SPS in Annex B data.
fn annex_b_sps(data: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    while i + 3 < data.len() {
        let start = if data[i..].starts_with(&[0, 0, 1]) {
            i + 3
        } else if data[i..].starts_with(&[0, 0, 0, 1]) {
            i + 4
        } else {
            i += 1;
            continue;
        };
        if data.get(start).is_some_and(|h| h & 0x1f == 7) && data.len() >= start + 4 {
            return Some(&data[start + 1..start + 4]);
        }
        i = start;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_profile_and_level() {
        assert_eq!(avc1(&[1, 0x64, 0x00, 0x1f, 0xff]), "avc1.64001f");
        assert_eq!(
            avc1(&[0, 0, 0, 1, 0x67, 0x64, 0x00, 0x28, 0xac, 0, 0, 1, 0x68]),
            "avc1.640028"
        );
        assert_eq!(avc1(&[0, 0, 1, 0x67, 0x4d, 0x40, 0x1e]), "avc1.4d401e");
        assert_eq!(avc1(&[]), "avc1.640028");
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
