//! The write path: WAL append, memtable insert, group commit, memtable rotation and the stall
//! that waits for the flush thread. `docs/lsm.md` ("Write path") has the steps.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use engine_api::{Error, Result, SyncPolicy, WriteBatch};

use super::{Inner, Sealed, SuperVersion, Writer};
use crate::memtable::Memtable;
use crate::wal::WalWriter;

/// How long a stalled writer sleeps between checks (it is also woken by every flush).
const STALL_POLL: Duration = Duration::from_millis(50);

impl Inner {
    /// Writes a validated, non-empty batch.
    pub(crate) fn write(&self, batch: &WriteBatch) -> Result<()> {
        if self.read_only() {
            return Err(Error::ReadOnly);
        }
        self.poison().check()?;
        let ops = batch.ops();
        let mut w = self.writer.lock();
        self.make_room(&mut w)?;
        let first = w.last_seq + 1;
        let wal = w.wal.as_ref().ok_or(Error::ReadOnly)?;
        let appended = wal.append(first, ops).inspect_err(|e| {
            // A failed append may leave part of a record behind: refuse further writes.
            self.poison().set(e);
        })?;
        w.appended += appended;
        self.wal_tail.lock().appended = w.appended;
        self.current().mem.insert_batch(first, ops);
        w.last_seq += ops.len() as u64;
        let (end, last) = (w.appended, w.last_seq);
        self.allocated_seq.store(last, Ordering::SeqCst);
        let always = self.opts.common.sync == SyncPolicy::Always;
        if !always {
            self.visible_seq.store(last, Ordering::SeqCst);
        }
        drop(w);
        if always {
            self.commit.wait_durable(end, || self.sync_tail())?;
            // Everything up to `end` is durable, which covers every sequence number up to ours.
            self.visible_seq.fetch_max(last, Ordering::SeqCst);
        }
        self.counters.record_write(batch);
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
    /// 1. sync the active WAL (so every WAL but the newest is complete on disk);
    /// 2. create the next WAL and sync the directory;
    /// 3. swap in a fresh memtable, queue the sealed one, wake the flush thread.
    ///
    /// Any failure poisons: the WAL sequence is no longer known to be intact.
    pub(crate) fn rotate(&self, w: &mut Writer) -> Result<()> {
        let old = w.wal.as_ref().ok_or(Error::ReadOnly)?;
        self.poison().guard(|| old.file().sync())?;
        self.commit.mark_durable(w.appended);
        let number = self.versions.new_file_number();
        let wal = self
            .poison()
            .guard(|| WalWriter::create(&*self.storage, &self.dir, number))?;
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
        {
            let mut tail = self.wal_tail.lock();
            tail.file = Some(Arc::clone(wal.file()));
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
