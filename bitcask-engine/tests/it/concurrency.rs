//! Readers and writers through repeated merges: every read returns a value written for that
//! key (never an error, never another key's value), and each writer sees its own writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use engine_api::{Engine, SimStorage, SyncPolicy};

use crate::common::{contents, open_tiny};

const WRITERS: u32 = 3;
const KEYS: u32 = 24;
const OPS: u32 = 1500;

fn key(t: u32, k: u32) -> Vec<u8> {
    format!("w{t}-k{k:02}").into_bytes()
}

fn value(t: u32, k: u32, n: u32) -> Vec<u8> {
    let mut v = format!("w{t}-k{k:02}-v{n}-").into_bytes();
    v.resize(40 + (n as usize % 90), b'.');
    v
}

fn writer(e: &dyn Engine, t: u32) -> Vec<Option<Vec<u8>>> {
    let mut mine = vec![None; KEYS as usize];
    for n in 0..OPS {
        let k = (n * 7 + t) % KEYS;
        if n % 11 == 5 {
            e.delete(&key(t, k)).unwrap();
            mine[k as usize] = None;
        } else {
            let v = value(t, k, n);
            e.put(&key(t, k), &v).unwrap();
            mine[k as usize] = Some(v);
        }
        let got = e.get(&key(t, k)).unwrap().map(|b| b.to_vec());
        assert_eq!(
            got, mine[k as usize],
            "writer {t} did not see its own write"
        );
    }
    mine
}

fn reader(e: &dyn Engine, done: &AtomicBool) -> u64 {
    let mut reads = 0u64;
    let mut n = 0u32;
    while !done.load(Ordering::Relaxed) || reads < 1000 {
        n = n.wrapping_add(13);
        let (t, k) = (n % WRITERS, n % KEYS);
        let got = e
            .get(&key(t, k))
            .unwrap_or_else(|err| panic!("read failed: {err}"));
        if let Some(v) = got {
            let prefix = format!("w{t}-k{k:02}-v");
            assert!(v.starts_with(prefix.as_bytes()), "read another key's value");
        }
        reads += 1;
    }
    reads
}

#[test]
fn readers_and_writers_through_repeated_merges() {
    let sim = SimStorage::new();
    let e: Arc<dyn Engine> = Arc::new(open_tiny(&sim, SyncPolicy::Never, true));
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (e, done) = (Arc::clone(&e), Arc::clone(&done));
            std::thread::spawn(move || reader(&*e, &done))
        })
        .collect();
    let merger = {
        let (e, done) = (Arc::clone(&e), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut merges = 0u64;
            while !done.load(Ordering::Relaxed) || merges < 3 {
                merges += e.compact().unwrap().jobs;
            }
            merges
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let e = Arc::clone(&e);
            std::thread::spawn(move || writer(&*e, t))
        })
        .collect();
    let finals: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    done.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() >= 1000);
    }
    assert!(merger.join().unwrap() >= 3, "too few merges ran");
    let check = |e: &dyn Engine| {
        let all = contents(e);
        for (t, mine) in finals.iter().enumerate() {
            for (k, want) in mine.iter().enumerate() {
                let (t, k) = (t as u32, k as u32);
                assert_eq!(
                    all.get(&key(t, k)),
                    want.as_ref(),
                    "final state of w{t}-k{k}"
                );
            }
        }
    };
    check(&*e);
    drop(e);
    let e = open_tiny(&sim, SyncPolicy::Never, true);
    check(&e);
}
