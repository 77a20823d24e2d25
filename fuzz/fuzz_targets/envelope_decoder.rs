//! Arbitrary payload bytes through `Event::decode` for every catalogue type, at its
//! current schema version, older ones (upcasters) and newer ones (refused).
//!
//! Input layout: byte 0 picks the catalogue entry, byte 1 the schema version
//! (`0..=current + 1`), the rest is the payload.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tutorlog_schemas::{events::CATALOGUE, Event};

fuzz_target!(|data: &[u8]| {
    let [pick, version, payload @ ..] = data else {
        return;
    };
    let (event_type, current) = CATALOGUE[usize::from(*pick) % CATALOGUE.len()];
    let version = u16::from(*version) % (current + 2);
    let Ok(event) = Event::decode(event_type, version, payload) else {
        return;
    };
    assert_eq!(event.event_type(), event_type);
    assert_eq!(event.schema_version(), current);
    let _ = event.to_json();
    // Re-encoding must be stable: encode(decode(encode(e))) == encode(e). (Not
    // encode(decode(bytes)) == bytes: a timestamp string may be normalised once.)
    let first = event.encode().expect("a decoded event re-encodes");
    let again = Event::decode(event_type, current, &first).expect("a re-encoded event decodes");
    assert_eq!(
        again.encode().expect("re-encode"),
        first,
        "re-encoding is not stable"
    );
});
