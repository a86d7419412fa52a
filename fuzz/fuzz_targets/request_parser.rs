//! Fuzzes everything the engine does with untrusted request bytes before
//! touching the file system: head parsing, target decoding, Range and
//! conditional evaluation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamgate_net::conditional::{self, Validators};
use streamgate_net::http1::request::{self, Limits, Parsed};
use streamgate_net::range::{self, RangeDecision};
use streamgate_net::target::{self, Target};

fuzz_target!(|data: &[u8]| {
    let small = Limits {
        max_request_line: 64,
        max_head_bytes: 256,
        max_headers: 4,
    };
    for limits in [Limits::default(), small] {
        let Ok(Parsed::Complete { request, head_len }) = request::parse(data, &limits) else {
            continue;
        };
        assert!(head_len <= data.len());
        // The head alone parses to the same request: nothing after it counted.
        match request::parse(&data[..head_len], &limits) {
            Ok(Parsed::Complete {
                request: again,
                head_len: len2,
            }) => {
                assert_eq!(again, request);
                assert_eq!(len2, head_len);
            }
            other => panic!("prefix re-parse differs: {other:?}"),
        }
        if let Ok(Target::Path(path)) = target::decode(request.target) {
            assert!(path.starts_with('/'));
            assert!(!path.split('/').any(|s| s == ".." || s == "."));
            assert!(!path.bytes().any(|b| b == 0 || b == b'\\'));
        }
        let len = data.len() as u64 * 31;
        if let Some(value) = request.fields.range {
            if let RangeDecision::Partial { start, end } = range::evaluate(value, len) {
                assert!(start <= end && end < len);
            }
        }
        let v = Validators::new(1, len, 1_700_000_000, 0);
        let _ = conditional::not_modified(
            request.fields.if_none_match,
            request.fields.if_modified_since,
            &v,
        );
        let _ = conditional::if_range_allows(request.fields.if_range, &v);
    }
});
