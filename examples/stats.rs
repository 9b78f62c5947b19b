//! Reading an engine's statistics: user bytes, I/O per class counted at the storage seam, write
//! and space amplification, and the per-file detail, before and after a merge.
//!
//! `cargo run -p docs --example stats`

use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use engine_api::{CommonOptions, Engine, IoClass, Stats, SyncPolicy, ratio};

fn report(when: &str, stats: &Stats, live_bytes: u64) {
    let io = &stats.io;
    println!("{when}:");
    println!(
        "  user bytes {:>9}  log {:>9}  merge {:>9}  hints {:>9}",
        stats.user_bytes_written,
        io.class(IoClass::Log).bytes_written,
        io.class(IoClass::Compaction).bytes_written,
        io.class(IoClass::Hint).bytes_written,
    );
    let written = io.sum(&[IoClass::Log, IoClass::Compaction, IoClass::Hint]);
    println!(
        "  write amplification {:.2}, space amplification {:.2}, {} files, {} live keys",
        ratio(written.bytes_written, stats.user_bytes_written),
        ratio(stats.disk_bytes, live_bytes),
        stats.file_count,
        stats.live_keys,
    );
    for file in stats.files.iter().take(4) {
        let live = file
            .live_ratio()
            .map_or("?".into(), |r| format!("{:.0}%", r * 100.0));
        println!("    {} {} bytes, {live} live", file.name, file.bytes);
    }
}

/// Runs the example.
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let options = BitcaskOptions {
        common: CommonOptions {
            sync: SyncPolicy::Never,
            ..CommonOptions::default()
        },
        max_file_size: 64 << 10,
        ..BitcaskOptions::default()
    };
    let db = BitcaskEngine::open(dir.path(), options)?;
    let value = [b'v'; 100];
    // Every key written five times: four fifths of the log becomes garbage.
    for _round in 0..5 {
        for i in 0..1_000u32 {
            db.put(format!("key{i:06}").as_bytes(), &value)?;
        }
    }
    let live_bytes = 1_000 * (9 + 100);
    report("after 5 rounds of overwrites", &db.stats(), live_bytes);
    let summary = db.compact()?;
    println!(
        "merge: {} records in, {} out, {} stale dropped, {} files removed",
        summary.records_in, summary.records_out, summary.stale_dropped, summary.files_removed
    );
    let after = db.stats();
    report("after the merge", &after, live_bytes);
    assert!(after.disk_bytes < db.stats().io.class(IoClass::Log).bytes_written);
    Ok(())
}
