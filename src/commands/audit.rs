//! `tutorlog audit verify`.

use anyhow::Context;
use tutorlog_store::embedded::verify::verify;

/// Verifies every checksum and the hash chain; prints a summary. Any damage is an
/// error naming the file and byte offset.
pub fn verify_log(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let dir = super::log_dir(data_dir);
    let report = verify(&dir).with_context(|| format!("verifying the log in {}", dir.display()))?;
    println!("log {}: intact", dir.display());
    println!("  records        {}", report.records);
    println!("  streams        {}", report.streams);
    println!("  segments       {}", report.segments);
    println!(
        "  last position  {}",
        report
            .last_position
            .map_or("none (empty log)".to_string(), |p| p.to_string())
    );
    println!("  head hash      {}", report.head_hash);
    if let Some((file, offset, reason)) = report.unfinished_tail {
        println!("  note: unfinished write at the tail of {} offset {offset} ({reason}); a writer is appending, or the next open drops it", file.display());
    }
    Ok(())
}
