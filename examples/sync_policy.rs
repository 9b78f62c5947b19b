//! Choosing a sync policy: what each one costs in syncs, and how `sync()` makes the buffered
//! policies durable on demand. `docs/durability.md` says what each promises after a crash.
//!
//! `cargo run -p docs --example sync_policy`

use std::time::Duration;

use engine_api::{CommonOptions, Engine, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions};

/// Writes 200 keys under `sync` and returns how many file syncs the storage saw.
fn syncs_for(sync: SyncPolicy) -> Result<u64, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let options = LsmOptions {
        common: CommonOptions {
            sync,
            ..CommonOptions::default()
        },
        ..LsmOptions::default()
    };
    let db = LsmEngine::open(dir.path(), options)?;
    let before = db.stats().io.total().syncs;
    for i in 0..200u32 {
        db.put(format!("key{i:04}").as_bytes(), b"value")?;
    }
    // Under Never and Periodic, this is the moment everything above becomes durable.
    db.sync()?;
    Ok(db.stats().io.total().syncs - before)
}

/// Runs the example.
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policies = [
        SyncPolicy::Always,
        SyncPolicy::Periodic(Duration::from_millis(100)),
        SyncPolicy::Never,
    ];
    for policy in policies {
        let syncs = syncs_for(policy)?;
        println!(
            "{:<16} {syncs:>4} syncs for 200 puts and one sync()",
            policy.label()
        );
        if policy == SyncPolicy::Always {
            // One writer: every put waits for its own sync.
            assert!(syncs >= 200);
        } else {
            assert!(syncs < 200);
        }
    }
    Ok(())
}
