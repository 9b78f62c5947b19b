//! The write path: one active file, appends under a mutex, keydir updates, rotation, group
//! commit, and the in-order publication of durable writes.
//!
//! A write encodes its records, takes the writer mutex, appends them with one call and releases
//! the mutex. What happens next depends on the sync policy:
//!
//! - Under [`engine_api::SyncPolicy::Never`] and `Periodic` the keydir is updated (the write made
//!   visible) under the writer mutex, right after the append, as nothing waits for a sync.
//! - Under [`engine_api::SyncPolicy::Always`] a write is made visible only once it is durable,
//!   as in LevelDB, RocksDB and the LSM engine here: otherwise another thread could read a value
//!   that a failed sync (or a power loss) then takes away. So the write appends, releases the
//!   mutex, waits in [`engine_api::GroupCommit`] (concurrent writers share one `fdatasync`: the
//!   leader syncs the active file up to the end it read, which covers everyone who appended
//!   before it), and then *publishes*: it indexes its records in the keydir. Publication goes
//!   in sequence-number order across writers, by a ticket ([`Publish`]): each writer waits until
//!   the ticket reaches its first sequence number, indexes, and moves the ticket past its last.
//!   Out of order, an older put (or a put older than a delete) of the same key could be indexed
//!   last and win. A writer whose sync failed, or that finds the engine poisoned at its turn,
//!   passes its turn without indexing (later writers would wait for ever otherwise).
//!
//! A writer that unwinds while it holds the writer mutex to append ([`Torn`]) poisons the
//! engine before it lets go of the mutex: a panicking append may have put bytes in the file
//! past `Writer::len`, and the next write would be indexed where they are. Under `Always` it
//! then passes the turn of the sequence numbers it handed out ([`Pending`], taken before they
//! are; a group's in [`Appends`]).
//!
//! Merges decide what is live from the keydir, so before a merge reads its inputs it waits
//! until every record in them is published ([`Inner::wait_published`]): a rotation seals a file
//! while writers that appended to it may still be waiting for their sync or their turn, and a
//! merge that ran then would drop their records as stale and delete the file holding them.
//!
//! Every sync of the active file goes through one serialised path, [`Inner::sync_file`]: it
//! checks the poison, syncs, and sets the poison on failure before the next sync may start, so
//! that of two syncs racing on one descriptor (Linux reports a writeback error to only one
//! of them) the second never succeeds after the first failed and acknowledges lost data. The
//! records a write appends carry the file's synced length at that moment (recovery tells
//! damage from a torn tail with it).
//!
//! Rotation (when the next record would pass `max_file_size`): sync the active file's data,
//! append a seal record, sync again (so the seal can never reach the disk before the data it
//! seals); create the next file, write its header, sync it and sync the directory; then switch.
//! A failed sync poisons the engine. The sealed file's hint is written later by the background
//! worker.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use engine_api::{Error, IoClass, Result, Storage, SyncPolicy, WritableFile};
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::datafile::{DATA_START, DataFile, FileName, FileShape, encode_header, new_nonce};
use crate::engine::Inner;
use crate::group::{Followers, Joined, Lead, user_bytes};
use crate::keydir::Loc;
use crate::record::{self, Kind, SEAL_LEN};
use crate::worker::Job;

/// [`Torn`]'s cause for a publishing turn (`Always`).
const IN_PUBLISH: &str = "a writer unwound while publishing (indexing) its write: the keydir \
                          may hold part of it";

/// [`Torn`]'s cause for a sync of the active file.
const IN_SYNC: &str = "a sync of the active file unwound: its outcome is unknown";

/// [`Torn`]'s cause for a rotation that `compact()` starts.
const IN_ROTATION: &str = "a rotation unwound: the active file and the writer's record of it \
                           may disagree";

/// Bytes of a batch's closing record.
const BATCH_END_BYTES: usize = record::HEADER_LEN + 12;

/// A write buffer grown past this by a big batch or group is not kept.
const MAX_KEPT_BUF: usize = 4 << 20;

/// The least the active file is preallocated ahead of its end (`docs/durability.md`,
/// "Bitcask data-file preallocation"): an append inside the preallocated size leaves the
/// file's size alone, so its `fdatasync` has no inode size to journal. The step then grows
/// with the file, up to [`PREALLOCATE_MAX`], and never past `max_file_size`.
const PREALLOCATE_MIN: u64 = 64 << 10;

/// The most the active file is preallocated ahead of its end: one size-changing sync per
/// 4 MiB (about 30,000 puts of 100-byte values), and at most 4 MiB of zeros for an open after
/// a crash to read (preallocating to `max_file_size`, 128 MiB by default, would make that
/// open read up to 128 MiB of zeros and save nothing measurable).
const PREALLOCATE_MAX: u64 = 4 << 20;

/// The active file and the positions the writer tracks.
pub(crate) struct Writer {
    file: Arc<DataFile>,
    out: Arc<dyn WritableFile>,
    /// Length of the active file.
    len: u64,
    /// Bytes appended through this engine across all files: the group-commit position.
    appended: u64,
    next_seq: u64,
    /// Records in the active file and their sequence range (for its seal).
    records: u64,
    min_seq: u64,
    buf: Vec<u8>,
    /// The active file's size as preallocated; at most `len` when it has no zero tail (not
    /// preallocated yet, or cut).
    allocated: u64,
}

/// What the active file's sync needs, read under the writer mutex.
struct ActiveEnd {
    file: Arc<DataFile>,
    out: Arc<dyn WritableFile>,
    /// The file's length: what the sync makes durable.
    len: u64,
    /// The group-commit position: what the sync covers.
    pos: u64,
}

/// One operation to write: a key and a value (`None` for a delete).
pub(crate) type Op<'a> = (&'a [u8], Option<&'a [u8]>);

/// The publish ticket of [`SyncPolicy::Always`]: the next sequence number to be published
/// (indexed in the keydir), the writers waiting for their turn, and the condition merges wait
/// on for it to move.
pub(crate) struct Publish {
    next: Mutex<Ticket>,
    moved: Condvar,
}

/// The next sequence number to publish, and the writers waiting for a later one: each sleeps on
/// a condition of its own, so that a moved ticket wakes only the writer whose turn it is (one
/// shared condition woke every waiting writer at every move, and all but one slept again).
struct Ticket {
    next: u64,
    turns: Vec<(u64, Arc<Condvar>)>,
}

impl Publish {
    /// Every sequence number below `next_seq` is published (open: the keydir holds them all).
    pub(crate) fn new(next_seq: u64) -> Self {
        Publish {
            next: Mutex::new(Ticket {
                next: next_seq,
                turns: Vec::new(),
            }),
            moved: Condvar::new(),
        }
    }
}

impl Ticket {
    /// Sleeps (on a condition of its own) until the ticket reaches `first_seq`.
    fn wait_for(ticket: &mut MutexGuard<'_, Ticket>, first_seq: u64) {
        if ticket.next >= first_seq {
            return;
        }
        let turn = Arc::new(Condvar::new());
        ticket.turns.push((first_seq, Arc::clone(&turn)));
        while ticket.next < first_seq {
            turn.wait(ticket);
        }
        ticket.turns.retain(|(_, t)| !Arc::ptr_eq(t, &turn));
    }

    /// Moves the ticket to `end_seq` and wakes the writer whose turn that makes it.
    fn pass(&mut self, end_seq: u64) {
        self.next = self.next.max(end_seq);
        for (_, turn) in self.turns.iter().filter(|(seq, _)| *seq <= self.next) {
            turn.notify_one();
        }
    }
}

/// Where an append put its records: enough to index them later.
#[derive(Clone, Copy)]
struct Appended {
    /// The group-commit position just past the records.
    pos: u64,
    /// Offset of the first record in the file.
    start: u64,
    first_seq: u64,
    /// One past the last record's sequence number.
    end_seq: u64,
}

/// Writes appended under [`SyncPolicy::Always`] and not yet published: sequence numbers
/// `first_seq..end_seq`. If dropped without publishing (a panic on the way), they pass their
/// turn, so later writers do not wait for ever. Taken before the append (under the writer
/// mutex, declared before it, so that an unwinding writer lets go of the mutex before it
/// waits for its turn: a writer ahead may need the mutex to sync): an append that panics once
/// its bytes may be in the file has handed out its sequence numbers too.
struct Pending<'a> {
    inner: &'a Inner,
    first_seq: u64,
    end_seq: u64,
    done: bool,
}

impl<'a> Pending<'a> {
    /// Holds no turn (yet).
    fn none(inner: &'a Inner) -> Self {
        Pending {
            inner,
            first_seq: 0,
            end_seq: 0,
            done: true,
        }
    }

    /// Holds the turn of sequence numbers `first_seq..end_seq` (under `Always`; under the
    /// other policies nothing is published in turns, and the range only tells what was
    /// handed out).
    fn new(inner: &'a Inner, first_seq: u64, end_seq: u64, always: bool) -> Self {
        Pending {
            inner,
            first_seq,
            end_seq,
            done: !always,
        }
    }
}

impl Pending<'_> {
    /// Waits for this turn and runs `index` (or, with `None`, only passes the turn); moves the
    /// ticket past the sequence numbers either way.
    fn finish(mut self, index: Option<impl FnOnce() -> Result<()>>) -> Result<()> {
        let result = self.inner.take_turn(self.first_seq, self.end_seq, index);
        self.done = true;
        result
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        // No sequence numbers, no turn (a group that failed before its first append).
        if !self.done && self.first_seq < self.end_seq {
            let none: Option<fn() -> Result<()>> = None;
            let _ = self.inner.take_turn(self.first_seq, self.end_seq, none);
        }
    }
}

/// Held (as a value, never dropped on a way out: see [`Inner::poison_on_unwind`]) by a writer
/// that holds the writer mutex while it changes the active file: its rotation, its append and
/// the bookkeeping after it (`Writer::len`, the sequence numbers, under `Never` and `Periodic`
/// the keydir). A panic in there can leave bytes in the file past `Writer::len` (an append
/// that panicked once they reached it), sequence numbers handed out for records nobody will
/// publish, a file half sealed: the next writer would append after bytes it does not know of
/// and be indexed where they are. So the engine is poisoned, before the mutex is let go.
///
/// The same guard (with its own cause) covers the other places that change, under one lock,
/// two things that must agree: a rotation `compact()` starts, a publishing turn's keydir
/// update (a batch half indexed), a sync (its outcome unknown, as a failed one's), a merge
/// from its commit point on.
pub(crate) struct Torn<'a>(pub(crate) &'a Inner, pub(crate) &'static str);

/// [`Torn`]'s cause for a writer's append.
const IN_APPEND: &str = "a writer unwound in its append: the active file and the writer's \
                         record of it may disagree";

impl Drop for Torn<'_> {
    fn drop(&mut self) {
        self.0.commit.poison().set(&Error::Poisoned {
            cause: self.1.into(),
        });
    }
}

/// The chunks a group's leader has appended and not yet handed on to be answered, and the
/// turn of every sequence number the group handed out and did not hand back (appended or
/// not yet). If the leader unwinds while it holds some (a panic in a rotation between two
/// chunks, in a chunk's append), nothing vouches for what their writers are told: the engine
/// is poisoned, and under `Always` their publishing turn is passed (later writers would
/// otherwise wait for it for ever), after the writer mutex is let go (declared before it).
struct Appends<'a> {
    chunks: Vec<Chunk>,
    turn: Pending<'a>,
}

impl Drop for Appends<'_> {
    fn drop(&mut self) {
        // `turn` passes the turn when dropped, after this.
        if self.turn.first_seq < self.turn.end_seq {
            let cause = "the leader of a write group unwound after appending part of it";
            self.turn.inner.commit.poison().set(&Error::Poisoned {
                cause: cause.into(),
            });
        }
    }
}

/// Records of a write group appended with one call, to one file.
struct Chunk {
    file: Arc<DataFile>,
    at: Appended,
    /// The group's entries whose records these are.
    entries: Range<usize>,
}

/// One writer's part of a group: its operations and whether they form a batch.
type Entry<'a, 'b> = (&'a [Op<'b>], bool);

impl Inner {
    /// Creates a fresh active file and the writer around it.
    pub(crate) fn new_writer(&self, next_seq: u64) -> Result<Writer> {
        let (file, out) = self.create_active(next_seq)?;
        Ok(Writer {
            file,
            out,
            len: DATA_START,
            appended: 0,
            next_seq,
            records: 0,
            min_seq: u64::MAX,
            buf: Vec::with_capacity(4096),
            allocated: 0,
        })
    }

    /// Creates data file `<id>.data` whose records will start at `base_seq`: header written
    /// under a temporary name, synced, renamed into place, directory synced. So a `.data` file
    /// always has a whole header, and its name is durable before any acknowledged write lands
    /// in it.
    fn create_active(&self, base_seq: u64) -> Result<(Arc<DataFile>, Arc<dyn WritableFile>)> {
        let id = self.allocate_file_id()?;
        let path = FileName::Data(id).path(&self.dir);
        let tmp = FileName::DataTemp(id).path(&self.dir);
        let out: Arc<dyn WritableFile> = Arc::from(self.storage.create(&tmp, IoClass::Log)?);
        let nonce = new_nonce();
        out.append(&encode_header(base_seq, nonce))?;
        let poison = self.commit.poison();
        self.sync_file(None, &*out, DATA_START)?;
        // Opened before the rename (handles follow the file), so that nothing but the
        // directory sync can fail once the name exists: a failure leaves no stray `.data`.
        let reader = self.storage.open(&tmp, IoClass::UserRead)?;
        self.storage.rename(&tmp, &path)?;
        poison.guard(|| self.storage.sync_dir(&self.dir))?;
        let file = DataFile::new(id, reader, FileShape::empty(base_seq, nonce));
        file.set_path(path);
        self.files.write().insert(id, Arc::clone(&file));
        Ok((file, out))
    }

    /// Writes `ops` (one put or delete, or a whole batch) and acknowledges them per the policy:
    /// itself if no one else is writing, otherwise as part of a write group ([`crate::group`]).
    pub(crate) fn write_ops(&self, ops: &[Op<'_>], batch: bool) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        // The fast path: alone, outside the queue, as before the write groups (it never leads,
        // so it hands nothing over when done; see `WriteQueue::idle`).
        if self.queue.idle()
            && let Some(guard) = self.writer.try_lock()
        {
            return self.write_alone(guard, None, ops, batch);
        }
        match self.queue.join(ops, batch) {
            Joined::Lead => self.lead(ops, batch),
            Joined::Done(result) => result,
        }
    }

    /// The leader's write: its own operations, and those of the writers queued behind it.
    fn lead(&self, ops: &[Op<'_>], batch: bool) -> Result<()> {
        let mut lead = Lead::new(&self.queue);
        let guard = self.writer.lock();
        // Taken under the writer mutex: whoever queued while it was busy joins this group.
        let taken = self.queue.take(user_bytes(ops));
        if taken.is_empty() {
            return self.write_alone(guard, Some(lead), ops, batch);
        }
        let followers = Followers::new(taken);
        let views: Vec<Vec<Op<'_>>> = followers.reqs.iter().map(|r| r.ops()).collect();
        let mut entries: Vec<Entry<'_, '_>> = Vec::with_capacity(views.len() + 1);
        entries.push((ops, batch));
        entries.extend(
            views
                .iter()
                .zip(&followers.reqs)
                .map(|(v, r)| (&v[..], r.batch)),
        );
        self.write_group(guard, &mut lead, &entries, &followers)
    }

    /// One writer's write, no group: appends, releases the writer mutex and the lead (if it
    /// led; not on the fast path), then (under `Always`) waits to be durable and publishes.
    #[inline(always)]
    fn write_alone(
        &self,
        guard: MutexGuard<'_, Option<Writer>>,
        lead: Option<Lead<'_>>,
        ops: &[Op<'_>],
        batch: bool,
    ) -> Result<()> {
        let always = self.sync_policy == SyncPolicy::Always;
        // Declared before the mutex and the lead: an unwinding writer lets go of them first.
        let mut pending = Pending::none(self);
        let (mut guard, lead) = (guard, lead);
        // Not `ok_or`: its error would be built and dropped on every write.
        let Some(w) = guard.as_mut() else {
            return Err(Error::ReadOnly);
        };
        self.commit.poison().check()?;
        if always {
            let first_seq = w.next_seq;
            pending = Pending::new(self, first_seq, first_seq + ops.len() as u64, true);
        }
        // Not through a closure (`poison_on_unwind`): it was not inlined, ~40 instructions.
        let torn = Torn(self, IN_APPEND);
        let at = self.append_ops(w, ops, batch, !always);
        std::mem::forget(torn);
        let at = at.inspect_err(|_| {
            // Under `Always` an error means nothing was appended, and the sequence numbers
            // are handed out again: this turn is the next writer's.
            pending.done = true;
        })?;
        debug_assert!(
            !always || (at.first_seq, at.end_seq) == (pending.first_seq, pending.end_seq)
        );
        // Under `Always` the records are indexed only once durable, in sequence order.
        let file = always.then(|| Arc::clone(&w.file));
        drop(guard);
        drop(lead);
        self.counters.wrote(ops);
        let Some(file) = file else {
            return Ok(());
        };
        self.publish_durable(pending, at.pos, || {
            self.index(&file, ops, at.start, at.first_seq)
        })
    }

    /// Runs `f` (under the lock that guards what it changes), poisoning the engine with
    /// `cause` if it unwinds ([`Torn`]). The guard is forgotten on the way out instead of
    /// disarmed: nothing to store or test on a call that returns.
    pub(crate) fn poison_on_unwind<T>(&self, cause: &'static str, f: impl FnOnce() -> T) -> T {
        let torn = Torn(self, cause);
        let out = f();
        std::mem::forget(torn);
        out
    }

    /// Under `Always`: waits until the records appended up to group-commit position `pos` are
    /// durable, then publishes them with `index` in the turn `pending` holds. Not durable
    /// means never visible; the turn is passed either way.
    fn publish_durable(
        &self,
        pending: Pending<'_>,
        pos: u64,
        index: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let none: Option<fn() -> Result<()>> = None;
        let result = match self.commit.wait_durable(pos, || self.sync_active()) {
            Ok(()) => pending.finish(Some(index)),
            Err(e) => pending.finish(none).and(Err(e)),
        };
        result.map_err(|e| self.appended_but_not_durable(e))
    }

    /// A group's write: every entry's records appended (with one call per file they go to),
    /// indexed (now, or under `Always` once durable, in one publishing turn), and every
    /// follower given its outcome. Returns the leader's (entry 0's).
    fn write_group(
        &self,
        guard: MutexGuard<'_, Option<Writer>>,
        lead: &mut Lead<'_>,
        entries: &[Entry<'_, '_>],
        followers: &Followers,
    ) -> Result<()> {
        let always = self.sync_policy == SyncPolicy::Always;
        let mut appends = Appends {
            chunks: Vec::new(),
            turn: Pending::none(self),
        };
        // Declared after `appends`, so that a leader unwinding lets go of the writer mutex
        // before `appends` waits for the turns ahead: a writer ahead may need the mutex to
        // sync (`active_end`).
        let mut guard = guard;
        let failed = match guard.as_mut() {
            None => Some(Error::ReadOnly),
            Some(w) => match self.commit.poison().check() {
                Err(e) => Some(e),
                Ok(()) => self.append_group(w, entries, always, &mut appends),
            },
        };
        drop(guard);
        lead.pass();
        let chunks = std::mem::take(&mut appends.chunks);
        let turn = std::mem::replace(&mut appends.turn, Pending::none(self));
        let appended = chunks.last().map_or(0, |c| c.entries.end);
        for (ops, _) in entries.get(..appended).unwrap_or_default() {
            self.counters.wrote(ops);
        }
        let result = match chunks.last() {
            Some(last) if always => {
                let index = || self.index_chunks(&chunks, entries);
                self.publish_durable(turn, last.at.pos, index)
            }
            _ => Ok(()),
        };
        followers.finish(appended.saturating_sub(1), &result);
        let failed = failed.map_or(Ok(()), Err);
        followers.finish(entries.len() - appended.max(1), &failed);
        if appended > 0 { result } else { failed }
    }

    /// Appends the entries in order ([`Inner::append_entries`]), poisoning the engine if it
    /// unwinds, and keeps in `appends.turn` the sequence numbers the group handed out and did
    /// not hand back (those of its chunks, once it returns). Indexes them now unless `always`.
    fn append_group<'a>(
        &'a self,
        w: &mut Writer,
        entries: &[Entry<'_, '_>],
        always: bool,
        appends: &mut Appends<'a>,
    ) -> Option<Error> {
        let first_seq = w.next_seq;
        appends.turn = Pending::new(self, first_seq, first_seq, always);
        let failed = self.poison_on_unwind(IN_APPEND, || {
            self.append_entries(w, entries, !always, appends)
        });
        // A failure hands the sequence numbers of the chunk it hit back out.
        appends.turn.end_seq = w.next_seq;
        failed
    }

    /// Appends the entries in order, one write call per file they go to (a group that would
    /// pass `max_file_size` is cut at an entry boundary and the file rotated). Pushes the
    /// chunks appended (and indexed, if `index_now`) to `appends` as each is written, so that
    /// a failure or a panic after one leaves it to be answered: entries up to the last chunk's
    /// end are written; the error, if any, is every later entry's. Moves the end of
    /// `appends.turn` past each entry it numbers, so that a panic passes their turns too.
    fn append_entries(
        &self,
        w: &mut Writer,
        entries: &[Entry<'_, '_>],
        index_now: bool,
        appends: &mut Appends<'_>,
    ) -> Option<Error> {
        let chunks = &mut appends.chunks;
        let mut from = 0;
        w.buf.clear();
        let mut first_seq = w.next_seq;
        for (i, (ops, batch)) in entries.iter().enumerate() {
            let end = w.len + w.buf.len() as u64;
            let full = end + encoded_len(ops, *batch) as u64 > self.max_file_size;
            if (full && end > DATA_START) || w.file.is_sealed() {
                match self.flush_chunk(w, entries, from..i, first_seq, index_now) {
                    Ok(c) => chunks.extend(c),
                    Err(e) => return Some(e),
                }
                if let Err(e) = self.rotate(w) {
                    return Some(e);
                }
                // The seal went through the buffer.
                w.buf.clear();
                (from, first_seq) = (i, w.next_seq);
            }
            if let Err(e) = encode_ops(w, ops, *batch) {
                w.next_seq = first_seq;
                return Some(e);
            }
            appends.turn.end_seq = w.next_seq;
        }
        match self.flush_chunk(w, entries, from..entries.len(), first_seq, index_now) {
            Ok(c) => chunks.extend(c),
            Err(e) => return Some(e),
        }
        if w.buf.capacity() > MAX_KEPT_BUF {
            w.buf = Vec::with_capacity(4096);
        }
        None
    }

    /// Appends the encoded records of `entries[range]` (sequence numbers from `first_seq`)
    /// with one call, and indexes them if `index_now`. `None` if the range is empty.
    fn flush_chunk(
        &self,
        w: &mut Writer,
        entries: &[Entry<'_, '_>],
        range: Range<usize>,
        first_seq: u64,
        index_now: bool,
    ) -> Result<Option<Chunk>> {
        if range.is_empty() {
            return Ok(None);
        }
        let start = w.len;
        if let Err(e) = self.append_records(w) {
            w.next_seq = first_seq;
            w.buf.clear();
            return Err(e);
        }
        w.buf.clear();
        w.records += w.next_seq - first_seq;
        w.min_seq = w.min_seq.min(first_seq);
        w.file.grew(w.len, w.records, w.min_seq, w.next_seq - 1);
        let chunk = Chunk {
            file: Arc::clone(&w.file),
            at: Appended {
                pos: w.appended,
                start,
                first_seq,
                end_seq: w.next_seq,
            },
            entries: range,
        };
        if index_now {
            self.index_chunks(std::slice::from_ref(&chunk), entries)?;
        }
        Ok(Some(chunk))
    }

    /// Indexes the records of `chunks`, in sequence order. Runs of single puts and deletes go
    /// to the keydir together, grouped by shard ([`crate::keydir::KeyDir::apply_many`]); a
    /// batch goes whole, with its shards locked at once.
    fn index_chunks(&self, chunks: &[Chunk], entries: &[Entry<'_, '_>]) -> Result<()> {
        for chunk in chunks {
            let (mut offset, mut seq) = (chunk.at.start, chunk.at.first_seq);
            let mut run: Vec<(&[u8], Option<Loc>)> = Vec::new();
            let part = entries.get(chunk.entries.clone()).unwrap_or_default();
            for (ops, batch) in part {
                if *batch {
                    self.index_run(&chunk.file, &mut run)?;
                    self.index(&chunk.file, ops, offset, seq)?;
                    offset += encoded_len(ops, true) as u64;
                    seq += ops.len() as u64;
                    continue;
                }
                for op in *ops {
                    let loc = loc_at(chunk.file.id(), offset, op, seq)?;
                    offset += u64::from(loc.len);
                    seq += 1;
                    run.push((op.0, op.1.map(|_| loc)));
                }
            }
            self.index_run(&chunk.file, &mut run)?;
        }
        Ok(())
    }

    /// Applies a run of single puts and deletes to the keydir (a full shard poisons, as in
    /// [`Inner::index`]) and empties it.
    fn index_run(&self, data: &Arc<DataFile>, run: &mut Vec<(&[u8], Option<Loc>)>) -> Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        let old = self.keydir.apply_many(run);
        let old = old.inspect_err(|e| self.commit.poison().set(e))?;
        for ((_, new), old) in run.iter().zip(old) {
            self.account(data, *new, old);
        }
        run.clear();
        Ok(())
    }

    /// Waits until sequence number `first_seq` is the next to publish, runs `index` (unless it
    /// is `None` or the engine is poisoned), then moves the ticket to `end_seq`. The writers
    /// ahead are all past their append, so each is about to be woken by a sync (or its failure)
    /// or is publishing: the wait holds no I/O and no other lock. It does not look at the
    /// poison while it waits (a second reader asked): every writer ahead holds its turn in a
    /// guard that passes it on every way out (`Pending`, a leader's `Appends`), and its wait
    /// for a sync ends when that sync ends, whatever its outcome. A writer ahead stuck in a
    /// sync that never returns keeps this one from being durable at all (syncs run one at a
    /// time, and any later one covers the writer ahead too), so it never gets here. (Leaving
    /// early on the poison would stop the ticket short of this turn, so every later wait
    /// would have to leave on the poison too.)
    fn take_turn(
        &self,
        first_seq: u64,
        end_seq: u64,
        index: Option<impl FnOnce() -> Result<()>>,
    ) -> Result<()> {
        let mut ticket = self.publish.next.lock();
        Ticket::wait_for(&mut ticket, first_seq);
        debug_assert_eq!(
            ticket.next, first_seq,
            "a sequence number was published twice"
        );
        let result = match index {
            Some(index) => self.commit.poison().check().and_then(|()| {
                // A panic in the keydir update may leave part of the write indexed (a batch
                // half applied): no later write or merge may build on that. Poisoned before
                // the ticket moves (the guard drops before `next`).
                let torn = Torn(self, IN_PUBLISH);
                let indexed = index();
                std::mem::forget(torn);
                indexed
            }),
            None => Ok(()),
        };
        ticket.pass(end_seq);
        self.publish.moved.notify_all();
        result
    }

    /// The merge barrier: returns once every record with a sequence number up to `seq` is
    /// published (indexed, or passed over because it failed), so that the keydir tells what in
    /// a sealed file is live. Only `Always` defers publication; the other policies index under
    /// the writer mutex, before the file holding the records can be sealed. Called with no
    /// lock a publishing writer needs (the merge lock is not one of them).
    ///
    /// # Errors
    /// `Poisoned` if the engine is (writers ahead pass their turns then, but a merge has
    /// nothing left to do), or an interruption if the engine is shutting down.
    pub(crate) fn wait_published(&self, seq: u64) -> Result<()> {
        if self.sync_policy != SyncPolicy::Always {
            return Ok(());
        }
        let mut next = self.publish.next.lock();
        while next.next <= seq {
            self.commit.poison().check()?;
            if self.stopping() {
                return Err(Error::io(
                    "merge",
                    &self.dir,
                    std::io::Error::new(std::io::ErrorKind::Interrupted, "engine shutting down"),
                ));
            }
            // Timed, so that a poisoning elsewhere is noticed even if no writer moves.
            self.publish
                .moved
                .wait_for(&mut next, Duration::from_millis(10));
        }
        Ok(())
    }

    /// This write was appended when a sync failed, its own or one another thread or the
    /// background worker ran, or the engine was poisoned before the write's turn to be
    /// published came: it was not made visible and it may or may not survive, which is what
    /// an I/O error says. `Poisoned` is kept for writes refused before they were appended.
    fn appended_but_not_durable(&self, e: Error) -> Error {
        match e {
            Error::Poisoned { cause } => Error::io(
                "sync",
                self.dir.clone(),
                std::io::Error::other(format!(
                    "the write was appended but could not be acknowledged (the engine failed \
                     before it was durable and published): {cause}"
                )),
            ),
            other => other,
        }
    }

    /// Appends `ops` under the writer mutex, and indexes them now if `index_now` (under
    /// `Always` the caller indexes them once durable); returns where they went. Inlined: a
    /// call here cost a lone put ~50 instructions (callgrind), a fifth of what the write
    /// groups had added to it.
    #[inline(always)]
    fn append_ops(
        &self,
        w: &mut Writer,
        ops: &[Op<'_>],
        batch: bool,
        index_now: bool,
    ) -> Result<Appended> {
        let bytes = encoded_len(ops, batch);
        let full = w.len + bytes as u64 > self.max_file_size && w.len > DATA_START;
        if full || w.file.is_sealed() {
            self.rotate(w)?;
        }
        w.buf.clear();
        let first_seq = w.next_seq;
        encode_ops(w, ops, batch)?;
        let start = w.len;
        if let Err(e) = self.append_records(w) {
            // Nothing was appended (or the engine is poisoned): the sequence numbers are
            // handed out again, so the publish ticket never waits for a write that is not.
            w.next_seq = first_seq;
            return Err(e);
        }
        w.records += ops.len() as u64;
        w.min_seq = w.min_seq.min(first_seq);
        w.file.grew(w.len, w.records, w.min_seq, w.next_seq - 1);
        if index_now {
            self.index(&w.file, ops, start, first_seq)?;
        }
        if w.buf.capacity() > MAX_KEPT_BUF {
            // A big batch passed: do not keep its buffer for good.
            w.buf = Vec::with_capacity(4096);
        }
        Ok(Appended {
            pos: w.appended,
            start,
            first_seq,
            end_seq: w.next_seq,
        })
    }

    /// Appends the writer's buffer of records inside the preallocated size
    /// ([`Inner::preallocate_for`]).
    #[inline(always)]
    fn append_records(&self, w: &mut Writer) -> Result<()> {
        self.preallocate_for(w)?;
        self.append_buf(w)
    }

    /// Makes the buffer's bytes land inside the preallocated size: if they would pass it, the
    /// file is extended (with zeros, writing nothing) to their end plus a step as long as the
    /// file, between [`PREALLOCATE_MIN`] and [`PREALLOCATE_MAX`], but not past
    /// `max_file_size` (a rotation comes first). The next sync makes the new size durable; a
    /// crash before it may keep it or not, and open takes zeros after the last record of the
    /// previous run's active file for its end. A failure appends nothing.
    #[inline(always)]
    fn preallocate_for(&self, w: &mut Writer) -> Result<()> {
        let end = w.len + w.buf.len() as u64;
        if end <= w.allocated {
            return Ok(());
        }
        let step = end.clamp(PREALLOCATE_MIN, PREALLOCATE_MAX);
        let upto = (end + step).min(self.max_file_size);
        if upto > end {
            w.out.preallocate(upto)?;
            w.allocated = upto;
        }
        Ok(())
    }

    /// Cuts the active file's preallocated tail (`set_len` to its end), through the one sync
    /// path: a failed cut poisons, as the file's size is then unknown. Made durable by the
    /// sync that follows (the seal's first). Cut whatever `allocated` says: a preallocation
    /// that failed may still have changed the size (an extending `ftruncate` can fail
    /// halfway), and zeros after a durable seal would be corruption at the next open.
    fn cut_preallocated(&self, w: &mut Writer) -> Result<()> {
        let _one_at_a_time = self.sync_lock.lock();
        let poison = self.commit.poison();
        poison.check()?;
        poison.guard(|| w.out.truncate(w.len))?;
        w.allocated = 0;
        Ok(())
    }

    /// Appends the writer's buffer; a failed append is cut back off the file (the preallocated
    /// tail with it), and if that fails too the engine is poisoned (later appends would land
    /// after garbage).
    fn append_buf(&self, w: &mut Writer) -> Result<()> {
        if let Err(e) = w.out.append(&w.buf) {
            w.allocated = 0;
            if let Err(cut) = w.out.truncate(w.len) {
                self.commit.poison().set(&cut);
            }
            return Err(e);
        }
        w.len += w.buf.len() as u64;
        w.appended += w.buf.len() as u64;
        Ok(())
    }

    /// Points the keydir at the records appended to `data` from `start` (sequence numbers from
    /// `first_seq`) and moves live-byte counts between files. A keydir failure (a full shard)
    /// after the append would leave disk and index disagreeing: it poisons.
    fn index(
        &self,
        data: &Arc<DataFile>,
        ops: &[Op<'_>],
        start: u64,
        first_seq: u64,
    ) -> Result<()> {
        let file = data.id();
        if let [op] = ops {
            // One put or delete: no batch locking, no allocation.
            let loc = loc_at(file, start, op, first_seq)?;
            let new = op.1.map(|_| loc);
            let old = match new {
                Some(loc) => self.keydir.put(op.0, loc),
                None => Ok(self.keydir.remove(op.0)),
            };
            let old = old.inspect_err(|e| self.commit.poison().set(e))?;
            self.account(data, new, old);
            return Ok(());
        }
        let mut offset = start;
        let mut changes: Vec<(&[u8], Option<Loc>)> = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let loc = loc_at(file, offset, op, first_seq + i as u64)?;
            offset += u64::from(loc.len);
            changes.push((op.0, op.1.map(|_| loc)));
        }
        let old = self.keydir.apply_batch(&changes);
        let old = old.inspect_err(|e| self.commit.poison().set(e))?;
        for ((_, new), old) in changes.iter().zip(old) {
            self.account(data, *new, old);
        }
        Ok(())
    }

    /// Live bytes follow the keydir: the new record is live, the one it replaced is not.
    fn account(&self, data: &Arc<DataFile>, new: Option<Loc>, old: Option<Loc>) {
        if let Some(new) = new {
            data.add_live(u64::from(new.len));
        }
        if let Some(old) = old {
            self.file_dead(&old, data);
        }
    }

    /// The record at `old` is no longer live (`near` is the file just written, where it often
    /// is: that spares a look-up in the file table).
    pub(crate) fn file_dead(&self, old: &Loc, near: &Arc<DataFile>) {
        if old.file == near.id() {
            near.remove_live(u64::from(old.len));
        } else if let Some(f) = self.files.read().get(&old.file) {
            f.remove_live(u64::from(old.len));
        }
    }

    /// Seals the active file (unless a failed rotation already did) and starts the next one.
    /// A failed seal append is cut back off; a failed sync poisons; a failed creation of the
    /// next file leaves the writer on the sealed file, and the next write tries again (it never
    /// appends after a seal).
    pub(crate) fn rotate(&self, w: &mut Writer) -> Result<()> {
        if !w.file.is_sealed() {
            self.seal_active(w)?;
            self.send(Job::Sealed(w.file.id()));
        }
        let (file, out) = self.create_active(w.next_seq)?;
        w.file = file;
        w.out = out;
        w.len = DATA_START;
        w.records = 0;
        w.min_seq = u64::MAX;
        w.allocated = 0;
        Ok(())
    }

    /// Seals the active file: (0) cut its preallocated tail, (1) sync its data (and the cut),
    /// (2) append the seal, (3) sync again. A power loss during (3) can keep the seal's page
    /// and lose an earlier one only if the earlier one was not durable yet, which (1) rules
    /// out; nor can zeros follow a durable seal, which (1) rules out too. A failed append is
    /// cut back off; a failed cut or sync poisons.
    fn seal_active(&self, w: &mut Writer) -> Result<()> {
        self.cut_preallocated(w)?;
        self.sync_file(Some(&w.file), &*w.out, w.len)?;
        self.commit.mark_durable(w.appended);
        w.buf.clear();
        let seal = w.file.seal_record();
        record::encode_seal(&mut w.buf, w.file.nonce(), &seal);
        self.append_buf(w)?;
        self.sync_file(Some(&w.file), &*w.out, w.len)?;
        w.file.seal(w.len);
        debug_assert_eq!(w.len, seal.offset + SEAL_LEN as u64);
        self.commit.mark_durable(w.appended);
        Ok(())
    }

    /// The one sync path of files the writer appends to: waits for any other sync to finish,
    /// refuses if the engine is poisoned, syncs, and on failure sets the poison before the next
    /// sync may start. On success, `file` (if given) is known durable up to `len`, which the
    /// caller read before the sync.
    pub(crate) fn sync_file(
        &self,
        file: Option<&DataFile>,
        out: &dyn WritableFile,
        len: u64,
    ) -> Result<()> {
        let _one_at_a_time = self.sync_lock.lock();
        let poison = self.commit.poison();
        poison.check()?;
        // A sync that panics may have failed: poisoned as if it had, before the next may start.
        self.poison_on_unwind(IN_SYNC, || poison.guard(|| out.sync()))?;
        if let Some(file) = file {
            file.mark_synced(len);
        }
        Ok(())
    }

    /// Seals the active file if it holds records (a rotation); used by `compact()`.
    pub(crate) fn rotate_if_used(&self) -> Result<()> {
        let mut guard = self.writer.lock();
        let Some(w) = guard.as_mut() else {
            return Err(Error::ReadOnly);
        };
        self.commit.poison().check()?;
        if w.len > DATA_START || w.file.is_sealed() {
            // As a write's rotation (under its append's guard): a panic in the seal's append
            // leaves its bytes past the writer's end.
            self.poison_on_unwind(IN_ROTATION, || self.rotate(w))?;
        }
        Ok(())
    }

    /// The group-commit leader's sync: the active file up to its current end.
    fn sync_active(&self) -> Result<u64> {
        // No `yield_now` here to let woken writers append first: `GroupCommit` gathers the
        // writers it expects, and a yield gave a lone writer's core away before every sync.
        let end = self.active_end()?;
        self.sync_file(Some(&end.file), &*end.out, end.len)?;
        Ok(end.pos)
    }

    /// The active file and its end, read under the writer mutex. The sync itself runs
    /// without the mutex (after it, in [`Inner::sync_file`]): the lock order is writer mutex,
    /// then sync lock, never the reverse.
    fn active_end(&self) -> Result<ActiveEnd> {
        let guard = self.writer.lock();
        let w = guard.as_ref().ok_or(Error::ReadOnly)?;
        Ok(ActiveEnd {
            file: Arc::clone(&w.file),
            out: Arc::clone(&w.out),
            len: w.len,
            pos: w.appended,
        })
    }

    /// Makes every acknowledged write durable (`Engine::sync`, the periodic task, merges).
    pub(crate) fn sync_log(&self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.commit.poison().check()?;
        let end = self.active_end()?;
        self.sync_file(Some(&end.file), &*end.out, end.len)?;
        self.commit.mark_durable(end.pos);
        Ok(())
    }

    /// Clean shutdown: seal the active file and write its hint (so the next open reads no data
    /// file), or remove it if it holds nothing.
    ///
    /// The sealed file is then the newest, and open takes the newest file without a hint for
    /// the previous run's active file, whose cut end passes for a torn tail. So the hint's
    /// name is made durable (directory fsync) before the close returns: a power loss must
    /// not turn the sealed file back into one that may be cut.
    pub(crate) fn close_writer(&self) -> Result<()> {
        let mut guard = self.writer.lock();
        let Some(w) = guard.as_mut() else {
            return Ok(());
        };
        self.commit.poison().check()?;
        let id = w.file.id();
        if w.file.is_sealed() {
            // A rotation sealed it and failed to start the next file; the worker, stopped
            // before this, wrote its hint (or failed to: then it is written here).
            *guard = None;
            drop(guard);
            return self.durable_hint(id);
        }
        if w.len == DATA_START {
            // The file below becomes the newest: it needs its hint as the sealed last file
            // does (the worker's may have failed), durable before this removal is. If that
            // fails, the empty file stays: as the newest, it still vouches for the one below.
            if let Some(below) = self.newest_sealed(id) {
                self.durable_hint(below)?;
            }
            self.files.write().remove(&id);
            self.storage.remove(&FileName::Data(id).path(&self.dir))?;
            *guard = None;
            return self
                .commit
                .poison()
                .guard(|| self.storage.sync_dir(&self.dir));
        }
        self.seal_active(w)?;
        *guard = None;
        drop(guard);
        self.durable_hint(id)
    }

    /// The sealed file other than `except` holding (or created for) the newest sequence
    /// number: the one open would take for the previous run's active file without a hint.
    fn newest_sealed(&self, except: u32) -> Option<u32> {
        let files = self.files.read();
        let newest = (files.values())
            .filter(|f| f.id() != except)
            .max_by_key(|f| f.max_seq().max(f.base_seq()))?;
        newest.is_sealed().then(|| newest.id())
    }

    /// Writes the hint of sealed file `id` unless it exists, then fsyncs the directory so that
    /// its name survives a power loss.
    fn durable_hint(&self, id: u32) -> Result<()> {
        if !self.storage.exists(&FileName::Hint(id).path(&self.dir))? {
            self.write_hint(id)?;
        }
        self.commit
            .poison()
            .guard(|| self.storage.sync_dir(&self.dir))
    }
}

/// Bytes the records of `ops` take encoded (with the batch's end record if `batch`).
fn encoded_len(ops: &[Op<'_>], batch: bool) -> usize {
    ops.iter()
        .map(|(k, v)| record::record_len(k, v.unwrap_or_default()))
        .sum::<usize>()
        + if batch { BATCH_END_BYTES } else { 0 }
}

/// Encodes `ops` at the end of the writer's buffer, numbering them from its next sequence
/// number (which it moves past them).
#[inline(always)]
fn encode_ops(w: &mut Writer, ops: &[Op<'_>], batch: bool) -> Result<()> {
    let first_seq = w.next_seq;
    let frame = w.file.frame();
    for (key, value) in ops {
        let kind = match (value, batch) {
            (Some(_), false) => Kind::Put,
            (None, false) => Kind::Tombstone,
            (Some(_), true) => Kind::BatchPut,
            (None, true) => Kind::BatchTombstone,
        };
        let value = value.unwrap_or_default();
        record::encode(&mut w.buf, frame, w.next_seq, kind, key, value);
        w.next_seq += 1;
    }
    if batch {
        // Checked here, not first, so that a single put or delete builds no error; the
        // sequence numbers go back, as nothing is appended.
        let Ok(count) = u32::try_from(ops.len()) else {
            w.next_seq = first_seq;
            return Err(Error::invalid("batch size"));
        };
        record::encode_batch_end(&mut w.buf, frame, first_seq, count);
    }
    Ok(())
}

/// The keydir location of the record of `op` at `offset` in file `file`.
#[inline]
fn loc_at(file: u32, offset: u64, (key, value): &Op<'_>, seq: u64) -> Result<Loc> {
    let bad = |_| Error::invalid("record offset or length beyond 32 bits");
    Ok(Loc {
        file,
        offset: u32::try_from(offset).map_err(bad)?,
        len: u32::try_from(record::record_len(key, value.unwrap_or_default())).map_err(bad)?,
        seq,
    })
}

#[cfg(test)]
mod tests {
    use engine_api::MAX_BATCH_BYTES;

    use super::BATCH_END_BYTES;
    use crate::datafile::DATA_START;
    use crate::options::MAX_FILE_SIZE_LIMIT;
    use crate::record::{self, SEAL_LEN};

    /// `MAX_BATCH_BYTES` counts keys and values only, so a batch's encoded size is larger: at
    /// worst one record per user byte (one-byte keys, no values), 24 times larger. A batch goes
    /// whole into one file (a fresh one if it does not fit), so a file can end at most at its
    /// size limit plus such a batch plus the seal: still below 2^32, the offset limit of the
    /// keydir and the hints. Not a defect of the offsets, then; the documented overshoot was
    /// wrong, and `docs/formats/bitcask-record.md` now gives this bound.
    #[test]
    fn worst_case_batch_keeps_offsets_below_2_32() {
        let per_user_byte = record::record_len(b"k", b"") as u64;
        assert_eq!(per_user_byte, 24);
        let worst_batch = per_user_byte * MAX_BATCH_BYTES as u64 + BATCH_END_BYTES as u64;
        let worst_end = DATA_START + MAX_FILE_SIZE_LIMIT + worst_batch + SEAL_LEN as u64;
        assert!(worst_end < 1 << 32, "a file could end at {worst_end}");
    }
}

/// A panic while a write is published (its keydir update), here inside a batch's update after
/// its first key was applied (`crate::keydir::PANICS_IN_BATCH`, test builds only).
#[cfg(test)]
mod publish_panics {
    use std::sync::Arc;

    use engine_api::{CommonOptions, Engine, SimStorage, SyncPolicy, WriteBatch};

    use crate::keydir::PANICS_IN_BATCH;
    use crate::{BitcaskEngine, BitcaskOptions, MergeOptions};

    fn open(sim: &SimStorage, sync: SyncPolicy) -> BitcaskEngine {
        let opts = BitcaskOptions {
            common: CommonOptions {
                sync,
                storage: Arc::new(sim.clone()),
                ..CommonOptions::default()
            },
            merge: MergeOptions {
                auto: false,
                ..MergeOptions::default()
            },
            ..BitcaskOptions::default()
        };
        BitcaskEngine::open("/db", opts).expect("open")
    }

    /// A batch whose keydir update panics half-way leaves its first key visible: under `Never`
    /// and `Periodic` (indexed under the writer mutex) the append's guard poisons; under
    /// `Always` (indexed in its publishing turn, after the mutex) nothing did, so a merge went
    /// on, copied the visible half and dropped the other as stale, and the batch came back
    /// torn after a reopen. Either policy: no merge or write after it, and the batch whole or
    /// absent after a reopen.
    #[test]
    fn a_batch_panicking_in_its_publication_poisons_and_stays_whole() {
        for policy in [SyncPolicy::Never, SyncPolicy::Always] {
            let sim = SimStorage::new();
            let engine = Arc::new(open(&sim, policy));
            engine.put(b"x", b"old").expect("put");
            let mut batch = WriteBatch::new();
            batch.put(b"x", b"new").put(PANICS_IN_BATCH, b"v");
            let e = Arc::clone(&engine);
            let outcome = std::thread::spawn(move || drop(e.write(&batch))).join();
            assert!(outcome.is_err(), "{policy:?}: the injected panic");
            let compacted = engine.compact();
            let after = engine.put(b"after", b"v");
            drop(Arc::into_inner(engine).expect("one handle"));
            let engine = open(&sim, policy);
            let x = engine.get(b"x").expect("get").map(|v| v.to_vec());
            let marked = engine.get(PANICS_IN_BATCH).expect("get").is_some();
            assert!(
                (x.as_deref(), marked) == (Some(&b"new"[..]), true)
                    || (x.as_deref(), marked) == (Some(&b"old"[..]), false),
                "{policy:?}: the batch is torn after a reopen: x = {x:?}, its other key \
                 present: {marked} (the compaction after the panic: {:?})",
                compacted.map(|s| s.records_out)
            );
            assert!(
                after.is_err(),
                "{policy:?}: a write was accepted after the panic: {after:?}"
            );
        }
    }
}
