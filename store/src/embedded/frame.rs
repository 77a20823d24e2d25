//! Record framing on disk.
//!
//! | bytes | field                                               |
//! |-------|-----------------------------------------------------|
//! | 4     | `len`: body length, u32 little-endian, never 0       |
//! | 4     | `crc`: CRC32C over the 4 `len` bytes then the body   |
//! | len   | body: a [`tutorlog_schemas::codec::RecordBody`]      |
//!
//! A header of eight zero bytes marks the end of the data in the active segment
//! (the bytes after it were zero-filled ahead of time). The CRC covers `len` too, so
//! a flipped length bit is caught rather than read as a shorter record.

use tutorlog_schemas::codec::RECORD_BODY_BYTES_MAX;

/// Bytes in a frame header.
pub const FRAME_HEADER_BYTES: usize = 8;

const _: () = assert!(RECORD_BODY_BYTES_MAX < u32::MAX as usize);

/// Appends one frame holding `body` to `out`.
pub fn encode_frame(body: &[u8], out: &mut Vec<u8>) {
    assert!(
        !body.is_empty() && body.len() <= RECORD_BODY_BYTES_MAX,
        "record body size {} out of range",
        body.len()
    );
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&frame_crc(len, body).to_le_bytes());
    out.extend_from_slice(body);
}

/// Fills the frame header in front of `body` in place: `header` is the
/// [`FRAME_HEADER_BYTES`] reserved before the body in the same buffer. The result is
/// byte for byte what [`encode_frame`] writes, without copying the body.
pub fn fill_frame_header(header: &mut [u8], body: &[u8]) {
    assert!(
        !body.is_empty() && body.len() <= RECORD_BODY_BYTES_MAX,
        "record body size {} out of range",
        body.len()
    );
    assert_eq!(header.len(), FRAME_HEADER_BYTES, "frame header size");
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes();
    header[..4].copy_from_slice(&len);
    header[4..].copy_from_slice(&frame_crc(len, body).to_le_bytes());
}

fn frame_crc(len: [u8; 4], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len), body)
}

/// What lies at an offset of a segment buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A frame whose CRC checks.
    Record {
        /// The body.
        body: &'a [u8],
        /// Offset just past this frame.
        next: usize,
    },
    /// The end of the data: end of buffer, or an all-zero header.
    End,
    /// Not a valid frame.
    Bad {
        /// What is wrong.
        reason: String,
        /// Where the bad frame claims to end (at least past its header), clamped to
        /// the buffer: bytes after this belong to no frame we can see.
        extent_end: usize,
        /// The buffer ends inside this frame (a header or body cut short).
        cut_short: bool,
    },
}

/// Reads the frame starting at `offset` of `buf`.
pub fn read_frame(buf: &[u8], offset: usize) -> Frame<'_> {
    let rest = buf.get(offset..).unwrap_or(&[]);
    if rest.is_empty() {
        return Frame::End;
    }
    let Some(header) = rest.get(..FRAME_HEADER_BYTES) else {
        if rest.iter().all(|&b| b == 0) {
            return Frame::End;
        }
        return Frame::Bad {
            reason: format!(
                "header cut short ({} of {FRAME_HEADER_BYTES} bytes)",
                rest.len()
            ),
            extent_end: buf.len(),
            cut_short: true,
        };
    };
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&header[..4]);
    let mut crc_bytes = [0u8; 4];
    crc_bytes.copy_from_slice(&header[4..]);
    let len = u32::from_le_bytes(len_bytes) as usize;
    let crc = u32::from_le_bytes(crc_bytes);
    let header_end = offset + FRAME_HEADER_BYTES;
    if len == 0 {
        if crc == 0 {
            return Frame::End;
        }
        return Frame::Bad {
            reason: "zero length with a non-zero checksum".into(),
            extent_end: header_end,
            cut_short: false,
        };
    }
    if len > RECORD_BODY_BYTES_MAX {
        return Frame::Bad {
            reason: format!("length {len} exceeds the record limit {RECORD_BODY_BYTES_MAX}"),
            extent_end: header_end,
            cut_short: false,
        };
    }
    let Some(body) = buf.get(header_end..header_end + len) else {
        return Frame::Bad {
            reason: format!(
                "body cut short: {len} bytes declared, {} present",
                buf.len() - header_end
            ),
            extent_end: buf.len(),
            cut_short: true,
        };
    };
    if frame_crc(len_bytes, body) != crc {
        return Frame::Bad {
            reason: "checksum mismatch".into(),
            extent_end: header_end + len,
            cut_short: false,
        };
    }
    Frame::Record {
        body,
        next: header_end + len,
    }
}

/// Offset of the first valid frame starting after `offset`, if any. Used on the
/// error path only: a torn tail never has a good record after it.
pub fn next_valid_frame(buf: &[u8], offset: usize) -> Option<usize> {
    (offset + 1..buf.len().saturating_sub(FRAME_HEADER_BYTES))
        .find(|&candidate| matches!(read_frame(buf, candidate), Frame::Record { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_end_at_zeros() {
        let mut buf = Vec::new();
        encode_frame(b"hello", &mut buf);
        encode_frame(b"world!", &mut buf);
        buf.extend_from_slice(&[0; 32]);
        let Frame::Record { body, next } = read_frame(&buf, 0) else {
            panic!("first")
        };
        assert_eq!(body, b"hello");
        let Frame::Record { body, next } = read_frame(&buf, next) else {
            panic!("second")
        };
        assert_eq!(body, b"world!");
        assert_eq!(read_frame(&buf, next), Frame::End);
        assert_eq!(read_frame(&buf, buf.len()), Frame::End);
    }

    #[test]
    fn header_filled_in_place_matches_encode_frame() {
        for body in [&b"x"[..], b"hello world", &[7u8; 1000][..]] {
            let mut expected = Vec::new();
            encode_frame(body, &mut expected);
            let mut buf = vec![0u8; FRAME_HEADER_BYTES];
            buf.extend_from_slice(body);
            let (header, rest) = buf.split_at_mut(FRAME_HEADER_BYTES);
            fill_frame_header(header, rest);
            assert_eq!(buf, expected);
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut clean = Vec::new();
        encode_frame(b"the quick brown fox", &mut clean);
        for byte in 0..clean.len() {
            for bit in 0..8 {
                let mut buf = clean.clone();
                buf[byte] ^= 1 << bit;
                assert!(
                    matches!(read_frame(&buf, 0), Frame::Bad { .. }),
                    "flip at {byte}.{bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn truncations_are_bad_or_end() {
        let mut clean = Vec::new();
        encode_frame(b"payload", &mut clean);
        for cut in 1..clean.len() {
            assert!(
                matches!(read_frame(&clean[..cut], 0), Frame::Bad { .. }),
                "cut {cut}"
            );
        }
    }
}
