//! Arbitrary bytes through the log's read path: the frame reader
//! (`tutorlog_store::embedded::frame::read_frame`) over the input as a segment, and
//! the record decoder (`codec::decode_record` + `into_recorded`) over every frame body.
//!
//! CRC32C makes a valid frame unlikely from random bytes, so the input is also
//! wrapped in a correctly checksummed frame, which sends it to the record decoder.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tutorlog_schemas::codec::{self, RECORD_BODY_BYTES_MAX};
use tutorlog_store::embedded::frame::{encode_frame, read_frame, Frame, FRAME_HEADER_BYTES};

fn check_body(body: &[u8]) {
    let Ok(record) = codec::decode_record(body) else {
        return;
    };
    // Fixint bincode is canonical: what decodes must re-encode to the same bytes.
    let again = codec::encode_record(&record).expect("a decoded record re-encodes");
    assert_eq!(again, body, "decode/encode is not an identity");
    let _ = record.into_recorded();
}

/// Walks `data` as a segment: every step must move forward and stay in bounds.
fn walk(data: &[u8]) {
    let mut offset = 0usize;
    loop {
        match read_frame(data, offset) {
            Frame::Record { body, next } => {
                assert!(next > offset + FRAME_HEADER_BYTES && next <= data.len());
                assert_eq!(body.len(), next - offset - FRAME_HEADER_BYTES);
                check_body(body);
                offset = next;
            }
            Frame::End => break,
            Frame::Bad { extent_end, .. } => {
                assert!(extent_end > offset && extent_end <= data.len());
                break;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    walk(data);
    if !data.is_empty() && data.len() <= RECORD_BODY_BYTES_MAX {
        let mut framed = Vec::with_capacity(data.len() + FRAME_HEADER_BYTES);
        encode_frame(data, &mut framed);
        match read_frame(&framed, 0) {
            Frame::Record { body, next } => {
                assert_eq!(body, data);
                assert_eq!(next, framed.len());
            }
            other => panic!("a frame we just wrote reads as {other:?}"),
        }
        check_body(data);
    }
});
