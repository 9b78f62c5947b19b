//! Group commit's gathering (`engine_api::GroupCommit`, `docs/durability.md`, "Group commit"):
//! behaviour, not timing. Syncs are scripted closures that hold until the writers the test
//! expects are waiting (`GroupCommit::waiting`), and the gathering bound is fixed and generous,
//! so each outcome is decided by the protocol, not by how fast the machine is.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine_api::{Error, GroupCommit};

/// Long enough that no writer of these tests takes that long to come back.
const PATIENT: Duration = Duration::from_secs(20);

/// Spins (politely) until `gc` has `n` writers waiting uncovered.
fn until_waiting(gc: &GroupCommit, n: usize) {
    while gc.waiting() < n {
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// A log whose positions are write counts: `append` returns the position past the new write.
#[derive(Default)]
struct Log {
    appended: AtomicU64,
    /// The highest end a completed sync vouched for.
    synced: AtomicU64,
}

impl Log {
    fn append(&self) -> u64 {
        self.appended.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// A sync: reads the end first, then "syncs", then records what it covered.
    fn sync(&self) -> u64 {
        let end = self.appended.load(Ordering::SeqCst);
        self.synced.fetch_max(end, Ordering::SeqCst);
        end
    }
}

#[test]
fn once_n_writers_waited_together_every_later_sync_covers_all_n() {
    const N: usize = 6;
    const SYNCS: usize = 30;
    let gc = Arc::new(GroupCommit::with_max_gather(0, PATIENT));
    let log = Arc::new(Log::default());
    let groups = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..N)
        .map(|_| {
            let (gc, log, groups, stop) = (gc.clone(), log.clone(), groups.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let pos = log.append();
                    gc.wait_durable(pos, || {
                        let mut groups = groups.lock().unwrap();
                        if groups.is_empty() {
                            // The first sync holds until every writer waits (once seen together,
                            // the writers are expected back together).
                            until_waiting(&gc, N);
                        }
                        let before = gc.durable();
                        let end = log.sync();
                        groups.push(end - before);
                        if groups.len() == SYNCS {
                            stop.store(true, Ordering::SeqCst);
                        }
                        Ok(end)
                    })
                    .unwrap();
                    // Nothing is acknowledged before a sync that covers it returned.
                    assert!(log.synced.load(Ordering::SeqCst) >= pos);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let groups = groups.lock().unwrap();
    let later: Vec<_> = groups.iter().skip(1).copied().collect();
    assert!(
        later.iter().all(|&g| g == N as u64),
        "syncs after the first should each cover all {N} writers: {groups:?}"
    );
    assert_eq!(gc.stats().gather_timeouts, 0);
}

#[test]
fn a_lone_writer_never_gathers() {
    let gc = GroupCommit::with_max_gather(0, PATIENT);
    let log = Log::default();
    for _ in 0..100 {
        let pos = log.append();
        gc.wait_durable(pos, || Ok(log.sync())).unwrap();
    }
    let stats = gc.stats();
    assert_eq!((stats.syncs, stats.gathers), (100, 0));
}

/// Two writers covered by one sync; then one leaves. The other's next leader waits for it until
/// the bound, once; after that it expects only itself.
#[test]
fn a_writer_that_does_not_come_back_costs_one_bounded_gather() {
    let gc = Arc::new(GroupCommit::with_max_gather(0, Duration::from_millis(20)));
    let log = Arc::new(Log::default());
    let first = |gc: Arc<GroupCommit>, log: Arc<Log>| {
        let pos = log.append();
        gc.wait_durable(pos, || {
            until_waiting(&gc, 2);
            Ok(log.sync())
        })
    };
    let other = {
        let (gc, log) = (gc.clone(), log.clone());
        std::thread::spawn(move || first(gc, log))
    };
    first(gc.clone(), log.clone()).unwrap();
    other.join().unwrap().unwrap();
    for _ in 0..3 {
        let pos = log.append();
        gc.wait_durable(pos, || Ok(log.sync())).unwrap();
    }
    let stats = gc.stats();
    assert_eq!(
        (stats.syncs, stats.gathers, stats.gather_timeouts),
        (4, 1, 1)
    );
}

/// A leader's outcome: its `wait_durable` result and whether its sync ran.
type Leader = std::thread::JoinHandle<(Result<(), Error>, bool)>;

/// Two writers seen together, then one writes again alone and gathers; `wait` starts it and
/// returns once it is gathering.
fn leader_gathering(max_gather: Duration) -> (Arc<GroupCommit>, Leader) {
    let gc = Arc::new(GroupCommit::with_max_gather(0, max_gather));
    let log = Arc::new(Log::default());
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (gc, log) = (gc.clone(), log.clone());
            std::thread::spawn(move || {
                let pos = log.append();
                gc.wait_durable(pos, || {
                    until_waiting(&gc, 2);
                    Ok(log.sync())
                })
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap().unwrap();
    }
    let leader = {
        let (gc, log) = (gc.clone(), log.clone());
        std::thread::spawn(move || {
            let pos = log.append();
            let mut synced = false;
            let result = gc.wait_durable(pos, || {
                synced = true;
                Ok(log.sync())
            });
            (result, synced)
        })
    };
    while gc.stats().gathers == 0 {
        std::thread::sleep(Duration::from_micros(100));
    }
    (gc, leader)
}

#[test]
fn a_leader_covered_while_gathering_returns_without_syncing() {
    let (gc, leader) = leader_gathering(PATIENT);
    // A sync outside the group (a rotation's) covers the leader's write.
    gc.mark_durable(3);
    let (result, synced) = leader.join().unwrap();
    result.unwrap();
    assert!(!synced, "the leader synced what was already durable");
    assert_eq!(gc.stats().syncs, 1);
}

/// Waits up to five seconds (far beyond the millisecond the leader needs) for it to finish.
fn finishes_soon(leader: &Leader) -> bool {
    for _ in 0..5_000 {
        if leader.is_finished() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// The poison is set by another thread (a failed background sync), which wakes no condition
/// variable: the gathering leader must still notice it soon, not at the end of its bound (20 s
/// here; before, it slept all of it, and so did every writer waiting behind it).
#[test]
fn a_leader_poisoned_while_gathering_never_syncs() {
    let (gc, leader) = leader_gathering(PATIENT);
    gc.poison().set(&Error::invalid("background failure"));
    assert!(
        finishes_soon(&leader),
        "a poisoned leader went on gathering"
    );
    let (result, synced) = leader.join().unwrap();
    assert!(matches!(result, Err(Error::Poisoned { .. })), "{result:?}");
    assert!(!synced, "a sync ran after the engine was poisoned");
}

#[test]
fn a_failed_sync_of_a_gathered_group_fails_every_waiter() {
    const N: usize = 4;
    let gc = Arc::new(GroupCommit::with_max_gather(0, PATIENT));
    let log = Arc::new(Log::default());
    let calls = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..N)
        .map(|_| {
            let (gc, log, calls) = (gc.clone(), log.clone(), calls.clone());
            std::thread::spawn(move || {
                let pos = log.append();
                gc.wait_durable(pos, || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    until_waiting(&gc, N);
                    Err(Error::invalid("disk on fire"))
                })
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a failed sync was retried");
    let led = results
        .iter()
        .filter(|r| matches!(r, Err(Error::InvalidArgument(_))))
        .count();
    let poisoned = results
        .iter()
        .filter(|r| matches!(r, Err(Error::Poisoned { .. })))
        .count();
    assert_eq!((led, poisoned), (1, N - 1), "{results:?}");
}

/// A bound too large to add to the clock (`Duration::MAX`: gather without a time limit) is no
/// bound, not a panic that would leave the group marked as syncing for ever.
#[test]
fn a_leader_may_gather_without_a_time_bound() {
    let (gc, leader) = leader_gathering(Duration::MAX);
    gc.mark_durable(3);
    let (result, synced) = leader.join().expect("the gathering leader panicked");
    result.unwrap();
    assert!(!synced, "the leader synced what was already durable");
}

/// A sync closure that vouches for less than the position it was asked to cover (a defect in
/// an engine's sync path) must not leave the write appended, unacknowledged and the group
/// carrying on as if nothing happened: it poisons with a clear cause, and no sync runs again.
#[test]
fn a_sync_covering_less_than_its_leader_poisons() {
    let gc = GroupCommit::with_max_gather(0, PATIENT);
    let log = Log::default();
    let pos = log.append();
    let err = gc.wait_durable(pos, || Ok(pos - 1)).unwrap_err();
    assert!(
        gc.poison().is_set(),
        "a short sync left the group unpoisoned: {err}"
    );
    assert!(
        err.to_string().contains("below"),
        "the error should say the sync fell short: {err}"
    );
    let mut called = false;
    let again = gc.wait_durable(log.append(), || {
        called = true;
        Ok(log.sync())
    });
    assert!(matches!(again, Err(Error::Poisoned { .. })), "{again:?}");
    assert!(!called, "a sync ran after a short sync");
}

/// A rotation (`mark_durable`) that covers a gathering leader releases it like a sync would:
/// the leader then expects back only the writers that cover released, so the lone writer's
/// next write does not gather (before, it waited out its whole bound once, for a writer that
/// had left before the rotation).
#[test]
fn a_rotation_covering_a_gathering_leader_resets_the_expected_writers() {
    let (gc, leader) = leader_gathering(Duration::from_secs(2));
    gc.mark_durable(3);
    let (result, synced) = leader.join().unwrap();
    result.unwrap();
    assert!(!synced);
    gc.wait_durable(4, || Ok(4)).unwrap();
    let stats = gc.stats();
    assert_eq!(
        (stats.gathers, stats.gather_timeouts),
        (1, 0),
        "the write after the rotation gathered for a writer no one expected back"
    );
}

/// A gathering leader sleeps until its whole group is there: a writer arriving while others
/// are still missing does not wake it (before, every arrival did: a futex wake and a context
/// switch per writer and per sync, on the cores the arriving writers need).
#[test]
fn a_gathering_leader_is_woken_only_when_its_group_is_complete() {
    const N: usize = 3;
    let gc = Arc::new(GroupCommit::with_max_gather(0, PATIENT));
    let log = Arc::new(Log::default());
    let write = |gc: Arc<GroupCommit>, log: Arc<Log>, first: bool| {
        std::thread::spawn(move || {
            let pos = log.append();
            gc.wait_durable(pos, || {
                if first {
                    until_waiting(&gc, N);
                }
                Ok(log.sync())
            })
        })
    };
    let writers: Vec<_> = (0..N)
        .map(|_| write(gc.clone(), log.clone(), true))
        .collect();
    for w in writers {
        w.join().unwrap().unwrap();
    }
    // Three writers were seen together; one comes back and gathers, expecting three.
    let mut round = vec![write(gc.clone(), log.clone(), false)];
    while gc.stats().gathers == 0 {
        std::thread::sleep(Duration::from_micros(100));
    }
    for n in 2..=N {
        round.push(write(gc.clone(), log.clone(), false));
        if n < N {
            until_waiting(&gc, n);
            // Time for a wrongly woken leader to look and count itself woken early.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for w in round {
        w.join().unwrap().unwrap();
    }
    let stats = gc.stats();
    assert_eq!((stats.syncs, stats.gather_timeouts), (2, 0));
    assert_eq!(
        stats.early_wakeups, 0,
        "the gathering leader was woken before its group was complete"
    );
}

/// A sync that ends with writers asleep behind it (they appended after it read the log's end)
/// wakes one of them, the oldest, to lead the next sync, and leaves the others asleep until that
/// sync covers them: each is then woken once, released, without looking at the group's state
/// again. (Before, the end of every sync woke every waiter, and each took the group's mutex in
/// turn to look: a chain of wake-ups on the cores the writers need.)
#[test]
fn a_sync_wakes_one_writer_behind_it_to_lead_and_releases_the_rest_once_covered() {
    const BEHIND: usize = 3;
    let gc = Arc::new(GroupCommit::with_max_gather(0, Duration::ZERO));
    let log = Arc::new(Log::default());
    let first = log.append();
    let behind = {
        let (gc, log) = (gc.clone(), log.clone());
        std::thread::spawn(move || {
            until_waiting(&gc, 1);
            let writers: Vec<_> = (0..BEHIND)
                .map(|_| {
                    let (gc, log) = (gc.clone(), log.clone());
                    std::thread::spawn(move || {
                        let pos = log.append();
                        gc.wait_durable(pos, || Ok(log.sync()))
                    })
                })
                .collect();
            writers
                .into_iter()
                .map(|w| w.join().unwrap())
                .collect::<Vec<_>>()
        })
    };
    gc.wait_durable(first, || {
        // The end is read before the writers behind append, so this sync covers only `first`.
        let end = log.appended.load(Ordering::SeqCst);
        until_waiting(&gc, 1 + BEHIND);
        log.synced.fetch_max(end, Ordering::SeqCst);
        Ok(end)
    })
    .unwrap();
    for result in behind.join().unwrap() {
        result.unwrap();
    }
    let stats = gc.stats();
    assert_eq!(stats.syncs, 2, "the writers behind should share one sync");
    assert_eq!(
        stats.woken_to_look, 1,
        "only the next leader should be woken to look; the others are released once covered"
    );
}
