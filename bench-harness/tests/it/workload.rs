//! The generator: determinism, mixes, distributions.

use std::collections::{HashMap, HashSet};

use bench_harness::workload::zipf::{Permutation, ScrambledZipfian, Zipfian, fnv_hash64};
use bench_harness::workload::{KeyCodec, Op, StreamPlan, ValuePool};
use bench_harness::{Mix, Workload};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn plan(name: &str, ops: u64, threads: usize, seed: u64) -> StreamPlan {
    StreamPlan {
        workload: Workload::named(name).expect("built-in workload"),
        ops,
        threads,
        key_count: 10_000,
        insert_base: 10_000,
        seed,
        value_offsets: 1 << 20,
    }
}

/// Every operation of a plan as the bytes an engine would receive.
fn traffic(plan: &StreamPlan, pool: &ValuePool) -> Vec<Vec<u8>> {
    let codec = KeyCodec::new(16);
    let mut out = Vec::new();
    for stream in plan.streams() {
        for op in stream {
            let mut key = Vec::new();
            let mut bytes = format!("{op:?}").into_bytes();
            match op {
                Op::Put { key: id, value } | Op::ReadModifyWrite { key: id, value } => {
                    codec.encode(id, &mut key);
                    bytes.extend_from_slice(&key);
                    bytes.extend_from_slice(pool.value(value));
                }
                Op::GetMissing { key: id } => {
                    codec.encode_missing(id, &mut key);
                    bytes.extend_from_slice(&key);
                }
                Op::Get { key: id } | Op::Delete { key: id } | Op::Scan { start: id, .. } => {
                    codec.encode(id, &mut key);
                    bytes.extend_from_slice(&key);
                }
            }
            out.push(bytes);
        }
    }
    out
}

#[test]
fn same_seed_gives_the_same_bytes() {
    let pool = ValuePool::new(100, 7);
    for name in [
        "fillrandom",
        "overwrite",
        "ycsb-a",
        "ycsb-d",
        "ycsb-e",
        "readwhilewriting",
    ] {
        let a = traffic(&plan(name, 5_000, 2, 99), &pool);
        let b = traffic(&plan(name, 5_000, 2, 99), &ValuePool::new(100, 7));
        let c = traffic(&plan(name, 5_000, 2, 100), &pool);
        assert_eq!(a, b, "{name}: same seed, different traffic");
        assert_ne!(a, c, "{name}: different seeds, same traffic");
    }
}

#[test]
fn value_pool_is_seeded() {
    let (a, b, c) = (
        ValuePool::new(64, 1),
        ValuePool::new(64, 1),
        ValuePool::new(64, 2),
    );
    assert_eq!(a.value(12_345), b.value(12_345));
    assert_ne!(a.value(12_345), c.value(12_345));
    assert_eq!(a.value(5).len(), 64);
    assert_ne!(a.value(5), a.value(6));
}

#[test]
fn fills_visit_every_key_once_across_threads() {
    for (name, threads) in [
        ("fillseq", 1),
        ("fillseq", 3),
        ("fillrandom", 1),
        ("fillrandom", 4),
    ] {
        let mut seen = HashSet::new();
        let mut last_per_stream = Vec::new();
        for stream in plan(name, 0, threads, 5).streams() {
            let ids: Vec<u64> = stream
                .map(|op| match op {
                    Op::Put { key, .. } => key,
                    other => panic!("{name} issued {other:?}"),
                })
                .collect();
            if name == "fillseq" {
                assert!(
                    ids.windows(2).all(|w| w[0] + 1 == w[1]),
                    "fillseq out of order"
                );
            }
            last_per_stream.push(ids.len());
            for id in ids {
                assert!(seen.insert(id), "{name} wrote key {id} twice");
            }
        }
        assert_eq!(seen.len(), 10_000, "{name} with {threads} threads");
    }
    let ids: Vec<u64> = plan("fillrandom", 0, 1, 5)
        .streams()
        .remove(0)
        .take(10)
        .map(|op| match op {
            Op::Put { key, .. } => key,
            _ => 0,
        })
        .collect();
    assert_ne!(
        ids,
        (0..10).collect::<Vec<_>>(),
        "fillrandom should not be sequential"
    );
}

#[test]
fn readseq_covers_the_key_space_in_order() {
    let mut next = 0;
    for op in plan("readseq", 0, 1, 1).streams().remove(0) {
        let Op::Scan { start, len } = op else {
            panic!("readseq issued {op:?}")
        };
        assert_eq!(start, next);
        next += u64::from(len);
    }
    assert_eq!(next, 10_000);
}

#[test]
fn permutation_is_a_bijection() {
    for n in [1u64, 2, 3, 7, 1000, 4097] {
        let perm = Permutation::new(n, 11);
        let image: HashSet<u64> = (0..n).map(|i| perm.apply(i)).collect();
        assert_eq!(image.len() as u64, n);
        assert!(image.iter().all(|x| *x < n));
    }
}

/// Fractions of each operation kind in a plan's traffic.
fn mix_of(plan: &StreamPlan) -> HashMap<&'static str, f64> {
    let mut counts: HashMap<&'static str, u64> = HashMap::new();
    let mut total = 0u64;
    for op in plan.streams().into_iter().flatten() {
        let kind = match op {
            Op::Put { key, .. } if key >= plan.insert_base => "insert",
            Op::Put { .. } => "update",
            Op::Get { .. } => "read",
            Op::GetMissing { .. } => "missing",
            Op::Delete { .. } => "delete",
            Op::Scan { .. } => "scan",
            Op::ReadModifyWrite { .. } => "rmw",
        };
        *counts.entry(kind).or_default() += 1;
        total += 1;
    }
    counts
        .into_iter()
        .map(|(k, v)| (k, v as f64 / total as f64))
        .collect()
}

fn assert_share(mix: &HashMap<&str, f64>, kind: &str, expected: f64) {
    let got = mix.get(kind).copied().unwrap_or(0.0);
    assert!((got - expected).abs() < 0.01, "{kind}: {got} vs {expected}");
}

#[test]
fn ycsb_mixes_match_the_core_workloads() {
    let cases: [(&str, &[(&str, f64)]); 6] = [
        ("ycsb-a", &[("read", 0.5), ("update", 0.5)]),
        ("ycsb-b", &[("read", 0.95), ("update", 0.05)]),
        ("ycsb-c", &[("read", 1.0)]),
        ("ycsb-d", &[("read", 0.95), ("insert", 0.05)]),
        ("ycsb-e", &[("scan", 0.95), ("insert", 0.05)]),
        ("ycsb-f", &[("read", 0.5), ("rmw", 0.5)]),
    ];
    for (name, shares) in cases {
        let mix = mix_of(&plan(name, 40_000, 2, 3));
        for (kind, share) in shares {
            assert_share(&mix, kind, *share);
        }
        let listed: f64 = shares.iter().map(|(_, s)| s).sum();
        assert!(
            (listed - 1.0).abs() < 1e-9,
            "{name} shares must cover every op"
        );
    }
}

#[test]
fn ycsb_e_scans_are_uniform_up_to_100() {
    let lens: Vec<u32> = plan("ycsb-e", 40_000, 1, 8)
        .streams()
        .into_iter()
        .flatten()
        .filter_map(|op| match op {
            Op::Scan { len, .. } => Some(len),
            _ => None,
        })
        .collect();
    assert!(lens.iter().all(|l| (1..=100).contains(l)));
    let mean = lens.iter().map(|l| f64::from(*l)).sum::<f64>() / lens.len() as f64;
    assert!((mean - 50.5).abs() < 1.0, "mean scan length {mean}");
    assert!(lens.contains(&1) && lens.contains(&100));
}

#[test]
fn inserts_use_fresh_ids_per_thread() {
    let p = plan("ycsb-d", 20_000, 3, 4);
    let mut inserted = HashSet::new();
    for op in p.streams().into_iter().flatten() {
        if let Op::Put { key, .. } = op {
            assert!(key >= p.insert_base && key < p.insert_base + p.insert_capacity());
            assert!(inserted.insert(key), "id {key} inserted twice");
        }
    }
    assert!(!inserted.is_empty());
}

#[test]
fn latest_prefers_the_newest_keys() {
    // YCSB D reads: most should land on recent inserts or the highest loaded ids.
    let p = plan("ycsb-d", 20_000, 1, 6);
    let reads: Vec<u64> = p
        .streams()
        .into_iter()
        .flatten()
        .filter_map(|op| match op {
            Op::Get { key } => Some(key),
            _ => None,
        })
        .collect();
    let recent = reads.iter().filter(|k| **k >= 9_000).count() as f64 / reads.len() as f64;
    assert!(
        recent > 0.75,
        "only {recent} of latest reads hit the newest 10%"
    );
}

#[test]
fn zipfian_matches_ycsb_skew() {
    // Gray et al.'s generator over 10^5 items with theta 0.99: rank 0 takes 1/zeta(n) = 7.83%,
    // the top 1% of ranks ~61% and the top 10% ~80% (the exact pmf gives 60.5% and 80.0%).
    let mut z = Zipfian::new(100_000);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let samples = 400_000;
    let ranks: Vec<u64> = (0..samples)
        .map(|_| z.next_rank(&mut rng, 100_000))
        .collect();
    let share = |pred: &dyn Fn(u64) -> bool| {
        ranks.iter().filter(|r| pred(**r)).count() as f64 / samples as f64
    };
    let top = share(&|r| r == 0);
    let top1 = share(&|r| r < 1_000);
    let top10 = share(&|r| r < 10_000);
    assert!((top - 0.0783).abs() < 0.003, "rank-0 share {top}");
    assert!((top1 - 0.613).abs() < 0.012, "top-1% share {top1}");
    assert!((top10 - 0.804).abs() < 0.012, "top-10% share {top10}");
    assert!(ranks.iter().all(|r| *r < 100_000));
}

#[test]
fn scrambled_zipfian_scatters_hot_keys() {
    let n = 10_000;
    let mut z = ScrambledZipfian::new(n);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut counts = vec![0u32; n as usize];
    let samples = 200_000;
    for _ in 0..samples {
        counts[z.next_id(&mut rng) as usize] += 1;
    }
    let mut hot: Vec<(u32, usize)> = counts.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    hot.sort_unstable_by(|a, b| b.cmp(a));
    // Rank 0 of 10^10 takes 1/26.47 = 3.8% of draws, and lands on fnv(0) mod n.
    assert_eq!(hot[0].1 as u64, fnv_hash64(0) % n);
    assert!(f64::from(hot[0].0) / f64::from(samples) > 0.035);
    let top10: Vec<usize> = hot.iter().take(10).map(|h| h.1).collect();
    let spread = top10.iter().max().unwrap() - top10.iter().min().unwrap();
    assert!(spread > n as usize / 4, "hot keys clustered: {top10:?}");
}

#[test]
fn fnv_matches_ycsb() {
    // Values of YCSB's Utils.fnvhash64 (FNV-1a over 8 bytes, Math.abs).
    assert_eq!(fnv_hash64(0), 6_284_781_860_667_377_211);
    assert_eq!(fnv_hash64(1), 8_517_097_267_634_966_620);
    assert_eq!(fnv_hash64(12_345), 1_792_800_413_050_876_852);
}

#[test]
fn keys_are_fixed_width_and_ordered() {
    let codec = KeyCodec::new(8);
    let (mut a, mut b, mut m) = (Vec::new(), Vec::new(), Vec::new());
    codec.encode(42, &mut a);
    codec.encode(1_000, &mut b);
    codec.encode_missing(42, &mut m);
    assert_eq!(a, b"00000042");
    assert!(a < b);
    assert_eq!(m.len(), 8);
    assert_ne!(m, a);
    assert!(codec.fits(99_999_999) && !codec.fits(100_000_000));
    for id in [0, 7, 10, 99, 12_345_678, u64::MAX] {
        let wide = KeyCodec::new(24);
        wide.encode(id, &mut a);
        assert_eq!(a, format!("{id:024}").into_bytes(), "{id}");
    }
    // An id wider than the key keeps all its digits (the suite refuses such ids up front).
    codec.encode(123_456_789, &mut a);
    assert_eq!(a, b"123456789");
}

#[test]
fn names_and_custom_mixes() {
    assert!(Workload::named("YCSB-A").is_ok());
    assert_eq!(
        Workload::named("scan").map(|w| w.name).ok(),
        Some("seekrandom".into())
    );
    let err = Workload::named("fillsideways").unwrap_err().to_string();
    assert!(err.contains("unknown workload 'fillsideways'") && err.contains("ycsb-f"));
    assert!(Mix::default().validate().is_err());
    let bad = Mix {
        read: -1.0,
        update: 2.0,
        ..Mix::default()
    };
    assert!(bad.validate().is_err());
    assert!(
        Mix {
            read: 1.0,
            ..Mix::default()
        }
        .validate()
        .is_ok()
    );
}

/// YCSB's default `insertorder=hashed`: new keys land all over the key space, not in a run
/// after the loaded keys; still fresh, still the same for the same seed.
#[test]
fn inserts_are_hashed_not_sequential() {
    let inserts = |seed| -> Vec<u64> {
        plan("ycsb-d", 20_000, 2, seed)
            .streams()
            .into_iter()
            .flatten()
            .filter_map(|op| match op {
                Op::Put { key, .. } => Some(key),
                _ => None,
            })
            .collect()
    };
    let ids = inserts(9);
    assert!(ids.len() > 500, "ycsb-d inserts about 5%");
    let ascending = ids.windows(2).filter(|w| w[1] > w[0]).count();
    let share = ascending as f64 / (ids.len() - 1) as f64;
    assert!(
        (0.3..0.7).contains(&share),
        "{share} of consecutive inserts ascend: sequential, not hashed"
    );
    assert_eq!(ids, inserts(9), "the same seed gives the same keys");
}

/// Under `latest`, every read targets a key that exists: loaded, or inserted earlier by the same
/// stream.
#[test]
fn latest_reads_only_existing_keys() {
    let p = plan("ycsb-d", 20_000, 3, 12);
    for stream in p.streams() {
        let mut inserted = HashSet::new();
        let mut hits_on_inserts = 0;
        for op in stream {
            match op {
                Op::Put { key, .. } => {
                    inserted.insert(key);
                }
                Op::Get { key } if key >= p.key_count => {
                    assert!(inserted.contains(&key), "read of {key} before its insert");
                    hits_on_inserts += 1;
                }
                _ => {}
            }
        }
        assert!(hits_on_inserts > 0, "latest never read a new key");
    }
}
