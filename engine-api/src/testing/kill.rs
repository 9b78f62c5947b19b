//! Process kills: a child process runs a heavy random workload on a real directory and reports
//! every write over a pipe; the parent kills it with SIGKILL at random moments, reopens the
//! directory and checks what survived, then lets a new child go on from there.
//!
//! **Roles.** The test binary re-executes itself. [`run_or_child`] (or the [`crate::kill_test!`]
//! macro, which calls it) checks [`CHILD_ENV`]: if it names this test, the process is the child
//! and never returns; otherwise it is the parent, which spawns `current_exe() <test> --exact
//! --nocapture` with that variable set. So an engine crate needs nothing but one `#[test]`.
//!
//! **The child** opens the engine ([`OsStorage`]) and runs [`KillConfig::writers`] threads of
//! puts, deletes and batches (up to 16 KiB values), each on its own keys, plus a thread that
//! calls `compact` every [`KillConfig::compact_every`] acknowledged writes. Before each call a
//! writer prints `BEGIN` (its id and operations) and after the call returned `Ok`, `ACK`; each
//! line is flushed before the writer goes on, so the parent's view is never ahead of the engine.
//! Values are `<key>@<id>:` plus filler derived from the id, so any value maps back to the one
//! write that made it, and a garbled or invented value is caught.
//!
//! **The parent** keeps the oracle outside the engine's files: the acknowledged state, and the
//! writes begun but not acknowledged (at most one per writer, as each writer is sequential). It
//! kills the child while it opens (10 % of rounds), while a compaction runs (20 %), or after a
//! random number of acknowledgements, reads the pipe to its end, reopens the directory and
//! checks, per writer: its keys hold exactly the acknowledged state, or that state with its one
//! in-flight write applied whole. That is "every acknowledged write is there, a key with a later
//! begun write may hold that instead, batches are all or nothing, no key holds a value never
//! written". Every policy gets the same check: a process kill leaves the page cache intact, and
//! the contract hands every acknowledged write to the OS before the ack
//! (`docs/durability.md`). Gets and a full scan must agree. The recovered state becomes the
//! oracle for the next child, on the same directory; a last reopen at the end checks the
//! accumulated state once more.
//!
//! [`KILLS_ENV`] overrides the kill count (the longer tier) and [`SEED_ENV`] the seed; every
//! failure names the seed and round.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::EngineFactory;
use super::conformance::Contents;
use super::rng::{Rng, filler};
use crate::{Engine, KeyRange, OsStorage, SyncPolicy, WriteBatch};

/// Set in the child's environment: `<test name>\t<dir>\t<seed>\t<first op id>`.
pub const CHILD_ENV: &str = "ENGINE_KILL_CHILD";
/// Overrides [`KillConfig::kills`]: the longer tier, e.g. `ENGINE_KILLS=2000`.
pub const KILLS_ENV: &str = "ENGINE_KILLS";
/// Overrides [`KillConfig::seed`].
pub const SEED_ENV: &str = "ENGINE_KILL_SEED";

/// A child that prints nothing for this long is reported as stalled (a hang, not a timing
/// check: a healthy child prints a line per write).
const STALL: Duration = Duration::from_secs(120);
/// Writes per writer thread after which a child stops on its own (it is normally killed long
/// before).
const CHILD_MAX_WRITES: u64 = 1_000_000;

/// How the kill test runs.
#[derive(Clone, Debug)]
pub struct KillConfig {
    /// The policy the child writes under.
    pub policy: SyncPolicy,
    /// Kills (child processes); [`KILLS_ENV`] overrides it.
    pub kills: u32,
    /// Writer threads in the child.
    pub writers: u32,
    /// Keys per writer.
    pub keys_per_writer: u32,
    /// Most acknowledgements a child gets before its kill, when the kill is timed by them.
    pub max_acks: u64,
    /// Acknowledged writes between two `compact` calls.
    pub compact_every: u64,
    /// The seed of the kill plan and the children's workloads; [`SEED_ENV`] overrides it.
    pub seed: u64,
}

impl Default for KillConfig {
    fn default() -> Self {
        KillConfig {
            policy: SyncPolicy::Always,
            kills: 100,
            writers: 3,
            keys_per_writer: 40,
            max_acks: 300,
            compact_every: 50,
            seed: 0x06b1_11ed,
        }
    }
}

/// What a kill test did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KillReport {
    /// The policy the children wrote under.
    pub policy: String,
    /// The seed.
    pub seed: u64,
    /// Children killed with SIGKILL (and recoveries checked).
    pub kills: u64,
    /// Writes acknowledged over all children.
    pub acked_writes: u64,
    /// Kills that left a write begun but not acknowledged.
    pub in_flight_at_kill: u64,
    /// Of those, recoveries where the in-flight write was there.
    pub in_flight_recovered: u64,
    /// Kills that landed while the child was opening (recovering) the engine.
    pub kills_during_open: u64,
    /// Kills that landed while a compaction was running.
    pub kills_during_compaction: u64,
    /// Compactions that completed in children.
    pub compactions: u64,
    /// Key reads checked after recoveries.
    pub keys_checked: u64,
}

impl fmt::Display for KillReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kills ({}, seed {:#x}): {} SIGKILLs survived, {} acknowledged writes, {} kills during \
             open, {} during compaction ({} compactions completed), {} with a write in flight \
             ({} of them recovered it), {} key reads checked",
            self.policy,
            self.seed,
            self.kills,
            self.acked_writes,
            self.kills_during_open,
            self.kills_during_compaction,
            self.compactions,
            self.in_flight_at_kill,
            self.in_flight_recovered,
            self.keys_checked
        )
    }
}

/// One `#[test]` that is both parent and child: see the module documentation.
///
/// ```text
/// engine_api::kill_test!(kill_always, my_factory(), KillConfig::default());
/// ```
#[macro_export]
macro_rules! kill_test {
    ($name:ident, $factory:expr, $config:expr) => {
        #[test]
        fn $name() {
            let config = $config;
            let test = stringify!($name);
            match $crate::testing::kill::run_or_child(&$factory, module_path!(), test, &config) {
                Ok(report) => eprintln!("{report}"),
                Err(e) => panic!("{e}"),
            }
        }
    };
}

/// The libtest name of test `test` in module `module_path` (its `module_path!()`): the path
/// without the crate name.
pub fn test_name(module_path: &str, test: &str) -> String {
    match module_path.split_once("::") {
        Some((_, rest)) => format!("{rest}::{test}"),
        None => test.to_string(),
    }
}

/// In the child (when [`CHILD_ENV`] names this test): runs the workload and never returns.
/// In the parent: runs the kill rounds and checks every recovery.
///
/// # Errors
/// The first violation, with the seed, the round and what the engine held.
pub fn run_or_child(
    factory: &dyn EngineFactory,
    module_path: &str,
    test: &str,
    config: &KillConfig,
) -> Result<KillReport, String> {
    let name = test_name(module_path, test);
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let args = ChildArgs::parse(&spec).ok_or_else(|| format!("bad {CHILD_ENV}: {spec}"))?;
        if args.test != name {
            return Err(format!("{CHILD_ENV} names {}, not {name}", args.test));
        }
        child(factory, config, &args)
    }
    Parent::new(config, name)?.run(factory)
}

struct ChildArgs {
    test: String,
    dir: PathBuf,
    seed: u64,
    first_id: u64,
}

impl ChildArgs {
    fn parse(spec: &str) -> Option<Self> {
        let mut parts = spec.split('\t');
        Some(ChildArgs {
            test: parts.next()?.to_string(),
            dir: PathBuf::from(parts.next()?),
            seed: parts.next()?.parse().ok()?,
            first_id: parts.next()?.parse().ok()?,
        })
    }

    fn render(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}",
            self.test,
            self.dir.display(),
            self.seed,
            self.first_id
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The protocol and the workload, shared by both roles.

/// Key `k` of writer `w`.
fn key(w: u32, k: u32) -> String {
    format!("kill-w{w}-k{k:03}")
}

fn writer_of(key: &[u8]) -> Option<u32> {
    let rest = key.strip_prefix(b"kill-w")?;
    let end = rest.iter().position(|&b| b == b'-')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// Value lengths: mostly small, a quarter up to 2 KiB, a few up to 16 KiB.
fn value_len(id: u64) -> usize {
    let mut rng = Rng::new(id);
    let len = match rng.below(100) {
        0..=69 => rng.below(100),
        70..=94 => 100 + rng.below(1900),
        _ => 2000 + rng.below(14_000),
    };
    usize::try_from(len).unwrap_or(0)
}

/// The value write `id` stores under `key`.
fn value(key: &str, id: u64) -> Vec<u8> {
    let mut v = format!("{key}@{id}:").into_bytes();
    v.extend(filler(id, value_len(id)));
    v
}

/// Which write made this value, if any write of the workload could have.
fn traced(value: &[u8]) -> Option<(String, u64)> {
    let colon = value.iter().position(|&b| b == b':')?;
    let head = std::str::from_utf8(&value[..colon]).ok()?;
    let (key, id) = head.split_once('@')?;
    let id: u64 = id.parse().ok()?;
    (self::value(key, id) == value).then(|| (key.to_string(), id))
}

/// One write: puts (`true`) and deletes of the writer's key numbers; more than one is a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
struct WriteOp {
    writer: u32,
    ops: Vec<(u32, bool)>,
}

impl WriteOp {
    fn render(&self) -> String {
        let ops: Vec<String> = self
            .ops
            .iter()
            .map(|(k, put)| format!("{}{k}", if *put { 'p' } else { 'd' }))
            .collect();
        format!("{} {}", self.writer, ops.join(","))
    }

    fn parse(writer: &str, ops: &str) -> Option<Self> {
        let ops = ops
            .split(',')
            .map(|op| {
                let (kind, k) = op.split_at_checked(1)?;
                Some((k.parse().ok()?, kind == "p"))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(WriteOp {
            writer: writer.parse().ok()?,
            ops,
        })
    }

    fn apply(&self, id: u64, model: &mut Contents) {
        for &(k, put) in &self.ops {
            let key = key(self.writer, k);
            if put {
                let v = value(&key, id);
                model.insert(key.into_bytes(), v);
            } else {
                model.remove(key.as_bytes());
            }
        }
    }
}

fn random_write(rng: &mut Rng, w: u32, keys: u32) -> WriteOp {
    let n = if rng.percent(20) { 2 + rng.below(5) } else { 1 };
    let ops = (0..n)
        .map(|_| {
            let k = u32::try_from(rng.below(u64::from(keys))).unwrap_or(0);
            (k, !rng.percent(25))
        })
        .collect();
    WriteOp { writer: w, ops }
}

// ---------------------------------------------------------------------------------------------
// The child.

/// Prints one protocol line and flushes it; if the parent is gone there is nothing left to do.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "@@{line}")
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(4);
    }
}

fn fail(line: &str) -> ! {
    say(&format!("E {line}"));
    std::process::exit(3);
}

fn child(factory: &dyn EngineFactory, config: &KillConfig, args: &ChildArgs) -> ! {
    say("O");
    let engine = open_retrying(factory, &args.dir, config.policy)
        .unwrap_or_else(|e| fail(&format!("open: {e}")));
    say("R");
    let next_id = AtomicU64::new(args.first_id);
    let acked = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| compactor(&*engine, config, &acked, &done));
        let writers: Vec<_> = (0..config.writers)
            .map(|w| {
                let (engine, next_id, acked) = (&*engine, &next_id, &acked);
                s.spawn(move || writer(engine, config, args.seed, w, next_id, acked))
            })
            .collect();
        for w in writers {
            if w.join().is_err() {
                fail("a writer thread panicked");
            }
        }
        done.store(true, Ordering::SeqCst);
    });
    say("D");
    std::process::exit(0);
}

/// Opens the engine, retrying while the directory lock is held. The parent holds no engine
/// when it spawns a child, but a `flock` lives as long as any copy of its descriptor: a sibling
/// test of the parent that forks during the parent's reopen holds a copy until it execs (the
/// descriptor is close-on-exec), a window of microseconds.
fn open_retrying(
    factory: &dyn EngineFactory,
    dir: &Path,
    policy: SyncPolicy,
) -> crate::Result<Box<dyn Engine>> {
    let mut attempts = 0;
    loop {
        match factory.open(Arc::new(OsStorage::new()), dir, policy) {
            Err(crate::Error::Locked { .. }) if attempts < 200 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

fn writer(
    engine: &dyn Engine,
    config: &KillConfig,
    seed: u64,
    w: u32,
    next_id: &AtomicU64,
    acked: &AtomicU64,
) {
    let mut rng = Rng::new(seed ^ (u64::from(w) + 1).wrapping_mul(0x9e37_79b9));
    for _ in 0..CHILD_MAX_WRITES {
        let write = random_write(&mut rng, w, config.keys_per_writer);
        let id = next_id.fetch_add(1, Ordering::SeqCst);
        say(&format!("B {id} {}", write.render()));
        let result = if let [(k, put)] = write.ops[..] {
            let key = key(w, k);
            if put {
                engine.put(key.as_bytes(), &value(&key, id))
            } else {
                engine.delete(key.as_bytes())
            }
        } else {
            let mut batch = WriteBatch::new();
            for &(k, put) in &write.ops {
                let key = key(w, k);
                if put {
                    batch.put(key.as_bytes(), &value(&key, id));
                } else {
                    batch.delete(key.as_bytes());
                }
            }
            engine.write(&batch)
        };
        if let Err(e) = result {
            fail(&format!("write {id}: {e}"));
        }
        say(&format!("A {id}"));
        acked.fetch_add(1, Ordering::SeqCst);
    }
}

fn compactor(engine: &dyn Engine, config: &KillConfig, acked: &AtomicU64, done: &AtomicBool) {
    let mut next = config.compact_every;
    while !done.load(Ordering::SeqCst) {
        if acked.load(Ordering::SeqCst) < next {
            // Polling keeps the child simple; the child is killed, never waited for.
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        say("C");
        if let Err(e) = engine.compact() {
            fail(&format!("compact: {e}"));
        }
        say("c");
        next = acked.load(Ordering::SeqCst) + config.compact_every;
    }
}

// ---------------------------------------------------------------------------------------------
// The parent.

/// When a round's child is killed.
#[derive(Clone, Copy, Debug)]
enum Plan {
    DuringOpen,
    DuringCompaction,
    AfterAcks(u64),
}

impl Plan {
    fn pick(rng: &mut Rng, max_acks: u64) -> Self {
        match rng.below(100) {
            0..=9 => Plan::DuringOpen,
            10..=29 => Plan::DuringCompaction,
            // Half the kills come early, where recovery of a just-recovered directory is tested.
            _ if rng.percent(50) => Plan::AfterAcks(rng.below(40)),
            _ => Plan::AfterAcks(rng.below(max_acks.max(1))),
        }
    }
}

/// What one child did, as read from its pipe.
#[derive(Default)]
struct Round {
    begun: BTreeMap<u64, WriteOp>,
    acks: u64,
    opened: bool,
    compacting: bool,
    finished: bool,
    error: Option<String>,
}

struct Parent {
    config: KillConfig,
    name: String,
    seed: u64,
    kills: u32,
    root: PathBuf,
    model: Contents,
    next_id: u64,
    report: KillReport,
}

impl Parent {
    fn new(config: &KillConfig, name: String) -> Result<Self, String> {
        let env_num = |var: &str| std::env::var(var).ok().and_then(|v| v.parse::<u64>().ok());
        let seed = env_num(SEED_ENV).unwrap_or(config.seed);
        let kills =
            env_num(KILLS_ENV).map_or(config.kills, |k| u32::try_from(k).unwrap_or(u32::MAX));
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let root = std::env::temp_dir().join(format!("engine-kill-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
        Ok(Parent {
            config: config.clone(),
            name,
            seed,
            kills,
            root,
            model: Contents::new(),
            next_id: 1,
            report: KillReport {
                policy: config.policy.label(),
                seed,
                ..KillReport::default()
            },
        })
    }

    fn dir(&self) -> PathBuf {
        self.root.join("db")
    }

    fn run(mut self, factory: &dyn EngineFactory) -> Result<KillReport, String> {
        let mut rng = Rng::new(self.seed);
        for round in 0..self.kills {
            let plan = Plan::pick(&mut rng, self.config.max_acks);
            let child_seed = rng.next();
            self.round(factory, plan, child_seed).map_err(|e| {
                format!(
                    "kill test {} ({}), seed {:#x} (set {SEED_ENV} to replay), round {round} \
                     ({plan:?}); directory kept at {}:\n{e}",
                    self.name,
                    self.config.policy.label(),
                    self.seed,
                    self.root.display()
                )
            })?;
        }
        self.final_check(factory).map_err(|e| {
            format!(
                "final check, directory kept at {}: {e}",
                self.root.display()
            )
        })?;
        // Best effort: a leftover temporary directory is not a test failure.
        let _ = std::fs::remove_dir_all(&self.root);
        Ok(self.report)
    }

    fn round(&mut self, factory: &dyn EngineFactory, plan: Plan, seed: u64) -> Result<(), String> {
        let args = ChildArgs {
            test: self.name.clone(),
            dir: self.dir(),
            seed,
            first_id: self.next_id,
        };
        let stderr_path = self.root.join("child.stderr");
        let mut child = spawn(&args, &stderr_path)?;
        let (round, killed) = self.watch(&mut child, plan)?;
        let status = child.wait().map_err(|e| format!("wait: {e}"))?;
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        if let Some(e) = &round.error {
            return Err(format!(
                "the child reported: {e}\nchild stderr:\n{}",
                tail(&stderr)
            ));
        }
        let finished_cleanly = status.success() && round.finished;
        if !killed && !finished_cleanly {
            return Err(format!(
                "the child exited by itself ({status})\nchild stderr:\n{}",
                tail(&stderr)
            ));
        }
        self.report.kills += u64::from(killed);
        self.report.acked_writes += round.acks;
        self.report.kills_during_open += u64::from(killed && !round.opened);
        self.report.kills_during_compaction += u64::from(killed && round.compacting);
        self.verify(factory, &round.begun)
    }

    /// Reads the child's lines to the end of its output, killing it when the plan says.
    fn watch(&mut self, child: &mut Child, plan: Plan) -> Result<(Round, bool), String> {
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut round = Round::default();
        let mut killed = false;
        loop {
            let line = match rx.recv_timeout(STALL) {
                Ok(line) => line.map_err(|e| format!("reading the child's output: {e}"))?,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok((round, killed)),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    return Err(format!("the child printed nothing for {STALL:?}: a hang"));
                }
            };
            // libtest may print "test <name> ... " without a newline just before the first line.
            let Some((_, msg)) = line.split_once("@@") else {
                continue;
            };
            let trigger = self.on_line(msg, &mut round)?;
            let fire = match plan {
                Plan::DuringOpen => true,
                Plan::DuringCompaction => trigger == "C",
                Plan::AfterAcks(n) => trigger == "A" && round.acks >= n || trigger == "R" && n == 0,
            };
            if fire && !killed {
                child.kill().map_err(|e| format!("kill: {e}"))?;
                killed = true;
            }
        }
    }

    /// Applies one protocol line to the round and the oracle; returns its tag.
    fn on_line<'a>(&mut self, msg: &'a str, round: &mut Round) -> Result<&'a str, String> {
        let mut parts = msg.splitn(4, ' ');
        let tag = parts.next().unwrap_or_default();
        match tag {
            "O" => {}
            "R" => round.opened = true,
            "C" => round.compacting = true,
            "c" => {
                round.compacting = false;
                self.report.compactions += 1;
            }
            "D" => round.finished = true,
            "E" => round.error = Some(msg.to_string()),
            "B" => {
                let (id, writer, ops) = (parts.next(), parts.next(), parts.next());
                let parsed = id
                    .and_then(|i| i.parse::<u64>().ok())
                    .zip(writer.zip(ops).and_then(|(w, o)| WriteOp::parse(w, o)));
                let (id, write) = parsed.ok_or_else(|| format!("bad line: {msg}"))?;
                self.next_id = self.next_id.max(id + 1);
                round.begun.insert(id, write);
            }
            "A" => {
                let id: u64 = parts
                    .next()
                    .and_then(|i| i.parse().ok())
                    .ok_or_else(|| format!("bad line: {msg}"))?;
                let write = round
                    .begun
                    .remove(&id)
                    .ok_or_else(|| format!("ACK of unknown write {id}"))?;
                write.apply(id, &mut self.model);
                round.acks += 1;
            }
            _ => return Err(format!("unknown line: {msg}")),
        }
        Ok(tag)
    }

    /// Reopens the directory and checks each writer's keys against the oracle; the recovered
    /// state becomes the oracle.
    fn verify(
        &mut self,
        factory: &dyn EngineFactory,
        in_flight: &BTreeMap<u64, WriteOp>,
    ) -> Result<(), String> {
        // Retrying like the child does: a sibling test forking meanwhile briefly holds a copy
        // of the lock descriptor of this parent's previous reopen.
        let engine = open_retrying(factory, &self.dir(), self.config.policy)
            .map_err(|e| format!("reopen after the kill failed: {e}"))?;
        let got = self.read_all(&*engine)?;
        let mut pending: BTreeMap<u32, (u64, &WriteOp)> = BTreeMap::new();
        for (&id, write) in in_flight {
            if pending.insert(write.writer, (id, write)).is_some() {
                return Err(format!("writer {} had two writes in flight", write.writer));
            }
        }
        self.report.in_flight_at_kill += u64::from(!pending.is_empty());
        if let Some(stray) = got
            .keys()
            .find(|k| writer_of(k).is_none_or(|w| w >= self.config.writers))
        {
            return Err(format!(
                "recovered a key no writer wrote: {}",
                String::from_utf8_lossy(stray)
            ));
        }
        let mut recovered_in_flight = false;
        for w in 0..self.config.writers {
            let acked = only(&self.model, w);
            let mine = only(&got, w);
            if mine == acked {
                continue;
            }
            let with = pending.get(&w).map(|(id, write)| {
                let mut m = acked.clone();
                write.apply(*id, &mut m);
                m
            });
            if with.as_ref() == Some(&mine) {
                recovered_in_flight = true;
                continue;
            }
            return Err(explain(w, &acked, &mine, pending.get(&w)));
        }
        self.report.in_flight_recovered += u64::from(recovered_in_flight);
        self.model = got;
        Ok(())
    }

    /// Everything the engine holds, by a full scan, checked against a get of every key.
    fn read_all(&mut self, engine: &dyn Engine) -> Result<Contents, String> {
        let mut got = Contents::new();
        let scan = engine
            .scan(KeyRange::all())
            .map_err(|e| format!("scan: {e}"))?;
        for item in scan {
            let (k, v) = item.map_err(|e| format!("scan item: {e}"))?;
            got.insert(k.to_vec(), v.to_vec());
        }
        for w in 0..self.config.writers {
            for k in 0..self.config.keys_per_writer {
                let key = key(w, k);
                let v = engine
                    .get(key.as_bytes())
                    .map_err(|e| format!("get {key}: {e}"))?;
                if v.as_deref() != got.get(key.as_bytes()).map(Vec::as_slice) {
                    return Err(format!("get and scan disagree on {key}"));
                }
                self.report.keys_checked += 1;
            }
        }
        Ok(got)
    }

    fn final_check(&mut self, factory: &dyn EngineFactory) -> Result<(), String> {
        let engine = open_retrying(factory, &self.dir(), self.config.policy)
            .map_err(|e| format!("reopen: {e}"))?;
        let got = self.read_all(&*engine)?;
        if got != self.model {
            return Err("a clean reopen changed the recovered state".to_string());
        }
        Ok(())
    }
}

fn spawn(args: &ChildArgs, stderr_path: &Path) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let stderr = std::fs::File::create(stderr_path).map_err(|e| format!("stderr file: {e}"))?;
    Command::new(exe)
        .args([
            args.test.as_str(),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, args.render())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("spawn the child: {e}"))
}

fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(4000);
    text.get(start..).unwrap_or(text)
}

fn only(contents: &Contents, w: u32) -> Contents {
    contents
        .iter()
        .filter(|(k, _)| writer_of(k) == Some(w))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Which keys of writer `w` differ from the acknowledged state, and whose writes their values
/// come from.
fn explain(
    w: u32,
    acked: &Contents,
    got: &Contents,
    in_flight: Option<&(u64, &WriteOp)>,
) -> String {
    let describe = |v: Option<&Vec<u8>>| match v {
        None => "absent".to_string(),
        Some(v) => match traced(v) {
            Some((key, id)) => format!("value of write {id} to {key}"),
            None => format!("a value no write made ({} bytes)", v.len()),
        },
    };
    let keys: std::collections::BTreeSet<&Vec<u8>> = acked.keys().chain(got.keys()).collect();
    let diffs: Vec<String> = keys
        .into_iter()
        .filter(|k| acked.get(*k) != got.get(*k))
        .map(|k| {
            format!(
                "  {}: recovered {}, acknowledged {}",
                String::from_utf8_lossy(k),
                describe(got.get(k)),
                describe(acked.get(k))
            )
        })
        .collect();
    let flight = in_flight.map_or("none".to_string(), |(id, write)| {
        format!("write {id} {:?}", write.ops)
    });
    format!(
        "writer {w}'s keys match neither the acknowledged state nor it plus the write in flight \
         ({flight}):\n{}",
        diffs.join("\n")
    )
}
