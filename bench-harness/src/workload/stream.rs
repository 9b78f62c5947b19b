//! [`OpStream`]: the seeded sequence of operations one worker thread issues.
//!
//! Every stream is a pure function of its [`StreamPlan`] and its thread index, so two engines
//! given the same plan receive the same operations with the same keys and values, thread by
//! thread. (How the threads interleave is up to the machine; with one thread the whole traffic
//! is identical.)

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::zipf::{Permutation, ScrambledZipfian, Zipfian, derive_seed};
use super::{Distribution, Mix, Pattern, READSEQ_CHUNK, ScanLength, Workload};

/// One operation. Keys are ids (see [`super::KeyCodec`]); values are offsets into the
/// [`super::ValuePool`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Put `key` with the value at `value`.
    Put {
        /// Key id.
        key: u64,
        /// Value offset.
        value: u32,
    },
    /// Get `key`.
    Get {
        /// Key id.
        key: u64,
    },
    /// Get a key next to `key` that is never written.
    GetMissing {
        /// Key id the missing key is derived from.
        key: u64,
    },
    /// Delete `key`.
    Delete {
        /// Key id.
        key: u64,
    },
    /// Read up to `len` entries in key order from `start`.
    Scan {
        /// First key id.
        start: u64,
        /// Entries to read.
        len: u32,
    },
    /// Get `key`, then put it with the value at `value`.
    ReadModifyWrite {
        /// Key id.
        key: u64,
        /// Value offset.
        value: u32,
    },
}

/// Everything a phase's streams are derived from.
#[derive(Clone, Debug)]
pub struct StreamPlan {
    /// The workload.
    pub workload: Workload,
    /// Operations over all worker threads (ignored by passes, which visit every key once).
    pub ops: u64,
    /// Worker threads (readers, for `readwhilewriting`).
    pub threads: usize,
    /// Loaded keys: ids `0..key_count`.
    pub key_count: u64,
    /// The first id this phase's inserts may use.
    pub insert_base: u64,
    /// The phase's seed.
    pub seed: u64,
    /// Distinct value offsets (see [`super::ValuePool::offsets`]).
    pub value_offsets: u32,
}

impl StreamPlan {
    /// Ids this phase's inserts may use, starting at `insert_base` (an upper bound: every
    /// operation of the busiest thread an insert).
    pub fn insert_capacity(&self) -> u64 {
        match &self.workload.pattern {
            Pattern::Mix(mix) if mix.insert > 0.0 => {
                let threads = self.threads.max(1) as u64;
                self.ops.div_ceil(threads).saturating_mul(threads)
            }
            _ => 0,
        }
    }

    /// One stream per worker thread: `threads` of them, plus the writer of `readwhilewriting`.
    pub fn streams(&self) -> Vec<OpStream> {
        let threads = self.threads.max(1);
        let latest = self.latest_chooser();
        let mut out: Vec<OpStream> = (0..threads)
            .map(|t| self.stream(t, threads, latest.as_ref()))
            .collect();
        if self.workload.pattern == Pattern::ReadWhileWriting {
            let writer = Mix {
                update: 1.0,
                ..Mix::default()
            };
            // The writer runs until the last reader ends (the runner stops it): at most as
            // many overwrites as there are reads.
            let ops = self.ops;
            let state = MixState::new(writer, self.key_count, Inserts::none(), None);
            out.push(
                OpStream::new(self.thread_seed(threads), ops, Kind::Mix(state))
                    .with_offsets(self.value_offsets),
            );
        }
        out
    }

    /// Computing zeta over the loaded keys costs O(keys): done once per phase, then cloned.
    fn latest_chooser(&self) -> Option<Zipfian> {
        match &self.workload.pattern {
            Pattern::Mix(mix) if mix.distribution == Distribution::Latest => {
                Some(Zipfian::new(self.key_count))
            }
            _ => None,
        }
    }

    /// Thread `t`'s new keys: its share of the phase's insert range, scattered over the whole
    /// range by one permutation shared by every thread (so no two inserts collide).
    fn inserts(&self, threads: usize, t: usize) -> Inserts {
        Inserts {
            base: self.insert_base,
            stride: threads as u64,
            thread: t as u64,
            order: Permutation::new(
                self.insert_capacity().max(1),
                derive_seed(self.seed, INSERT_ORDER),
            ),
        }
    }

    fn thread_seed(&self, thread: usize) -> u64 {
        derive_seed(self.seed, thread as u64)
    }

    fn stream(&self, t: usize, threads: usize, latest: Option<&Zipfian>) -> OpStream {
        let seed = self.thread_seed(t);
        let (lo, hi) = range_of(self.key_count, threads, t);
        let ops = split(self.ops, threads, t);
        let kind = match &self.workload.pattern {
            Pattern::FillSeq => Kind::Sequential { next: lo, end: hi },
            Pattern::FillRandom => Kind::Permuted {
                perm: Permutation::new(self.key_count, self.seed),
                next: lo,
                end: hi,
            },
            Pattern::ReadSeq => Kind::SeqScan {
                start: lo,
                next: lo,
                end: hi,
            },
            Pattern::Compact => Kind::Sequential { next: 0, end: 0 },
            Pattern::ReadWhileWriting => {
                let reads = Mix {
                    read: 1.0,
                    ..Mix::default()
                };
                Kind::Mix(MixState::new(reads, self.key_count, Inserts::none(), None))
            }
            Pattern::Mix(mix) => Kind::Mix(MixState::new(
                *mix,
                self.key_count,
                self.inserts(threads, t),
                latest.cloned(),
            )),
        };
        let ops = if self.workload.is_pass() {
            kind.pass_len()
        } else {
            ops
        };
        OpStream::new(seed, ops, kind).with_offsets(self.value_offsets)
    }
}

/// Thread `t`'s share of `total` (the first `total % threads` threads take one more).
fn split(total: u64, threads: usize, t: usize) -> u64 {
    let threads = threads as u64;
    let t = t as u64;
    total / threads + u64::from(t < total % threads)
}

/// Thread `t`'s contiguous slice of `0..n`.
fn range_of(n: u64, threads: usize, t: usize) -> (u64, u64) {
    let lo: u64 = (0..t).map(|i| split(n, threads, i)).sum();
    (lo, lo + split(n, threads, t))
}

#[derive(Clone, Debug)]
enum Kind {
    Sequential {
        next: u64,
        end: u64,
    },
    Permuted {
        perm: Permutation,
        next: u64,
        end: u64,
    },
    SeqScan {
        start: u64,
        next: u64,
        end: u64,
    },
    Mix(MixState),
}

impl Kind {
    fn pass_len(&self) -> u64 {
        match self {
            Kind::Sequential { next, end } | Kind::Permuted { next, end, .. } => end - next,
            Kind::SeqScan { next, end, .. } => (end - next).div_ceil(u64::from(READSEQ_CHUNK)),
            Kind::Mix(_) => 0,
        }
    }
}

/// The label the insert order's seed is derived with (thread seeds use the thread index).
const INSERT_ORDER: u64 = u64::MAX - 1;

/// Where one thread's inserts go. YCSB's default `insertorder=hashed` names the n-th insert by
/// a hash of n, so new keys land all over the key space instead of in a run after the loaded
/// ones; here the n-th insert of the phase (counted across threads, thread-interleaved) gets
/// the id `base + order(n)`, `order` a seeded permutation of the phase's insert range. Ids stay
/// dense, fresh and reproducible from the seed.
#[derive(Clone, Debug)]
struct Inserts {
    base: u64,
    stride: u64,
    thread: u64,
    order: Permutation,
}

impl Inserts {
    /// For a stream that never inserts.
    fn none() -> Self {
        Inserts {
            base: 0,
            stride: 1,
            thread: 0,
            order: Permutation::new(1, 0),
        }
    }

    /// The id of this thread's `k`-th insert.
    fn id(&self, k: u64) -> u64 {
        self.base + self.order.apply(k * self.stride + self.thread)
    }
}

#[derive(Clone, Debug)]
enum Chooser {
    Uniform,
    Zipfian(ScrambledZipfian),
    Latest(Zipfian),
}

/// A mix in progress: the cumulative thresholds, the key chooser and this thread's inserts.
#[derive(Clone, Debug)]
struct MixState {
    thresholds: [f64; 7],
    scan_length: ScanLength,
    chooser: Chooser,
    key_count: u64,
    inserts: Inserts,
    inserted: u64,
}

impl MixState {
    fn new(mix: Mix, key_count: u64, inserts: Inserts, latest: Option<Zipfian>) -> Self {
        let weights = mix.weights();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let thresholds = weights.map(|w| {
            acc += w / total;
            acc
        });
        let chooser = match (mix.distribution, latest) {
            (Distribution::Uniform, _) => Chooser::Uniform,
            (Distribution::Zipfian, _) => Chooser::Zipfian(ScrambledZipfian::new(key_count)),
            (Distribution::Latest, Some(z)) => Chooser::Latest(z),
            (Distribution::Latest, None) => Chooser::Latest(Zipfian::new(key_count)),
        };
        MixState {
            thresholds,
            scan_length: mix.scan_length,
            chooser,
            key_count: key_count.max(1),
            inserts,
            inserted: 0,
        }
    }

    fn insert_id(&self, k: u64) -> u64 {
        self.inserts.id(k)
    }

    /// A key that exists: loaded, or inserted earlier by this thread. Under `Latest`, rank 0 is
    /// this thread's newest insert, then older inserts, then loaded keys from the highest id
    /// down (YCSB's "latest" over an insert counter, kept per thread so streams stay
    /// deterministic whatever the interleaving).
    fn choose<R: Rng>(&mut self, rng: &mut R) -> u64 {
        match &mut self.chooser {
            Chooser::Uniform => rng.gen_range(0..self.key_count),
            Chooser::Zipfian(z) => z.next_id(rng),
            Chooser::Latest(z) => {
                let rank = z.next_rank(rng, self.key_count + self.inserted);
                if rank < self.inserted {
                    self.insert_id(self.inserted - 1 - rank)
                } else {
                    self.key_count - 1 - (rank - self.inserted)
                }
            }
        }
    }

    fn scan_len<R: Rng>(&self, rng: &mut R) -> u32 {
        match self.scan_length {
            ScanLength::Fixed(n) => n,
            ScanLength::UniformUpTo(max) => rng.gen_range(1..=max.max(1)),
        }
    }

    fn next<R: Rng>(&mut self, rng: &mut R, offsets: u32) -> Op {
        let draw: f64 = rng.r#gen();
        let which = self
            .thresholds
            .iter()
            .position(|t| draw < *t)
            .unwrap_or_else(|| self.thresholds.iter().rposition(|t| *t > 0.0).unwrap_or(0));
        let value = rng.gen_range(0..offsets.max(1));
        match which {
            0 => Op::Get {
                key: self.choose(rng),
            },
            1 => Op::Put {
                key: self.choose(rng),
                value,
            },
            2 => {
                let key = self.insert_id(self.inserted);
                self.inserted += 1;
                Op::Put { key, value }
            }
            3 => Op::Scan {
                start: self.choose(rng),
                len: self.scan_len(rng),
            },
            4 => Op::ReadModifyWrite {
                key: self.choose(rng),
                value,
            },
            5 => Op::Delete {
                key: self.choose(rng),
            },
            _ => Op::GetMissing {
                key: self.choose(rng),
            },
        }
    }
}

/// The operations of one worker thread, in order. An iterator; see the module documentation.
#[derive(Clone, Debug)]
pub struct OpStream {
    rng: ChaCha8Rng,
    remaining: u64,
    len: u64,
    offsets: u32,
    kind: Kind,
}

impl OpStream {
    fn new(seed: u64, ops: u64, kind: Kind) -> Self {
        OpStream {
            rng: ChaCha8Rng::seed_from_u64(seed),
            remaining: ops,
            len: ops,
            offsets: 1 << 20,
            kind,
        }
    }

    fn with_offsets(mut self, offsets: u32) -> Self {
        self.offsets = offsets.max(1);
        self
    }

    /// Operations this stream issues in all (before any extension).
    pub fn total(&self) -> u64 {
        self.len
    }

    /// The same stream, going on past [`OpStream::total`] for as long as it is pulled: more
    /// draws of the same mix, or further passes of `readseq`. Only for workloads that
    /// [`Workload::extends`] (their traffic leaves the key set as it is).
    #[must_use]
    pub fn extended(mut self) -> Self {
        if matches!(self.kind, Kind::Mix(_) | Kind::SeqScan { .. }) && self.len > 0 {
            self.remaining = u64::MAX;
        }
        self
    }
}

impl Iterator for OpStream {
    type Item = Op;

    fn next(&mut self) -> Option<Op> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let offsets = self.offsets;
        let op = match &mut self.kind {
            Kind::Sequential { next, .. } => {
                *next += 1;
                Op::Put {
                    key: *next - 1,
                    value: self.rng.gen_range(0..offsets),
                }
            }
            Kind::Permuted { perm, next, .. } => {
                *next += 1;
                Op::Put {
                    key: perm.apply(*next - 1),
                    value: self.rng.gen_range(0..offsets),
                }
            }
            Kind::SeqScan { start, next, end } => {
                if *next >= *end {
                    // Extended past its pass (see `OpStream::extended`): the next pass.
                    *next = *start;
                }
                let len = (*end - *next).min(u64::from(READSEQ_CHUNK));
                let from = *next;
                *next += len;
                #[expect(clippy::cast_possible_truncation, reason = "len <= READSEQ_CHUNK")]
                let len = len as u32;
                Op::Scan { start: from, len }
            }
            Kind::Mix(state) => state.next(&mut self.rng, offsets),
        };
        Some(op)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}
