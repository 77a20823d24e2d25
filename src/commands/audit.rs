//! `tutorlog audit verify`.

use crate::{backend, cli::StoreArgs};

/// Verifies every checksum and the hash chain; prints a summary. Any damage is an
/// error naming the file and byte offset (embedded) or the stream and revision
/// (KurrentDB).
pub async fn verify_log(data_dir: &std::path::Path, store: &StoreArgs) -> anyhow::Result<()> {
    let config = store.config();
    if config.store.backend == "embedded" {
        return verify_embedded(data_dir);
    }
    let handle = backend::open_reader(&config, data_dir).await?;
    let lines = handle.verify().await?;
    println!("{}: intact", handle.description());
    for line in lines {
        println!("  {line}");
    }
    Ok(())
}

fn verify_embedded(data_dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let dir = super::log_dir(data_dir);
    let report = tutorlog_store::embedded::verify::verify(&dir)
        .with_context(|| format!("verifying the log in {}", dir.display()))?;
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
        println!(
            "  note: unfinished write at the tail of {} offset {offset} ({reason}); a writer is appending, or the next open drops it",
            file.display()
        );
    }
    Ok(())
}
