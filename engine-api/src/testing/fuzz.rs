//! Stable-toolchain side of fuzzing: replay a checked-in corpus through a fuzz body, each seed
//! followed by deterministic mutations of it, and the body of the model target.
//!
//! The cargo-fuzz crate in `fuzz/` has one target per decoder; each target's body is a plain
//! `fn(&[u8])` in its engine (`<engine>::fuzzing`). An engine's ordinary test calls [`replay`]
//! on `fuzz/corpus/<target>/` with the same body, so every CI run feeds it the corpus and a few
//! hundred mutations per seed (bit flips, byte overwrites, cuts, insertions, splices with
//! another seed), without nightly. A panic fails the test naming the seed, the mutation and
//! the input. [`MUTATIONS_ENV`] raises the mutation count for a longer run; with
//! [`WRITE_ENV`] set, engines' corpus tests (re)write their seeds, generated from files a real
//! workload produced, before replaying.
//!
//! [`model`] is the model target's body: the input is decoded into a policy and a sequence of
//! [`Step`]s (puts, deletes, batches, reads, scans, syncs, reopens, compactions, simulated
//! crashes), which [`super::model::execute`] runs against the engine and a `BTreeMap`.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use super::EngineFactory;
use super::model::{Step, execute};
use super::rng::Rng;
use crate::{CrashMode, SyncPolicy};

/// Mutations per seed, overriding the caller's count: the longer tier.
pub const MUTATIONS_ENV: &str = "FUZZ_MUTATIONS";
/// When set, engines' corpus tests write their generated seeds into `fuzz/corpus/`.
pub const WRITE_ENV: &str = "FUZZ_CORPUS_WRITE";

/// What a replay ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// The fuzz target.
    pub target: String,
    /// Seeds in the corpus.
    pub seeds: u64,
    /// Inputs fed to the body: seeds and mutations.
    pub executions: u64,
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fuzz corpus {}: {} seeds, {} executions without a panic",
            self.target, self.seeds, self.executions
        )
    }
}

/// `fuzz/corpus/<target>` under the workspace root `root`.
pub fn corpus_dir(root: &Path, target: &str) -> PathBuf {
    root.join("fuzz").join("corpus").join(target)
}

/// Feeds every seed in `dir`, each followed by `mutations` mutations of it (or
/// [`MUTATIONS_ENV`] many), to `body`.
///
/// # Errors
/// A missing or empty corpus, or the first input that panicked: its seed file, mutation
/// number, the panic message and the input's first bytes in hex.
pub fn replay(
    target: &str,
    dir: &Path,
    mutations: u32,
    body: &dyn Fn(&[u8]),
) -> Result<ReplayReport, String> {
    let mutations = std::env::var(MUTATIONS_ENV)
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(mutations);
    let seeds = read_seeds(dir)?;
    let mut report = ReplayReport {
        target: target.to_string(),
        seeds: seeds.len() as u64,
        executions: 0,
    };
    for (i, (name, seed)) in seeds.iter().enumerate() {
        let other = &seeds[(i + 1) % seeds.len()].1;
        for m in 0..=mutations {
            let input = if m == 0 {
                seed.clone()
            } else {
                mutate(seed, other, (i as u64) << 32 | u64::from(m))
            };
            run_one(body, &input).map_err(|panic| {
                format!(
                    "{target}: seed {name}, mutation {m} panicked: {panic}\n input ({} bytes): {}",
                    input.len(),
                    hex(&input)
                )
            })?;
            report.executions += 1;
        }
    }
    Ok(report)
}

fn read_seeds(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("corpus {}: {e}", dir.display()))?;
    let mut seeds = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_file() {
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            seeds.push((name.unwrap_or_default(), bytes));
        }
    }
    seeds.sort();
    if seeds.is_empty() {
        return Err(format!("corpus {} is empty", dir.display()));
    }
    Ok(seeds)
}

fn run_one(body: &dyn Fn(&[u8]), input: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| body(input))).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "a panic without a message".to_string())
    })
}

fn hex(bytes: &[u8]) -> String {
    let shown: String = bytes.iter().take(256).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 256 {
        format!("{shown}...")
    } else {
        shown
    }
}

/// One to four random edits of `input`: flip a bit, set a byte to an edge value, cut the tail,
/// insert random bytes, overwrite a run with zeros, duplicate a run, or splice in part of
/// `other`. Deterministic in `seed`.
pub fn mutate(input: &[u8], other: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        edit(&mut out, other, &mut rng);
    }
    out
}

fn edit(out: &mut Vec<u8>, other: &[u8], rng: &mut Rng) {
    let at = rng.index(out.len() + 1);
    match rng.below(7) {
        0 if at < out.len() => out[at] ^= 1 << rng.below(8),
        1 if at < out.len() => {
            out[at] = [0x00, 0x01, 0x7f, 0x80, 0xff][rng.index(5)];
        }
        2 => out.truncate(at),
        3 => {
            let n = 1 + rng.index(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next().to_le_bytes()[0]).collect();
            out.splice(at..at, bytes);
        }
        4 => {
            let end = (at + 1 + rng.index(16)).min(out.len());
            if let Some(run) = out.get_mut(at..end) {
                run.fill(0);
            }
        }
        5 if at < out.len() => {
            let end = (at + 1 + rng.index(32)).min(out.len());
            let run = out[at..end].to_vec();
            out.splice(at..at, run);
        }
        _ => {
            let from = rng.index(other.len() + 1);
            let end = (from + rng.index(64)).min(other.len());
            out.splice(at.min(out.len()).., other[from..end].iter().copied());
        }
    }
}

/// Writes `seeds` into `dir` (created if missing), named by a hash of their contents so that
/// rewriting gives the same names. Returns how many were written.
///
/// # Errors
/// I/O errors.
pub fn write_seeds(dir: &Path, seeds: &[Vec<u8>]) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    for seed in seeds {
        let name = format!("seed-{:016x}-{}", fnv1a(seed), seed.len());
        std::fs::write(dir.join(name), seed)?;
    }
    Ok(seeds.len())
}

/// FNV-1a, 64 bits. Not CRC-32: a record that ends with its own CRC-32 hashes, under CRC-32,
/// to the same residue as every other such record.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The model target's body: runs the steps `data` decodes to against the engine and a
/// `BTreeMap`; panics with the divergence if they disagree. The first byte is not used: the
/// cargo-fuzz target picks the engine with it, so one corpus serves every engine.
pub fn model(factory: &dyn EngineFactory, data: &[u8]) {
    let (policy, steps) = model_steps(data.get(1..).unwrap_or_default());
    if let Err(e) = execute(factory, policy, &steps) {
        panic!("model divergence under {policy:?}: {e}\n steps: {steps:?}");
    }
}

/// Most steps one input decodes to.
const MAX_STEPS: usize = 48;

/// Decodes an input into a policy (first byte) and steps (one opcode byte each, followed by
/// their operands); running out of bytes ends the steps.
pub fn model_steps(data: &[u8]) -> (SyncPolicy, Vec<Step>) {
    let mut bytes = data.iter().copied();
    let policy = match bytes.next().unwrap_or(0) % 2 {
        0 => SyncPolicy::Always,
        _ => SyncPolicy::Never,
    };
    let mut steps = Vec::new();
    while steps.len() < MAX_STEPS {
        let Some(op) = bytes.next() else { break };
        let mut next = || bytes.next().unwrap_or(0);
        let key = |b: u8| b % 24;
        let step = match op % 10 {
            0..=2 => {
                let k = key(next());
                let len = usize::from(next()) * 4;
                let fill = next();
                Step::Put(k, vec![fill; len])
            }
            3 => Step::Delete(key(next())),
            4 => {
                let n = 1 + next() % 4;
                let ops = (0..n)
                    .map(|i| {
                        let b = next();
                        (key(b), (b % 3 != 0).then(|| vec![i; usize::from(b % 32)]))
                    })
                    .collect();
                Step::Batch(ops)
            }
            5 => Step::Get(key(next())),
            6 => Step::Scan(key(next()), key(next())),
            7 => [Step::Sync, Step::Reopen, Step::Compact][usize::from(next() % 3)].clone(),
            _ => {
                let mode = CrashMode::ALL[usize::from(next()) % CrashMode::ALL.len()];
                Step::Crash(mode, u64::from(next()))
            }
        };
        steps.push(step);
    }
    (policy, steps)
}

/// Inputs for the model corpus: each opcode with varied operands, and a few long mixes.
pub fn model_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let mut rng = Rng::new(0x0de1);
    for (engine, policy) in [(0u8, 0u8), (1, 1), (0, 1), (1, 0)] {
        for len in [4usize, 16, 48, 120, 200] {
            let mut seed = vec![engine, policy];
            seed.extend((0..len).map(|_| rng.next().to_le_bytes()[0]));
            seeds.push(seed);
        }
    }
    // Writes, a compaction, a crash in every mode, reads.
    for mode in 0..5u8 {
        for engine in 0..2u8 {
            let mut a = vec![
                engine, 0, 0, 3, 10, 7, 0, 5, 4, 2, 1, 2, 7, 2, 8, mode, 9, 5, 3,
            ];
            a.extend([6, 0, 23]);
            seeds.push(a);
            let b = vec![
                engine, 1, 1, 4, 20, 1, 4, 3, 9, 7, 7, 0, 8, mode, 3, 5, 4, 6, 0, 23,
            ];
            seeds.push(b);
        }
    }
    seeds
}

/// A small mixed workload (puts of varied sizes, deletes, batches) over `keys` keys, `writes`
/// operations long, for engines to leave real files behind to seed their fuzz corpora with.
/// Values are at most `max_value` bytes.
///
/// # Panics
/// If a write fails: corpus generation needs a working engine.
pub fn sample_writes(engine: &dyn crate::Engine, writes: u32, keys: u32, max_value: usize) {
    for i in 0..writes {
        let key = format!("key{:02}", i % keys);
        if i % 7 == 3 {
            engine
                .delete(key.as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
        } else if i % 5 == 0 {
            let mut batch = crate::WriteBatch::new();
            batch.put(key.as_bytes(), b"batched").delete(b"key03");
            engine.write(&batch).unwrap_or_else(|e| panic!("{e}"));
        } else {
            let value = vec![u8::try_from(i).unwrap_or(0); (i as usize * 13) % max_value];
            engine
                .put(key.as_bytes(), &value)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
