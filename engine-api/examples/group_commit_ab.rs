//! Group commit with and without gathering, on this disk, paired: `N` closed-loop writers
//! append a record to one file and wait in `GroupCommit`, whose leader syncs (`fdatasync`).
//! Rounds of a fixed length alternate between gathering on and off, so both see the same
//! neighbours; it prints writes per second and writes per sync for each, median over rounds.
//!
//! ```text
//! cargo run --release -p engine-api --example group_commit_ab -- [DIR] [WRITERS] [ROUNDS] [ROUND_MS]
//! ```

use std::fs::File;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine_api::GroupCommit;

struct Log {
    file: Mutex<File>,
    appended: AtomicU64,
}

/// One round: `writers` threads for `length`; returns (writes per second, writes per sync).
fn round(dir: &std::path::Path, writers: usize, length: Duration, gather: bool) -> (f64, f64) {
    let path = dir.join("group-commit-ab.log");
    let log = Arc::new(Log {
        file: Mutex::new(File::create(&path).expect("create")),
        appended: AtomicU64::new(0),
    });
    let gc = Arc::new(if gather {
        GroupCommit::new(0)
    } else {
        GroupCommit::with_max_gather(0, Duration::ZERO)
    });
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|_| {
            let (log, gc, stop) = (log.clone(), gc.clone(), stop.clone());
            std::thread::spawn(move || {
                let record = [0x5Au8; 140];
                let mut writes = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let pos = {
                        let mut f = log.file.lock().expect("lock");
                        f.write_all(&record).expect("write");
                        log.appended.fetch_add(1, Ordering::SeqCst) + 1
                    };
                    gc.wait_durable(pos, || {
                        let end = log.appended.load(Ordering::SeqCst);
                        let f = log.file.lock().expect("lock").try_clone().expect("clone");
                        f.sync_data().expect("fdatasync");
                        Ok(end)
                    })
                    .expect("durable");
                    writes += 1;
                }
                writes
            })
        })
        .collect();
    std::thread::sleep(length);
    stop.store(true, Ordering::Relaxed);
    let writes: u64 = threads.into_iter().map(|t| t.join().expect("join")).sum();
    let seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    let syncs = gc.stats().syncs.max(1);
    #[expect(clippy::cast_precision_loss, reason = "rates")]
    (writes as f64 / seconds, writes as f64 / syncs as f64)
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or(default.to_string());
    let dir = std::path::PathBuf::from(arg(0, "/tmp"));
    let writers: usize = arg(1, "8").parse().expect("writers");
    let rounds: usize = arg(2, "6").parse().expect("rounds");
    let length = Duration::from_millis(arg(3, "1000").parse().expect("round ms"));
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        // Alternate which goes first, so neither always follows the other.
        for gather in if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        } {
            let r = round(&dir, writers, length, gather);
            if gather { on.push(r) } else { off.push(r) }
        }
    }
    for (name, rs) in [("gathering", on), ("no gathering", off)] {
        let (w, wmin, wmax) = median(rs.iter().map(|r| r.0).collect());
        let (g, gmin, gmax) = median(rs.iter().map(|r| r.1).collect());
        println!(
            "{writers} writers, {name:>12}: {w:8.0} writes/s ({wmin:.0}-{wmax:.0}), {g:.2} writes per sync ({gmin:.2}-{gmax:.2})"
        );
    }
}
