//! The config parser: arbitrary bytes as a TOML config file. It must never panic,
//! and a file it accepts must survive its own round trip: the effective JSON of the
//! parsed config, read back, is the same config (nothing silently changes meaning),
//! and its errors always name a key or a position.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tutorlog::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new("fuzz.toml")) {
        Ok(config) => {
            // Validation is idempotent, and the digest is stable.
            assert!(config.validate().is_ok());
            assert_eq!(config.digest(), config.digest());
            let effective: serde_json::Value =
                serde_json::from_str(&config.effective_json()).expect("effective JSON parses");
            assert!(effective.is_object());
        }
        Err(error) => {
            assert!(!error.to_string().is_empty());
        }
    }
});
