//! Hot paths of the log, per record of a 256-byte payload: record body encode and
//! decode (hand-written since 2026-11-23; bincode before), frame encode and read
//! (CRC32C), and the BLAKE3 chain hash.
//!
//! The `proto/` entries measure the two wire-compatible alternatives to the
//! serde-derived codec that BENCHMARKS.md proposed (the second is now, in substance,
//! `codec::decode_record`; kept for comparison). They are checked to read and write
//! the very same bytes as `codec::encode_record`/`decode_record` before anything is
//! timed:
//! - `bytes`: the payload (de)serialized as a byte string instead of a sequence of
//!   `u8` (same bytes on the wire with bincode's fixint configuration);
//! - `manual`: a hand-written reader of the fixed `RecordBody` layout.

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use tutorlog_schemas::codec::{self, RecordBody, RECORD_FORMAT};
use tutorlog_store::embedded::frame::{encode_frame, read_frame, Frame};

fn sample() -> RecordBody {
    RecordBody {
        format: RECORD_FORMAT,
        prev_hash: [7; 32],
        position: 123_456_789,
        revision: 42,
        recorded_at_micros: 1_790_000_000_000_000,
        event_id: [1; 16],
        correlation_id: None,
        causation_id: Some([3; 16]),
        schema_version: 1,
        stream: "w-000001".into(),
        event_type: "bench.event".into(),
        payload: (0..256u32).map(|i| (i % 251) as u8).collect(),
    }
}

/// `RecordBody` with the payload as a serde byte string.
#[derive(Debug, Serialize, Deserialize)]
struct BytesBody {
    format: u8,
    prev_hash: [u8; 32],
    position: u64,
    revision: u64,
    recorded_at_micros: i64,
    event_id: [u8; 16],
    correlation_id: Option<[u8; 16]>,
    causation_id: Option<[u8; 16]>,
    schema_version: u16,
    stream: String,
    event_type: String,
    #[serde(with = "byte_buf")]
    payload: Vec<u8>,
}

/// Borrowing twin of [`BytesBody`] for encoding without cloning the event.
#[derive(Serialize)]
struct BytesBodyRef<'a> {
    format: u8,
    prev_hash: [u8; 32],
    position: u64,
    revision: u64,
    recorded_at_micros: i64,
    event_id: [u8; 16],
    correlation_id: Option<[u8; 16]>,
    causation_id: Option<[u8; 16]>,
    schema_version: u16,
    stream: &'a str,
    event_type: &'a str,
    #[serde(serialize_with = "byte_buf::serialize_slice")]
    payload: &'a [u8],
}

mod byte_buf {
    use serde::{de, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn serialize_slice<S: Serializer>(bytes: &&[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

/// A hand-written reader of the `RecordBody` layout (bincode, fixint, little endian).
fn manual_decode(bytes: &[u8]) -> Option<RecordBody> {
    struct R<'a>(&'a [u8]);
    impl<'a> R<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (head, tail) = self.0.split_at(n);
            self.0 = tail;
            Some(head)
        }
        fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
            self.take(N)?.try_into().ok()
        }
        fn u64(&mut self) -> Option<u64> {
            Some(u64::from_le_bytes(self.array()?))
        }
        fn option16(&mut self) -> Option<Option<[u8; 16]>> {
            match self.take(1)?[0] {
                0 => Some(None),
                1 => Some(Some(self.array()?)),
                _ => None,
            }
        }
        fn len(&mut self) -> Option<usize> {
            let len = usize::try_from(self.u64()?).ok()?;
            (len <= self.0.len()).then_some(len)
        }
        fn string(&mut self) -> Option<String> {
            let len = self.len()?;
            String::from_utf8(self.take(len)?.to_vec()).ok()
        }
    }
    let mut r = R(bytes);
    let body = RecordBody {
        format: r.take(1)?[0],
        prev_hash: r.array()?,
        position: r.u64()?,
        revision: r.u64()?,
        recorded_at_micros: i64::from_le_bytes(r.array()?),
        event_id: r.array()?,
        correlation_id: r.option16()?,
        causation_id: r.option16()?,
        schema_version: u16::from_le_bytes(r.array()?),
        stream: r.string()?,
        event_type: r.string()?,
        payload: {
            let len = r.len()?;
            r.take(len)?.to_vec()
        },
    };
    r.0.is_empty().then_some(body)
}

fn bytes_body(body: &RecordBody) -> BytesBodyRef<'_> {
    BytesBodyRef {
        format: body.format,
        prev_hash: body.prev_hash,
        position: body.position,
        revision: body.revision,
        recorded_at_micros: body.recorded_at_micros,
        event_id: body.event_id,
        correlation_id: body.correlation_id,
        causation_id: body.causation_id,
        schema_version: body.schema_version,
        stream: &body.stream,
        event_type: &body.event_type,
        payload: &body.payload,
    }
}

fn record(c: &mut Criterion) {
    let body = sample();
    let bytes = codec::encode_record(&body).expect("encode");
    let mut frame = Vec::new();
    encode_frame(&bytes, &mut frame);

    // The prototypes must be wire-compatible before their timings mean anything.
    assert_eq!(
        codec::encode(&bytes_body(&body)).expect("encode bytes"),
        bytes
    );
    let decoded: BytesBody = codec::decode(&bytes).expect("decode bytes");
    assert_eq!(decoded.payload, body.payload);
    assert_eq!(decoded.prev_hash, body.prev_hash);
    assert_eq!(manual_decode(&bytes).as_ref(), Some(&body));
    for cut in 0..bytes.len() {
        assert!(manual_decode(&bytes[..cut]).is_none());
    }

    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode_record", |b| {
        b.iter(|| codec::encode_record(black_box(&body)).expect("encode"))
    });
    group.bench_function("decode_record", |b| {
        b.iter(|| codec::decode_record(black_box(&bytes)).expect("decode"))
    });
    group.bench_function("decode_record+into_recorded", |b| {
        b.iter(|| {
            codec::decode_record(black_box(&bytes))
                .and_then(RecordBody::into_recorded)
                .expect("decode")
        })
    });
    group.bench_function("encode_record_into (reused buffer)", |b| {
        let mut out = Vec::with_capacity(bytes.len());
        let body = body.as_body_ref();
        b.iter(|| {
            out.clear();
            codec::encode_record_into(black_box(&body), &mut out)
        })
    });
    group.bench_function("encode_frame", |b| {
        let mut out = Vec::with_capacity(frame.len());
        b.iter(|| {
            out.clear();
            encode_frame(black_box(&bytes), &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("read_frame (crc)", |b| {
        b.iter(|| match read_frame(black_box(&frame), 0) {
            Frame::Record { next, .. } => next,
            _ => unreachable!("the frame is valid"),
        })
    });
    group.bench_function("blake3 chain hash", |b| {
        b.iter(|| blake3::hash(black_box(&bytes)))
    });
    group.bench_function("proto/bytes encode (borrowed body)", |b| {
        b.iter(|| codec::encode(&bytes_body(black_box(&body))).expect("encode"))
    });
    group.bench_function("proto/bytes decode", |b| {
        b.iter(|| codec::decode::<BytesBody>(black_box(&bytes)).expect("decode"))
    });
    group.bench_function("proto/manual decode", |b| {
        b.iter(|| manual_decode(black_box(&bytes)).expect("decode"))
    });
    group.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
