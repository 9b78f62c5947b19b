//! Each step openraft needs durable, checked alone: do the step, lose power (every power-loss
//! mode of `SimStorage`), reopen the engine, and find the step's effect whole. Each runs under
//! both supported pairs of sync policy and [`raft_kv::Durability`]. Then openraft's own storage
//! suite. The numbers are the steps of `docs/replication.md`.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Cursor;
use std::sync::Arc;

use engine_api::{CrashMode, Engine, SimStorage};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite, log_id};
use openraft::{EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder, Vote};
use raft_kv::{Entry, LogStore, Request, StateMachine, StorageError, TypeConfig};

use crate::engines::{Kind, Mode, open};
use crate::per_engine;

const MODES: [Mode; 2] = [Mode::Always, Mode::NeverWithSyncs];

fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(future)
}

/// Runs `body` for each mode and power-loss mode: `body` gets a fresh engine to act on and a
/// function that cuts the power and reopens it.
fn each_power_loss(kind: Kind, body: impl AsyncFnLike) {
    for mode in MODES {
        for (seed, crash) in CrashMode::POWER_LOSS.into_iter().enumerate() {
            let sim = SimStorage::new();
            let engine = open(kind, mode, &sim);
            let power_loss = move |engine: Arc<dyn Engine>| {
                let image = sim.crash(crash, seed as u64 + 1);
                drop(engine);
                open(kind, mode, &image)
            };
            let what = format!("{kind:?} {mode:?} {crash:?}");
            block_on(body.run(engine, Box::new(power_loss), mode, what));
        }
    }
}

type PowerLoss = Box<dyn FnOnce(Arc<dyn Engine>) -> Arc<dyn Engine>>;

/// An async test body (a trait, as async closures cannot yet be named in bounds here).
trait AsyncFnLike {
    fn run(
        &self,
        engine: Arc<dyn Engine>,
        power_loss: PowerLoss,
        mode: Mode,
        what: String,
    ) -> impl Future<Output = ()>;
}

fn log(engine: &Arc<dyn Engine>, mode: Mode) -> LogStore {
    LogStore::open(Arc::clone(engine), mode.durability()).expect("open log store")
}

fn state_machine(engine: &Arc<dyn Engine>, mode: Mode) -> StateMachine {
    StateMachine::new(Arc::clone(engine), mode.durability())
}

fn put(term: u64, index: u64) -> Entry {
    let key = format!("key{index}").into_bytes();
    let value = format!("value{index}-term{term}").into_bytes();
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(Request::Put { key, value }),
    }
}

fn puts(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes.map(|i| put(term, i)).collect()
}

async fn read_log(log: &mut LogStore) -> Vec<Entry> {
    log.try_get_log_entries(..).await.expect("read log")
}

async fn last_index(log: &mut LogStore) -> Option<u64> {
    log.get_log_state()
        .await
        .expect("log state")
        .last_log_id
        .map(|l| l.index)
}

/// Step 1: a saved vote survives a power loss.
fn vote_is_durable(kind: Kind) {
    struct Body;
    impl AsyncFnLike for Body {
        async fn run(
            &self,
            engine: Arc<dyn Engine>,
            power_loss: PowerLoss,
            mode: Mode,
            what: String,
        ) {
            let vote = Vote::new_committed(3, 2);
            log(&engine, mode)
                .save_vote(&vote)
                .await
                .expect("save vote");
            let engine = power_loss(engine);
            let read = log(&engine, mode).read_vote().await.expect("read vote");
            assert_eq!(read, Some(vote), "{what}");
        }
    }
    each_power_loss(kind, Body);
}

/// Step 2: entries whose append called back survive a power loss, in order, with no hole.
fn appended_entries_are_durable_once_the_callback_ran(kind: Kind) {
    struct Body;
    impl AsyncFnLike for Body {
        async fn run(
            &self,
            engine: Arc<dyn Engine>,
            power_loss: PowerLoss,
            mode: Mode,
            what: String,
        ) {
            let mut store = log(&engine, mode);
            store
                .blocking_append(puts(1, 1..=10))
                .await
                .expect("append");
            store
                .blocking_append(puts(1, 11..=20))
                .await
                .expect("append");
            drop(store);
            let engine = power_loss(engine);
            let mut store = log(&engine, mode);
            assert_eq!(read_log(&mut store).await, puts(1, 1..=20), "{what}");
            assert_eq!(last_index(&mut store).await, Some(20), "{what}");
        }
    }
    each_power_loss(kind, Body);
}

/// Step 3: a truncation survives a power loss, and so do the entries appended after it.
fn truncation_is_durable(kind: Kind) {
    struct Body;
    impl AsyncFnLike for Body {
        async fn run(
            &self,
            engine: Arc<dyn Engine>,
            power_loss: PowerLoss,
            mode: Mode,
            what: String,
        ) {
            let mut store = log(&engine, mode);
            store
                .blocking_append(puts(1, 1..=20))
                .await
                .expect("append");
            store.truncate(log_id(1, 1, 11)).await.expect("truncate");
            assert_eq!(last_index(&mut store).await, Some(10), "{what}");
            store
                .blocking_append(puts(2, 11..=15))
                .await
                .expect("append");
            drop(store);
            let engine = power_loss(engine);
            let mut store = log(&engine, mode);
            let mut want = puts(1, 1..=10);
            want.extend(puts(2, 11..=15));
            assert_eq!(read_log(&mut store).await, want, "{what}");
            assert_eq!(last_index(&mut store).await, Some(15), "{what}");
        }
    }
    each_power_loss(kind, Body);
}

/// Step 4: a purge survives a power loss: the purge point is recorded and the entries up to it
/// are gone, the later ones intact.
fn purge_is_durable(kind: Kind) {
    struct Body;
    impl AsyncFnLike for Body {
        async fn run(
            &self,
            engine: Arc<dyn Engine>,
            power_loss: PowerLoss,
            mode: Mode,
            what: String,
        ) {
            let mut store = log(&engine, mode);
            store
                .blocking_append(puts(1, 1..=20))
                .await
                .expect("append");
            store.purge(log_id(1, 1, 12)).await.expect("purge");
            drop(store);
            let engine = power_loss(engine);
            let mut store = log(&engine, mode);
            let state = store.get_log_state().await.expect("log state");
            assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 12)), "{what}");
            assert_eq!(state.last_log_id, Some(log_id(1, 1, 20)), "{what}");
            assert_eq!(read_log(&mut store).await, puts(1, 13..=20), "{what}");
        }
    }
    each_power_loss(kind, Body);
}

/// Step 5: applied entries and the applied state are one atomic batch: after a power loss the
/// state machine holds all of it or (only when the engine does not sync every write) none.
fn applied_state_matches_the_data(kind: Kind) {
    struct Body;
    impl AsyncFnLike for Body {
        async fn run(
            &self,
            engine: Arc<dyn Engine>,
            power_loss: PowerLoss,
            mode: Mode,
            what: String,
        ) {
            let mut sm = state_machine(&engine, mode);
            sm.apply(puts(1, 1..=10)).await.expect("apply");
            drop(sm);
            let engine = power_loss(engine);
            let mut sm = state_machine(&engine, mode);
            let (applied, _) = sm.applied_state().await.expect("applied state");
            let value = sm.read(b"key7").expect("read");
            match applied {
                Some(id) => {
                    assert_eq!(id, log_id(1, 1, 10), "{what}");
                    assert_eq!(value.as_deref(), Some(&b"value7-term1"[..]), "{what}");
                }
                None => {
                    assert_eq!(mode, Mode::NeverWithSyncs, "{what}: lost under Always");
                    assert_eq!(value, None, "{what}: data without its applied state");
                }
            }
        }
    }
    each_power_loss(kind, Body);
}

/// Step 6: an installed snapshot replaces the state machine and survives a power loss, and
/// the snapshot itself is still the current one.
fn installed_snapshot_is_durable(kind: Kind) {
    struct Body;
    impl AsyncFnLike for Body {
        async fn run(
            &self,
            engine: Arc<dyn Engine>,
            power_loss: PowerLoss,
            mode: Mode,
            what: String,
        ) {
            let source = open(Kind::Reference, Mode::Always, &SimStorage::new());
            let mut leader = state_machine(&source, Mode::Always);
            let members = Membership::new(vec![BTreeSet::from([1, 2, 3])], None);
            let mut entries = puts(1, 1..=8);
            entries.push(Entry {
                log_id: log_id(1, 1, 9),
                payload: EntryPayload::Membership(members),
            });
            leader.apply(entries).await.expect("apply");
            let snapshot = leader.get_snapshot_builder().await.build_snapshot().await;
            let snapshot = snapshot.expect("build snapshot");

            let mut sm = state_machine(&engine, mode);
            sm.apply(vec![put(1, 100)]).await.expect("apply");
            let data = Box::new(Cursor::new(snapshot.snapshot.get_ref().clone()));
            sm.install_snapshot(&snapshot.meta, data)
                .await
                .expect("install");
            drop(sm);
            let engine = power_loss(engine);
            let mut sm = state_machine(&engine, mode);
            let (applied, membership) = sm.applied_state().await.expect("applied state");
            assert_eq!(applied, snapshot.meta.last_log_id, "{what}");
            assert_eq!(membership, snapshot.meta.last_membership, "{what}");
            assert_eq!(
                sm.read(b"key8").expect("read").as_deref(),
                Some(&b"value8-term1"[..])
            );
            assert_eq!(
                sm.read(b"key100").expect("read"),
                None,
                "{what}: old data kept"
            );
            let current = sm.get_current_snapshot().await.expect("current snapshot");
            assert_eq!(current.map(|s| s.meta), Some(snapshot.meta), "{what}");
        }
    }
    each_power_loss(kind, Body);
}

/// openraft's storage suite (vote, log, state machine, snapshots), on a fresh engine per case.
/// The suite sleeps about 8 s in all, so the three engines run it on threads of one test.
#[test]
fn openraft_storage_suite_on_every_engine() {
    let kinds = [Kind::Bitcask, Kind::Lsm, Kind::Reference];
    let threads = kinds.map(|kind| std::thread::spawn(move || openraft_suite(kind)));
    for thread in threads {
        thread.join().expect("suite passed");
    }
}

fn openraft_suite(kind: Kind) {
    struct Builder(Kind);
    impl StoreBuilder<TypeConfig, LogStore, StateMachine, ()> for Builder {
        async fn build(&self) -> Result<((), LogStore, StateMachine), StorageError> {
            let engine = open(self.0, Mode::Always, &SimStorage::new());
            let durability = Mode::Always.durability();
            let log = LogStore::open(Arc::clone(&engine), durability)?;
            Ok(((), log, StateMachine::new(engine, durability)))
        }
    }
    Suite::test_all(Builder(kind)).expect("openraft storage suite");
}

per_engine! {
    step1_vote_is_durable => super::vote_is_durable;
    step2_appended_entries_are_durable_once_the_callback_ran =>
        super::appended_entries_are_durable_once_the_callback_ran;
    step3_truncation_is_durable => super::truncation_is_durable;
    step4_purge_is_durable => super::purge_is_durable;
    step5_applied_state_matches_the_data => super::applied_state_matches_the_data;
    step6_installed_snapshot_is_durable => super::installed_snapshot_is_durable;
}
