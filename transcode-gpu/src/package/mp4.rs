//! Just enough ISO-BMFF to read what the manifests need: a timescale, a
//! fragment's decode time, durations, first-sample offsets and codec strings.

/// Iterates the boxes in `data`: (offset of the box in `data`, type,
/// payload).
fn boxes_at(data: &[u8]) -> impl Iterator<Item = (usize, [u8; 4], &[u8])> {
    let mut offset = 0usize;
    std::iter::from_fn(move || {
        let rest = data.get(offset..)?;
        if rest.len() < 8 {
            return None;
        }
        let size32 = u32::from_be_bytes(rest[0..4].try_into().ok()?) as u64;
        let kind: [u8; 4] = rest[4..8].try_into().ok()?;
        let (header, size) = match size32 {
            1 => (16, u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?)),
            0 => (8, rest.len() as u64),
            n => (8, n),
        };
        let size = usize::try_from(size).ok()?;
        if size < header || size > rest.len() {
            return None;
        }
        let item = (offset, kind, &rest[header..size]);
        offset += size;
        Some(item)
    })
}

/// Iterates the boxes in `data`: (type, payload).
fn boxes(data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    boxes_at(data).map(|(_, kind, payload)| (kind, payload))
}

fn find<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> Option<&'a [u8]> {
    let (first, rest) = path.split_first()?;
    let (_, payload) = boxes(data).find(|(k, _)| k == *first)?;
    if rest.is_empty() {
        Some(payload)
    } else {
        find(payload, rest)
    }
}

/// `moov/trak/mdia/mdhd` timescale of the first track.
pub fn timescale(init: &[u8]) -> Option<u32> {
    let mdhd = find(init, &[b"moov", b"trak", b"mdia", b"mdhd"])?;
    let offset = if mdhd.first()? == &1 { 4 + 16 } else { 4 + 8 };
    Some(u32::from_be_bytes(
        mdhd.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// The 24 flag bits of a full box.
fn full_box_flags(payload: &[u8]) -> Option<u32> {
    Some(be32(payload, 0)? & 0x00ff_ffff)
}

/// A `traf`'s samples as `tfhd` defaults and its `trun`s describe them.
struct TrackFragment {
    /// (duration, size) of each sample, where known.
    samples: Vec<(Option<u32>, Option<u32>)>,
    /// The first `trun`'s data offset (from the `moof` start, as
    /// default-base-is-moof fragments have it).
    data_offset: Option<i32>,
}

fn track_fragment(traf: &[u8]) -> Option<TrackFragment> {
    let tfhd = boxes(traf).find(|(k, _)| k == b"tfhd")?.1;
    let tfhd_flags = full_box_flags(tfhd)?;
    // tfhd: version/flags, track_ID, then optional fields in flag order.
    let mut at = 8;
    let mut optional = |flag: u32, len: usize| {
        let value = (tfhd_flags & flag != 0).then(|| be32(tfhd, at)).flatten();
        if tfhd_flags & flag != 0 {
            at += len;
        }
        value
    };
    optional(0x01, 8); // base_data_offset
    optional(0x02, 4); // sample_description_index
    let default_duration = optional(0x08, 4);
    let default_size = optional(0x10, 4);

    let mut fragment = TrackFragment {
        samples: Vec::new(),
        data_offset: None,
    };
    for (_, trun) in boxes(traf).filter(|(k, _)| k == b"trun") {
        let flags = full_box_flags(trun)?;
        let count = be32(trun, 4)? as usize;
        let mut at = 8;
        if flags & 0x01 != 0 {
            let offset = be32(trun, at)? as i32;
            fragment.data_offset.get_or_insert(offset);
            at += 4;
        }
        if flags & 0x04 != 0 {
            at += 4; // first_sample_flags
        }
        for _ in 0..count {
            let mut field = |flag: u32| {
                let value = (flags & flag != 0).then(|| be32(trun, at));
                if flags & flag != 0 {
                    at += 4;
                }
                value
            };
            let duration = field(0x100).map_or(Some(default_duration), |v| v.map(Some))?;
            let size = field(0x200).map_or(Some(default_size), |v| v.map(Some))?;
            field(0x400); // sample_flags
            field(0x800); // composition time offset
            fragment.samples.push((duration, size));
        }
    }
    Some(fragment)
}

/// Sum of the sample durations of a fragment (`trun` per-sample
/// durations, else the `tfhd` default).
pub fn fragment_duration(segment: &[u8]) -> Option<u64> {
    let traf = find(segment, &[b"moof", b"traf"])?;
    track_fragment(traf)?
        .samples
        .iter()
        .map(|(duration, _)| duration.map(u64::from))
        .sum()
}

/// Bytes from the start of a segment to the end of its first sample
/// (the keyframe): what an I-frame playlist's BYTERANGE covers.
pub fn first_sample_end(segment: &[u8]) -> Option<u64> {
    let (moof_at, _, moof) = boxes_at(segment).find(|(_, k, _)| k == b"moof")?;
    let fragment = track_fragment(find(moof, &[b"traf"])?)?;
    let start = moof_at as i64 + i64::from(fragment.data_offset?);
    let first_size = fragment.samples.first()?.1?;
    u64::try_from(start + i64::from(first_size)).ok()
}

/// The RFC 6381 codec string of the first track's sample entry.
pub fn codec_string(init: &[u8]) -> Option<String> {
    let stsd = find(
        init,
        &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"],
    )?;
    let (kind, entry) = boxes(stsd.get(8..)?).next()?;
    match &kind {
        b"mp4a" => Some("mp4a.40.2".into()),
        // Visual sample entries: 78 bytes of fields before child boxes.
        b"avc1" | b"avc3" => {
            let (_, avcc) = boxes(entry.get(78..)?).find(|(k, _)| k == b"avcC")?;
            let entry = std::str::from_utf8(&kind).ok()?;
            Some(format!(
                "{entry}.{}",
                crate::codecs::avc_profile_level(avcc)?
            ))
        }
        b"av01" => {
            let (_, av1c) = boxes(entry.get(78..)?).find(|(k, _)| k == b"av1C")?;
            crate::codecs::av01(av1c)
        }
        _ => None,
    }
}

/// `moof/traf/tfdt` base media decode time of a fragment.
pub fn tfdt(segment: &[u8]) -> Option<u64> {
    let tfdt = find(segment, &[b"moof", b"traf", b"tfdt"])?;
    if tfdt.first()? == &1 {
        Some(u64::from_be_bytes(tfdt.get(4..12)?.try_into().ok()?))
    } else {
        Some(u64::from(u32::from_be_bytes(
            tfdt.get(4..8)?.try_into().ok()?,
        )))
    }
}

/// Where a fragment starts presenting, in timescale units: its `tfdt`
/// plus the first sample's composition offset (signed in a version 1
/// `trun`, as CMAF writes B-frame streams that start at zero).
pub fn first_presentation_ticks(segment: &[u8]) -> Option<i64> {
    let traf = find(segment, &[b"moof", b"traf"])?;
    let start = i64::try_from(tfdt(segment)?).ok()?;
    let (_, trun) = boxes(traf).find(|(k, _)| k == b"trun")?;
    let version = *trun.first()?;
    let flags = full_box_flags(trun)?;
    if flags & 0x800 == 0 {
        return Some(start); // no composition offsets: presentation = decode
    }
    // The first sample's fields follow the optional data offset and
    // first-sample flags.
    let mut at = 8;
    at += 4 * usize::from(flags & 0x01 != 0) + 4 * usize::from(flags & 0x04 != 0);
    at += 4 * [0x100, 0x200, 0x400]
        .iter()
        .filter(|&&f| flags & f != 0)
        .count();
    let raw = be32(trun, at)?;
    let offset = if version == 1 {
        i64::from(raw as i32)
    } else {
        i64::from(raw)
    };
    Some(start + offset)
}

#[cfg(test)]
mod tests {
    fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn reads_timescale_and_tfdt() {
        let mut mdhd = vec![0, 0, 0, 0];
        mdhd.extend_from_slice(&[0; 8]);
        mdhd.extend_from_slice(&15360u32.to_be_bytes());
        let init = bx(b"moov", &bx(b"trak", &bx(b"mdia", &bx(b"mdhd", &mdhd))));
        assert_eq!(super::timescale(&init), Some(15360));
        let mut tfdt = vec![1, 0, 0, 0];
        tfdt.extend_from_slice(&123_456u64.to_be_bytes());
        let seg = [
            bx(b"styp", b"cmfs"),
            bx(b"moof", &bx(b"traf", &bx(b"tfdt", &tfdt))),
        ]
        .concat();
        assert_eq!(super::tfdt(&seg), Some(123_456));
        assert_eq!(super::tfdt(&seg[..10]), None);
    }

    #[test]
    fn reads_sample_runs() {
        // tfhd: default-base-is-moof + default duration 1024.
        let mut tfhd = 0x0002_0008u32.to_be_bytes().to_vec();
        tfhd.extend_from_slice(&1u32.to_be_bytes()); // track_ID
        tfhd.extend_from_slice(&1024u32.to_be_bytes());
        // trun: data offset + per-sample sizes, two samples.
        let mut trun = 0x0000_0201u32.to_be_bytes().to_vec();
        trun.extend_from_slice(&2u32.to_be_bytes());
        trun.extend_from_slice(&100i32.to_be_bytes());
        trun.extend_from_slice(&10u32.to_be_bytes());
        trun.extend_from_slice(&20u32.to_be_bytes());
        let moof = bx(
            b"moof",
            &bx(b"traf", &[bx(b"tfhd", &tfhd), bx(b"trun", &trun)].concat()),
        );
        let seg = [bx(b"styp", b"cmfs"), moof].concat();
        assert_eq!(super::fragment_duration(&seg), Some(2048));
        // styp is 12 bytes: the moof starts there, samples 100 bytes later.
        assert_eq!(super::first_sample_end(&seg), Some(12 + 100 + 10));
        // Without a default duration and no per-sample durations: unknown.
        let mut no_default = 0x0002_0000u32.to_be_bytes().to_vec();
        no_default.extend_from_slice(&1u32.to_be_bytes());
        let bare = bx(
            b"moof",
            &bx(
                b"traf",
                &[bx(b"tfhd", &no_default), bx(b"trun", &trun)].concat(),
            ),
        );
        assert_eq!(super::fragment_duration(&bare), None);
    }

    #[test]
    fn first_presentation_is_decode_time_plus_signed_offset() {
        let mut tfdt = vec![1, 0, 0, 0];
        tfdt.extend_from_slice(&1000u64.to_be_bytes());
        // trun v1: durations + composition offsets; first offset -512.
        let mut trun = vec![1];
        trun.extend_from_slice(&0x000900u32.to_be_bytes()[1..]);
        trun.extend_from_slice(&1u32.to_be_bytes());
        trun.extend_from_slice(&512u32.to_be_bytes());
        trun.extend_from_slice(&(-512i32).to_be_bytes());
        let seg = bx(
            b"moof",
            &bx(b"traf", &[bx(b"tfdt", &tfdt), bx(b"trun", &trun)].concat()),
        );
        assert_eq!(super::first_presentation_ticks(&seg), Some(488));
        // Version 0: the same bits are unsigned.
        trun[0] = 0;
        let seg = bx(
            b"moof",
            &bx(b"traf", &[bx(b"tfdt", &tfdt), bx(b"trun", &trun)].concat()),
        );
        assert_eq!(
            super::first_presentation_ticks(&seg),
            Some(1000 + i64::from(u32::MAX - 511))
        );
    }
}
