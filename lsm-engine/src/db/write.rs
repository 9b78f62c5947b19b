//! The write path: WAL append, memtable insert, group commit, memtable rotation and the stall
//! that waits for the flush thread. `docs/lsm.md` ("Write path") has the steps.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use engine_api::{Error, MAX_BATCH_BYTES, Result, SyncPolicy, WriteBatch, check_key, check_value};

use super::{Inner, Sealed, SuperVersion, Writer};
use crate::key::{self, Kind};
use crate::memtable::Memtable;
use crate::op::{AsOp, Op};
use crate::wal::WalWriter;

/// The poison's cause for a writer that unwound between its WAL append and the writer's record
/// of it ([`Inner::append_and_apply`]).
const IN_APPEND: &str = "a writer unwound in its WAL append: the WAL and the writer's record \
                         of it may disagree";

/// How long a stalled writer sleeps between checks (it is also woken by every flush).
const STALL_POLL: Duration = Duration::from_millis(50);

/// The longest slowdown sleep, just before the stop threshold.
const MAX_SLOWDOWN: Duration = Duration::from_millis(2);

/// How far `v` is from `from` (0, exclusive of the slowdown) to `to` (1): 0 below `from`.
fn fraction(v: usize, from: usize, to: usize) -> f64 {
    fraction_u64(v as u64, from as u64, to as u64)
}

fn fraction_u64(v: u64, from: u64, to: u64) -> f64 {
    if v < from || to <= from {
        return 0.0;
    }
    engine_api::ratio(v - from + 1, to - from + 1).min(1.0)
}

/// Checks one operation as `WriteBatch::validate` would; the batch is built (for its error)
/// only when the operation is refused.
pub(crate) fn validate_one(op: Op<'_>) -> Result<()> {
    let fits = op.user_bytes() <= MAX_BATCH_BYTES;
    if fits && check_key(op.key).is_ok() && check_value(op.value).is_ok() {
        return Ok(());
    }
    let mut batch = WriteBatch::new();
    match op.kind {
        Kind::Put => batch.put(op.key, op.value),
        Kind::Delete => batch.delete(op.key),
    };
    batch.validate()
}

impl Inner {
    /// Writes a validated, non-empty batch.
    pub(crate) fn write(&self, batch: &WriteBatch) -> Result<()> {
        self.write_ops(batch.ops(), batch.user_bytes())
    }

    /// Writes one operation checked by [`validate_one`], with no `WriteBatch` built for it.
    pub(crate) fn write_one(&self, op: Op<'_>) -> Result<()> {
        self.write_ops(&[op], op.user_bytes())
    }

    /// Writes a validated, non-empty list of operations as one atomic batch.
    fn write_ops<T: AsOp>(&self, ops: &[T], user_bytes: usize) -> Result<()> {
        if self.read_only() {
            return Err(Error::ReadOnly);
        }
        self.poison().check()?;
        self.compactions.check_running()?;
        self.throttle()?;
        self.before_writer_lock();
        let mut w = self.writer.lock();
        self.make_room(&mut w)?;
        // Checked again under the lock, just before the append: a write refused as poisoned
        // must never reach the WAL (a background failure may have come meanwhile).
        self.poison().check()?;
        let first = key::seq_range(w.last_seq, ops.len()).ok_or_else(|| {
            Error::invalid(
                "sequence numbers exhausted: the batch would pass the internal key's maximum",
            )
        })?;
        let (end, last) = self
            .poison()
            .on_unwind(IN_APPEND, || self.append_and_apply(&mut w, first, ops))?;
        self.allocated_seq.store(last, Ordering::SeqCst);
        let always = self.opts.common.sync == SyncPolicy::Always;
        if !always {
            self.visible_seq.store(last, Ordering::SeqCst);
        }
        drop(w);
        if always {
            // Only a failed WAL sync fails this: a background failure meanwhile does not undo
            // a write its WAL sync made durable.
            self.commit
                .wait_durable(end, || self.sync_tail())
                .inspect_err(|e| self.poison().set(e))?;
            // Everything up to `end` is durable, which covers every sequence number up to ours.
            self.visible_seq.fetch_max(last, Ordering::SeqCst);
        }
        self.counters.record_write(ops.len(), user_bytes);
        Ok(())
    }

    /// Appends the batch to the WAL and inserts it into the memtable; returns the WAL position
    /// after it and its last sequence number. A failed append may leave part of a record
    /// behind: it poisons (as a panic in here does, [`IN_APPEND`]).
    fn append_and_apply<T: AsOp>(
        &self,
        w: &mut Writer,
        first: u64,
        ops: &[T],
    ) -> Result<(u64, u64)> {
        let wal = w.wal.as_ref().ok_or(Error::ReadOnly)?;
        let appended = wal
            .append(first, ops)
            .inspect_err(|e| self.poison().set(e))?;
        w.appended += appended;
        self.wal_tail.lock().appended = w.appended;
        self.current().mem.insert_batch(first, ops);
        w.last_seq += ops.len() as u64;
        Ok((w.appended, w.last_seq))
    }

    /// Write stalls: past the slowdown thresholds (L0 files, compaction debt) each write sleeps
    /// a little, longer the closer the tree is to the stop threshold, so writers slow down
    /// smoothly instead of hitting a wall; at the stop thresholds writes wait for compaction.
    /// Done before taking the writer lock, so the sleeping writer delays only itself. A writer
    /// waiting at a stop threshold re-checks, each time it wakes, poison, shutdown and whether
    /// compaction has stopped for good (each an error: nothing would lift the stall), and asks
    /// the manager to start what is due (a job whose thread could not be spawned is retried
    /// there: no flush comes to retry it while every writer waits).
    fn throttle(&self) -> Result<()> {
        let o = &self.opts;
        if !o.auto_compaction {
            return Ok(());
        }
        let started = Instant::now();
        let mut cause: Option<&'static str> = None;
        loop {
            let l0 = self.current().version.levels().first().map_or(0, Vec::len);
            let debt = self.compactions.debt_bytes();
            if l0 >= o.l0_stop_trigger || debt >= o.hard_pending_compaction_bytes {
                cause = Some(if l0 >= o.l0_stop_trigger {
                    "l0-stop"
                } else {
                    "pending-bytes-stop"
                });
                self.poison().check()?;
                self.compactions.check_running()?;
                self.compactions.check_and_compact();
                let mut bg = self.bg.lock();
                if bg.shutdown {
                    return Err(Error::invalid("engine is shutting down"));
                }
                self.bg_cv.wait_for(&mut bg, STALL_POLL);
                continue;
            }
            let l0_fill = fraction(l0, o.l0_slowdown_trigger, o.l0_stop_trigger);
            let debt_fill = fraction_u64(
                debt,
                o.soft_pending_compaction_bytes,
                o.hard_pending_compaction_bytes,
            );
            let fill = l0_fill.max(debt_fill);
            if fill > 0.0 {
                cause.get_or_insert(if l0_fill >= debt_fill {
                    "l0-slowdown"
                } else {
                    "pending-bytes-slowdown"
                });
                std::thread::sleep(MAX_SLOWDOWN.mul_f64(fill));
            }
            break;
        }
        if let Some(cause) = cause {
            self.counters.record_stall(cause, started.elapsed());
        }
        Ok(())
    }

    /// Makes sure the active memtable has room: rotates it when full, and waits for the flush
    /// thread when too many sealed memtables are queued.
    fn make_room(&self, w: &mut Writer) -> Result<()> {
        loop {
            let sv = self.current();
            if sv.mem.approximate_bytes() < self.opts.memtable_bytes {
                return Ok(());
            }
            if sv.imms.len() >= self.opts.max_immutable_memtables {
                drop(sv);
                self.stall_until_flushed()?;
                continue;
            }
            return self.rotate(w);
        }
    }

    /// Waits (holding the writer lock: every writer is stalled) until the flush thread has
    /// made room in the sealed-memtable queue.
    fn stall_until_flushed(&self) -> Result<()> {
        let started = Instant::now();
        let mut bg = self.bg.lock();
        while self.current().imms.len() >= self.opts.max_immutable_memtables {
            self.poison().check()?;
            if bg.shutdown {
                return Err(Error::invalid("engine is shutting down"));
            }
            self.bg_cv.wait_for(&mut bg, STALL_POLL);
        }
        drop(bg);
        self.counters
            .record_stall("memtable-stop", started.elapsed());
        Ok(())
    }

    /// Seals the active memtable and starts a new one with a new WAL:
    /// 1. check the poison under the writer lock (a sync of this WAL may have failed on another
    ///    thread since the caller's check: the rotation must not vouch for it);
    /// 2. cut the active WAL's preallocated tail and sync it (so every WAL but the newest is
    ///    complete on disk and ends at its last record); the sync fails without retrying if any
    ///    earlier sync of this WAL failed (`WalWriter::seal`);
    /// 3. create the next WAL and sync the directory;
    /// 4. swap in a fresh memtable, queue the sealed one, wake the flush thread.
    ///
    /// Any failure poisons: the WAL sequence is no longer known to be intact.
    pub(crate) fn rotate(&self, w: &mut Writer) -> Result<()> {
        self.poison().check()?;
        let old = w.wal.as_ref().ok_or(Error::ReadOnly)?;
        old.seal().inspect_err(|e| self.wal_sync_failed(e))?;
        self.commit.mark_durable(w.appended);
        let number = self.versions.new_file_number();
        let prev = (old.number(), old.len());
        let wal = self
            .poison()
            .guard(|| WalWriter::create(&*self.storage, &self.dir, number, prev))?;
        {
            let mut sv = self.sv.write();
            let mut imms = sv.imms.clone();
            imms.push(Sealed {
                mem: Arc::clone(&sv.mem),
                next_wal: number,
            });
            *sv = Arc::new(SuperVersion {
                mem: Arc::new(Memtable::new()),
                imms,
                version: Arc::clone(&sv.version),
            });
        }
        let wal = Arc::new(wal);
        {
            let mut tail = self.wal_tail.lock();
            tail.wal = Some(Arc::clone(&wal));
            tail.appended = w.appended;
        }
        w.wal = Some(wal);
        self.notify_bg();
        Ok(())
    }

    /// Seals the active memtable if it holds anything, then waits until every sealed memtable
    /// is flushed and the flush thread has let go of them.
    pub(crate) fn flush_all(&self) -> Result<()> {
        if self.read_only() {
            return Err(Error::ReadOnly);
        }
        self.poison().check()?;
        self.before_writer_lock();
        {
            let mut w = self.writer.lock();
            loop {
                let sv = self.current();
                if sv.mem.is_empty() {
                    break;
                }
                if sv.imms.len() >= self.opts.max_immutable_memtables {
                    drop(sv);
                    self.stall_until_flushed()?;
                    continue;
                }
                self.rotate(&mut w)?;
                break;
            }
        }
        let mut bg = self.bg.lock();
        while bg.flushing || !self.current().imms.is_empty() {
            self.poison().check()?;
            if bg.shutdown {
                return Err(Error::invalid("engine is shutting down"));
            }
            self.bg_cv.wait_for(&mut bg, STALL_POLL);
        }
        Ok(())
    }
}
