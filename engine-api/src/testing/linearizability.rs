//! Linearizability of concurrent `get`, `put` and `delete` while compactions or merges run.
//!
//! [`check`] runs rounds of concurrent clients over a few keys. Each call is stamped on invoke
//! and on return from one shared counter, so "A returned before B was invoked" is exactly
//! `A.ret < B.invoke`. After each round the threads are joined, every key is read once more
//! (those reads join the history), and each key's history is checked on its own against a
//! sequential register ([`check_register`]): single-key operations on different keys commute,
//! so per-key checks are enough (P-compositionality) and keep every search small.
//!
//! The checker is the Wing–Gong–Lowe search with memoisation on (linearized set, register
//! value), as in Lowe's "Testing for linearizability" (2017) and Porcupine: repeatedly pick a
//! pending operation that may take effect first (it was invoked before every other pending
//! operation returned), apply it to the register if its result agrees, and backtrack on a
//! dead end.
//!
//! Every put writes a value that names the put (an id), so a read result maps back to one put;
//! a value nobody wrote fails the check at once.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use super::EngineFactory;
use super::rng::{Rng, filler};
use crate::{Engine, SimStorage, SyncPolicy};

/// A client call and what it returned. Values are named by the id of the put that wrote them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// A `get` that returned the value of put `Some(id)`, or no value.
    Get(Option<u64>),
    /// A `put` of value `id`.
    Put(u64),
    /// A `delete`.
    Delete,
}

/// One completed call on one key, with its invoke and return stamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The client thread.
    pub thread: usize,
    /// The call and its result.
    pub call: Call,
    /// Stamp taken just before the call.
    pub invoke: u64,
    /// Stamp taken just after the call returned.
    pub ret: u64,
}

/// Most states the search may visit for one history before it gives up (and fails, since an
/// unchecked history proves nothing).
const SEARCH_BUDGET: u64 = 5_000_000;

/// Checks one key's history against a register that starts as `initial`. Returns the number of
/// search states explored.
///
/// # Errors
/// A description of the history when no sequential order explains it, or when the search
/// exceeded its budget.
pub fn check_register(initial: Option<u64>, events: &[Event]) -> Result<u64, String> {
    let mut ops = events.to_vec();
    ops.sort_by_key(|e| e.invoke);
    let mut search = Search {
        ops: &ops,
        memo: HashSet::new(),
        explored: 0,
    };
    let mut done = vec![0u64; ops.len().div_ceil(64)];
    match search.dfs(&mut done, ops.len(), initial) {
        Some(true) => Ok(search.explored),
        Some(false) => Err(format!(
            "not linearizable (initial value {initial:?}):\n{}",
            render(&ops)
        )),
        None => Err(format!(
            "search budget of {SEARCH_BUDGET} states exceeded on {} operations",
            ops.len()
        )),
    }
}

struct Search<'a> {
    ops: &'a [Event],
    memo: HashSet<(Vec<u64>, Option<u64>)>,
    explored: u64,
}

fn is_set(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

impl Search<'_> {
    /// `Some(found)`, or `None` once the budget is spent.
    fn dfs(&mut self, done: &mut Vec<u64>, remaining: usize, state: Option<u64>) -> Option<bool> {
        if remaining == 0 {
            return Some(true);
        }
        let pending = || (0..self.ops.len()).filter(|&i| !is_set(done, i));
        let first_return = pending().map(|i| self.ops[i].ret).min().unwrap_or(u64::MAX);
        let candidates: Vec<usize> = pending()
            .filter(|&i| self.ops[i].invoke < first_return)
            .collect();
        for i in candidates {
            let next = match self.ops[i].call {
                Call::Get(seen) if seen != state => continue,
                Call::Get(_) => state,
                Call::Put(id) => Some(id),
                Call::Delete => None,
            };
            done[i / 64] |= 1 << (i % 64);
            if self.memo.insert((done.clone(), next)) {
                self.explored += 1;
                if self.explored > SEARCH_BUDGET {
                    return None;
                }
                if self.dfs(done, remaining - 1, next)? {
                    return Some(true);
                }
            }
            done[i / 64] &= !(1 << (i % 64));
        }
        Some(false)
    }
}

fn render(ops: &[Event]) -> String {
    ops.iter()
        .map(|e| {
            format!(
                "  [{:>6} .. {:>6}] thread {}: {:?}",
                e.invoke, e.ret, e.thread, e.call
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// How [`check`] runs.
#[derive(Clone, Debug)]
pub struct LinConfig {
    /// The sync policy the engine is opened with.
    pub policy: SyncPolicy,
    /// Client threads.
    pub threads: usize,
    /// Keys the clients share.
    pub keys: u8,
    /// Rounds; each is one history per key.
    pub rounds: u32,
    /// Calls per thread per round.
    pub ops_per_thread: u32,
    /// Run `compact` in a loop on another thread while the clients run.
    pub compact: bool,
    /// Seed of the clients' choices.
    pub seed: u64,
}

impl Default for LinConfig {
    fn default() -> Self {
        LinConfig {
            policy: SyncPolicy::Always,
            threads: 4,
            keys: 4,
            rounds: 40,
            ops_per_thread: 24,
            compact: true,
            seed: 0x11ea_b1e0,
        }
    }
}

/// What [`check`] checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinReport {
    /// Per-key histories checked.
    pub histories: u64,
    /// Calls recorded and checked.
    pub ops: u64,
    /// Longest single-key history.
    pub max_ops_per_key: usize,
    /// Compactions that completed while clients ran.
    pub compactions: u64,
    /// Search states explored over all histories.
    pub states_explored: u64,
}

impl fmt::Display for LinReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "linearizability: {} per-key histories, {} calls (longest history {}), {} compactions \
             alongside, {} search states",
            self.histories, self.ops, self.max_ops_per_key, self.compactions, self.states_explored
        )
    }
}

/// Opens an engine from `factory` on a fresh [`SimStorage`] and runs [`check_engine`] on it.
///
/// # Errors
/// The open error, or as [`check_engine`].
pub fn check(factory: &dyn EngineFactory, config: &LinConfig) -> Result<LinReport, String> {
    let sim = SimStorage::new();
    let engine = factory
        .open(
            Arc::new(sim),
            Path::new(super::conformance::DIR),
            config.policy,
        )
        .map_err(|e| format!("open: {e}"))?;
    check_engine(&*engine, config)
}

/// Runs the rounds on `engine` (which should start empty) and checks every per-key history.
///
/// # Errors
/// The first history that is not linearizable, a value no put wrote, or an engine error.
pub fn check_engine(engine: &dyn Engine, config: &LinConfig) -> Result<LinReport, String> {
    let mut report = LinReport::default();
    let mut initial: Vec<Option<u64>> = vec![None; usize::from(config.keys)];
    let clock = AtomicU64::new(0);
    for round in 0..config.rounds {
        let (events, compactions) = run_round(engine, config, round, &clock)?;
        report.compactions += compactions;
        for (k, start) in initial.iter_mut().enumerate() {
            let mut history: Vec<Event> = events
                .iter()
                .filter(|(key, _)| *key == k)
                .map(|(_, e)| *e)
                .collect();
            let last = quiescent_get(engine, k, &clock)?;
            history.push(last);
            report.ops += history.len() as u64;
            report.max_ops_per_key = report.max_ops_per_key.max(history.len());
            report.states_explored += check_register(*start, &history)
                .map_err(|e| format!("round {round}, key {}: {e}", key_name(k)))?;
            report.histories += 1;
            if let Call::Get(seen) = last.call {
                *start = seen;
            }
        }
    }
    Ok(report)
}

fn key_name(k: usize) -> String {
    format!("lin{k}")
}

/// The value a put with this id writes: the id, a separator, and filler of an id-derived length
/// (some values are large enough to leave small-value fast paths).
fn value_of(id: u64) -> Vec<u8> {
    let len = if id.is_multiple_of(7) {
        700
    } else {
        usize::try_from(id % 40).unwrap_or(0)
    };
    let mut v = format!("{id}|").into_bytes();
    v.extend(filler(id, len));
    v
}

fn id_of(value: &[u8]) -> Option<u64> {
    let bar = value.iter().position(|&b| b == b'|')?;
    let id: u64 = std::str::from_utf8(&value[..bar]).ok()?.parse().ok()?;
    (value_of(id) == value).then_some(id)
}

fn stamp(clock: &AtomicU64) -> u64 {
    clock.fetch_add(1, Ordering::SeqCst)
}

fn quiescent_get(engine: &dyn Engine, k: usize, clock: &AtomicU64) -> Result<Event, String> {
    let invoke = stamp(clock);
    let got = get(engine, k)?;
    Ok(Event {
        thread: usize::MAX,
        call: Call::Get(got),
        invoke,
        ret: stamp(clock),
    })
}

fn get(engine: &dyn Engine, k: usize) -> Result<Option<u64>, String> {
    let key = key_name(k);
    match engine.get(key.as_bytes()) {
        Ok(None) => Ok(None),
        Ok(Some(v)) => id_of(&v)
            .map(Some)
            .ok_or_else(|| format!("get {key} returned a value no put wrote: {v:?}")),
        Err(e) => Err(format!("get {key}: {e}")),
    }
}

type Recorded = Vec<(usize, Event)>;

fn run_round(
    engine: &dyn Engine,
    config: &LinConfig,
    round: u32,
    clock: &AtomicU64,
) -> Result<(Recorded, u64), String> {
    // The last party is the compactor when there is one (so compactions are already running
    // when the clients start), else this thread.
    let start = Barrier::new(config.threads + 1);
    let stop = AtomicBool::new(false);
    // Clients begin only once the first compaction has begun, so at least one overlaps them
    // however the threads are scheduled (on a loaded machine the clients could otherwise finish
    // before the compactor first ran).
    let compacting = AtomicBool::new(!config.compact);
    std::thread::scope(|s| {
        let compactor = config.compact.then(|| {
            s.spawn(|| {
                let mut n = 0u64;
                start.wait();
                loop {
                    // Set before the call, so a failing compaction still releases the clients.
                    compacting.store(true, Ordering::SeqCst);
                    engine.compact().map_err(|e| format!("compact: {e}"))?;
                    n += 1;
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                }
                Ok::<u64, String>(n)
            })
        });
        let clients: Vec<_> = (0..config.threads)
            .map(|t| {
                let (start, compacting) = (&start, &compacting);
                s.spawn(move || {
                    start.wait();
                    while !compacting.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                    client(engine, config, round, t, clock)
                })
            })
            .collect();
        if !config.compact {
            start.wait();
        }
        let mut events = Vec::new();
        let mut failure = None;
        for c in clients {
            match c.join() {
                Ok(Ok(mut e)) => events.append(&mut e),
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => failure = failure.or(Some("a client thread panicked".to_string())),
            }
        }
        stop.store(true, Ordering::SeqCst);
        let compactions = match compactor.map(|c| c.join()) {
            None => 0,
            Some(Ok(Ok(n))) => n,
            Some(Ok(Err(e))) => return Err(e),
            Some(Err(_)) => return Err("the compactor thread panicked".to_string()),
        };
        failure.map_or(Ok((events, compactions)), Err)
    })
}

fn client(
    engine: &dyn Engine,
    config: &LinConfig,
    round: u32,
    t: usize,
    clock: &AtomicU64,
) -> Result<Recorded, String> {
    let mut rng = Rng::new(config.seed ^ (u64::from(round) << 20) ^ ((t as u64 + 1) * 0x9e37));
    let mut out = Vec::new();
    for i in 0..config.ops_per_thread {
        let k = rng.index(usize::from(config.keys));
        let key = key_name(k);
        let roll = rng.below(100);
        let invoke = stamp(clock);
        let call = if roll < 45 {
            Call::Get(get(engine, k)?)
        } else if roll < 85 {
            let id = (u64::from(round) << 32) | ((t as u64) << 16) | u64::from(i + 1);
            engine
                .put(key.as_bytes(), &value_of(id))
                .map_err(|e| format!("put {key}: {e}"))?;
            Call::Put(id)
        } else {
            engine
                .delete(key.as_bytes())
                .map_err(|e| format!("delete {key}: {e}"))?;
            Call::Delete
        };
        let ret = stamp(clock);
        out.push((
            k,
            Event {
                thread: t,
                call,
                invoke,
                ret,
            },
        ));
    }
    Ok(out)
}
