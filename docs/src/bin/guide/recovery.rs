//! Recovery time: how long each engine takes to open a directory, after a clean shutdown and
//! after a process crash (and, for Bitcask, with its hint files lost), measured here because the
//! comparison suite keeps each engine open for its whole run.
//!
//! The directories live in `SimStorage`, in memory, so the figures are the CPU cost of recovery
//! (decoding, checksumming, rebuilding the index); on a real disk add the time to read the bytes
//! listed, which the table shows.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bitcask_engine::{BitcaskEngine, BitcaskOptions};
use engine_api::{CommonOptions, CrashMode, Engine, IoClass, SimStorage, Storage, SyncPolicy};
use lsm_engine::{LsmEngine, LsmOptions};

/// Keys loaded before each measurement.
pub const KEYS: u64 = 200_000;
const VALUE: [u8; 100] = [b'v'; 100];
/// Opens per case; the table shows the median.
const REPEATS: usize = 3;

/// One measured case.
pub struct Case {
    engine: &'static str,
    case: &'static str,
    seconds: f64,
    bytes_read: u64,
    keys: u64,
}

type Opener = fn(&SimStorage) -> engine_api::Result<Box<dyn Engine>>;

fn dir() -> &'static Path {
    Path::new("/db")
}

fn common(sim: &SimStorage) -> CommonOptions {
    CommonOptions {
        sync: SyncPolicy::Never,
        storage: Arc::new(sim.clone()),
        ..CommonOptions::default()
    }
}

fn open_bitcask(sim: &SimStorage) -> engine_api::Result<Box<dyn Engine>> {
    let options = BitcaskOptions {
        common: common(sim),
        // As the harness sizes them: an eighth of the data set.
        max_file_size: (KEYS * 116 / 8).max(1 << 20),
        ..BitcaskOptions::default()
    };
    Ok(Box::new(BitcaskEngine::open(dir(), options)?))
}

fn open_lsm(sim: &SimStorage) -> engine_api::Result<Box<dyn Engine>> {
    let options = LsmOptions {
        common: common(sim),
        ..LsmOptions::default()
    };
    Ok(Box::new(LsmEngine::open(dir(), options)?))
}

/// Loads `KEYS` keys in a scrambled order and returns the storage, still open.
fn load(open: Opener) -> engine_api::Result<(SimStorage, Box<dyn Engine>)> {
    let sim = SimStorage::new();
    let engine = open(&sim)?;
    for i in 0..KEYS {
        // A multiplicative permutation of 0..KEYS (the multiplier is odd and KEYS is not a
        // multiple of it), so keys arrive in no particular order.
        let id = i.wrapping_mul(0x9E37_79B1) % KEYS;
        engine.put(format!("{id:016}").as_bytes(), &VALUE)?;
    }
    Ok((sim, engine))
}

/// Times opening copies of `image`; checks every key is there.
fn time_open(
    engine: &'static str,
    case: &'static str,
    image: &SimStorage,
    open: Opener,
) -> engine_api::Result<Case> {
    let mut runs = Vec::new();
    let mut last = None;
    for _ in 0..REPEATS {
        let copy = image.crash(CrashMode::KeepAll, 0);
        let started = Instant::now();
        let db = open(&copy)?;
        runs.push(started.elapsed().as_secs_f64());
        last = Some(db);
    }
    let db = last.ok_or_else(|| engine_api::Error::invalid("no repeat ran"))?;
    let stats = db.stats();
    if stats.live_keys != KEYS {
        return Err(engine_api::Error::invalid(format!(
            "{engine} {case}: {} keys after recovery, expected {KEYS}",
            stats.live_keys
        )));
    }
    runs.sort_by(f64::total_cmp);
    Ok(Case {
        engine,
        case,
        seconds: runs[REPEATS / 2],
        bytes_read: stats.io.class(IoClass::Recovery).bytes_read,
        keys: stats.live_keys,
    })
}

/// Removes every hint file: Bitcask must then scan its data files.
fn without_hints(image: &SimStorage) -> engine_api::Result<SimStorage> {
    let copy = image.crash(CrashMode::KeepAll, 0);
    for name in copy.list(dir())? {
        if name.ends_with(".hint") {
            copy.remove(&dir().join(name))?;
        }
    }
    Ok(copy)
}

/// Every case for both engines.
pub fn measure() -> engine_api::Result<Vec<Case>> {
    let mut cases = Vec::new();
    for (name, open) in [("bitcask", open_bitcask as Opener), ("lsm", open_lsm)] {
        let (sim, engine) = load(open)?;
        // A process crash: the OS kept every byte written, nothing was shut down.
        let crashed = sim.crash(CrashMode::KeepAll, 0);
        drop(engine);
        cases.push(time_open(name, "after a process crash", &crashed, open)?);
        // A clean shutdown, then an open.
        let (sim2, engine2) = load(open)?;
        drop(engine2);
        cases.push(time_open(name, "after a clean shutdown", &sim2, open)?);
        if name == "bitcask" {
            let bare = without_hints(&sim2)?;
            cases.push(time_open(
                name,
                "clean shutdown, hint files lost",
                &bare,
                open,
            )?);
        }
    }
    Ok(cases)
}

/// The cases as a Markdown table.
pub fn table(cases: &[Case]) -> String {
    let mut out = String::from(
        "| engine | case | open time ms | bytes read while opening | live keys after open |\n\
         |:---|:---|---:|---:|---:|\n",
    );
    for c in cases {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            c.engine,
            c.case,
            super::fixed(c.seconds * 1000.0),
            super::thousands(c.bytes_read),
            super::thousands(c.keys),
        ));
    }
    out
}
