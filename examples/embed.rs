//! Embedding an engine: pick Bitcask or the LSM at run time, hold it as `Arc<dyn Engine>`, and
//! share it between threads. Host code written against the trait works with either.
//!
//! `cargo run -p docs --example embed -- lsm` (or `bitcask`, the default).

use std::sync::Arc;
use std::thread;

use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use engine_api::{Engine, KeyRange, WriteBatch};
use lsm_engine::{LsmEngine, LsmOptions};

/// Opens the named engine in `dir` with its default options (durable writes, real files).
fn open(name: &str, dir: &std::path::Path) -> engine_api::Result<Arc<dyn Engine>> {
    Ok(match name {
        "lsm" => Arc::new(LsmEngine::open(dir, LsmOptions::default())?),
        _ => Arc::new(BitcaskEngine::open(dir, BitcaskOptions::default())?),
    })
}

/// Runs the example.
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "bitcask".to_string());
    let dir = tempfile::tempdir()?;
    let db = open(&name, dir.path())?;

    // Four threads write their own keys at once; every write is durable when put returns.
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let db = Arc::clone(&db);
            thread::spawn(move || -> engine_api::Result<()> {
                for i in 0..25 {
                    db.put(format!("user:{t}:{i:02}").as_bytes(), b"active")?;
                }
                Ok(())
            })
        })
        .collect();
    for writer in writers {
        writer.join().map_err(|_| "writer thread panicked")??;
    }

    // A batch is atomic: both changes or neither, even across a crash.
    let mut batch = WriteBatch::new();
    batch.put(b"user:0:00", b"suspended").delete(b"user:0:01");
    db.write(&batch)?;

    assert_eq!(db.get(b"user:0:00")?.as_deref(), Some(&b"suspended"[..]));
    assert_eq!(db.get(b"user:0:01")?, None);

    // Scans are ordered, whatever the engine (Bitcask sorts what its hash index finds).
    let range = KeyRange::new(&b"user:1:"[..]..&b"user:2:"[..]);
    let users: Vec<_> = db.scan(range)?.collect::<Result<_, _>>()?;
    assert_eq!(users.len(), 25);
    println!(
        "{}: {} users in shard 1, first {:?}",
        db.name(),
        users.len(),
        String::from_utf8_lossy(&users[0].0)
    );
    Ok(())
}
