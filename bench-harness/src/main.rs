//! Placeholder main job until the harness issue lands: runs a small workload against the
//! reference engine and prints its stats.

use engine_api::testing::RefEngine;
use engine_api::{CommonOptions, Engine, SyncPolicy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("bench-harness-{}", std::process::id()));
    let engine = RefEngine::open(
        &dir,
        CommonOptions {
            sync: SyncPolicy::Never,
            ..CommonOptions::default()
        },
    )?;
    for i in 0..10_000u32 {
        engine.put(format!("key{i:08}").as_bytes(), &[7; 100])?;
    }
    engine.sync()?;
    let stats = engine.stats();
    println!(
        "reference engine: {} writes, {} user bytes, {} bytes logged",
        stats.user_writes,
        stats.user_bytes_written,
        stats.io.total().bytes_written
    );
    drop(engine);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
