//! Write groups (as in LevelDB and RocksDB): concurrent writers queue, and one of them, the
//! leader, appends the records of the writers queued behind it with one write call and indexes
//! them all, then wakes them.
//!
//! Why: each write used to take the writer mutex and hold it across its `pwrite` and its keydir
//! insert. With more writers than cores, a holder that is descheduled makes every other writer
//! queue behind it, and each of them then pays a futex wake-up and a context switch to get the
//! mutex for its own small write. A group pays one wake-up per writer but one `pwrite`, one
//! mutex hand-over and one keydir pass (grouped by shard, cache misses overlapped) per group.
//!
//! The protocol ([`WriteQueue`]): a writer that finds the queue idle (no leader, no one
//! queued) and the writer mutex free writes alone, outside the queue, as a plain mutex holder
//! ([`WriteQueue::idle`]; the lone writer's fast path: it never leads, so it owes no one the
//! lead when it is done). A writer that finds no leader becomes the leader at once (it may
//! wait for the mutex, held by a lone writer). Otherwise it copies its operations
//! into a [`Request`], queues it and sleeps. The leader takes the writer mutex, then takes
//! the queued requests (up to [`MAX_GROUP_BYTES`]), appends and indexes them behind its own
//! records (in queue order: sequence numbers follow it), and when it no longer needs the writer
//! mutex passes the lead to the first writer still queued, which forms the next group from
//! everyone who queued meanwhile. Each request is finished with its own result: a failed
//! append (or index) gives its error to every writer whose records it carried.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use engine_api::{Error, Result};
use parking_lot::{Condvar, Mutex};

use crate::writer::Op;

/// Most user bytes (keys and values) a leader takes from the queue for one group: bounds the
/// group's buffer and the latency of the writers in it.
pub(crate) const MAX_GROUP_BYTES: usize = 1 << 20;

/// The queue of writers waiting for a leader to write for them.
#[derive(Default)]
pub(crate) struct WriteQueue {
    state: Mutex<QueueState>,
    /// `waiting.len() << 1 | leading`, stored under the lock at every change and readable
    /// without it: a leader with no one queued takes nothing without locking, and a lone
    /// writer sees that the queue is idle.
    busy: AtomicUsize,
}

#[derive(Default)]
struct QueueState {
    /// A writer is leading (between [`WriteQueue::join`] and [`WriteQueue::pass_lead`]).
    leading: bool,
    waiting: VecDeque<Arc<Request>>,
}

/// What [`WriteQueue::join`] tells a writer.
pub(crate) enum Joined {
    /// Write your own operations and the queued ones, then call [`WriteQueue::pass_lead`].
    Lead,
    /// A leader wrote your operations: this is the outcome.
    Done(Result<()>),
}

/// A queued writer's operations, copied (the leader runs on another thread), and its outcome.
pub(crate) struct Request {
    /// Keys and values back to back.
    data: Vec<u8>,
    /// Per operation: key length and value length (`None` for a delete).
    lens: Vec<(usize, Option<usize>)>,
    pub(crate) batch: bool,
    status: Mutex<Status>,
    woken: Condvar,
}

enum Status {
    Waiting,
    Lead,
    Done(Result<()>),
}

impl Request {
    fn new(ops: &[Op<'_>], batch: bool) -> Self {
        let mut data = Vec::with_capacity(user_bytes(ops));
        let mut lens = Vec::with_capacity(ops.len());
        for (key, value) in ops {
            data.extend_from_slice(key);
            data.extend_from_slice(value.unwrap_or_default());
            lens.push((key.len(), value.map(<[u8]>::len)));
        }
        Request {
            data,
            lens,
            batch,
            status: Mutex::new(Status::Waiting),
            woken: Condvar::new(),
        }
    }

    /// The operations, borrowed from the copy.
    pub(crate) fn ops(&self) -> Vec<Op<'_>> {
        let mut at = 0;
        let mut out = Vec::with_capacity(self.lens.len());
        for &(k, v) in &self.lens {
            let key = self.data.get(at..at + k).unwrap_or_default();
            at += k;
            let value = v.map(|v| {
                let value = self.data.get(at..at + v).unwrap_or_default();
                at += v;
                value
            });
            out.push((key, value));
        }
        out
    }

    /// The user bytes this request adds to a group.
    fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Wakes the writer with its outcome.
    pub(crate) fn finish(&self, result: Result<()>) {
        *self.status.lock() = Status::Done(result);
        self.woken.notify_one();
    }

    fn promote(&self) {
        *self.status.lock() = Status::Lead;
        self.woken.notify_one();
    }

    fn wait(&self) -> Joined {
        let mut status = self.status.lock();
        loop {
            match std::mem::replace(&mut *status, Status::Waiting) {
                Status::Waiting => self.woken.wait(&mut status),
                Status::Lead => return Joined::Lead,
                Status::Done(result) => return Joined::Done(result),
            }
        }
    }
}

/// Keys and values of `ops`.
pub(crate) fn user_bytes(ops: &[Op<'_>]) -> usize {
    ops.iter()
        .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len))
        .sum()
}

impl QueueState {
    /// The value of [`WriteQueue::busy`] for this state.
    fn busy(&self) -> usize {
        self.waiting.len() << 1 | usize::from(self.leading)
    }
}

impl WriteQueue {
    /// No leader and no one queued: a writer that also finds the writer mutex free may write
    /// alone, without joining. It then holds nothing of the queue, so a writer arriving
    /// meanwhile finds no leader, leads, and waits for the mutex like any other holder's:
    /// nothing is handed over, so no hand-over can be lost.
    #[inline]
    pub(crate) fn idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
    }

    /// Enters the queue: leads at once if no one does, otherwise queues a copy of `ops` and
    /// sleeps until a leader wrote them or handed this writer the lead.
    pub(crate) fn join(&self, ops: &[Op<'_>], batch: bool) -> Joined {
        if self.try_lead() {
            return Joined::Lead;
        }
        // Copied outside the queue's lock; the leader may be gone by then.
        let request = Arc::new(Request::new(ops, batch));
        {
            let mut st = self.state.lock();
            if !st.leading {
                st.leading = true;
                self.busy.store(st.busy(), Ordering::Release);
                return Joined::Lead;
            }
            st.waiting.push_back(Arc::clone(&request));
            self.busy.store(st.busy(), Ordering::Release);
        }
        request.wait()
    }

    /// Writers in the queue: those queued, and the leader (which may be waiting for the writer
    /// mutex). A lone writer on its fast path is not in the queue.
    pub(crate) fn len(&self) -> usize {
        let st = self.state.lock();
        st.waiting.len() + usize::from(st.leading)
    }

    fn try_lead(&self) -> bool {
        let mut st = self.state.lock();
        let led = std::mem::replace(&mut st.leading, true);
        self.busy.store(st.busy(), Ordering::Release);
        !led
    }

    /// The leader takes queued requests, oldest first, while the group stays within
    /// [`MAX_GROUP_BYTES`] (the first one always, so the queue always moves).
    pub(crate) fn take(&self, own_bytes: usize) -> Vec<Arc<Request>> {
        // A writer queueing just after this look is not lost: the lead passes to it.
        if self.busy.load(Ordering::Acquire) >> 1 == 0 {
            return Vec::new();
        }
        let mut st = self.state.lock();
        let mut bytes = own_bytes;
        let mut out = Vec::new();
        while let Some(next) = st.waiting.front() {
            if bytes + next.bytes() > MAX_GROUP_BYTES && !out.is_empty() {
                break;
            }
            bytes += next.bytes();
            out.extend(st.waiting.pop_front());
        }
        self.busy.store(st.busy(), Ordering::Release);
        out
    }

    /// The leader is done with the writer mutex: the first queued writer leads next, or no one.
    pub(crate) fn pass_lead(&self) {
        let mut st = self.state.lock();
        let next = st.waiting.pop_front();
        st.leading = next.is_some();
        self.busy.store(st.busy(), Ordering::Release);
        if let Some(next) = next {
            next.promote();
        }
    }
}

/// The lead, released on drop (a panicking leader must not leave the queue stuck).
pub(crate) struct Lead<'a> {
    queue: &'a WriteQueue,
    passed: bool,
}

impl<'a> Lead<'a> {
    pub(crate) fn new(queue: &'a WriteQueue) -> Self {
        Lead {
            queue,
            passed: false,
        }
    }

    pub(crate) fn pass(&mut self) {
        if !std::mem::replace(&mut self.passed, true) {
            self.queue.pass_lead();
        }
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        self.pass();
    }
}

/// The requests a leader took: each is finished exactly once, with an error if the leader
/// unwinds before it gave them their outcome.
pub(crate) struct Followers {
    pub(crate) reqs: Vec<Arc<Request>>,
    finished: Cell<usize>,
}

impl Followers {
    pub(crate) fn new(reqs: Vec<Arc<Request>>) -> Self {
        Followers {
            reqs,
            finished: Cell::new(0),
        }
    }

    /// Finishes the next `n` requests with `result` (copied for each).
    pub(crate) fn finish(&self, n: usize, result: &Result<()>) {
        let from = self.finished.get();
        let end = (from + n).min(self.reqs.len());
        for req in self.reqs.get(from..end).unwrap_or_default() {
            req.finish(copy_result(result));
        }
        self.finished.set(end);
    }
}

impl Drop for Followers {
    fn drop(&mut self) {
        let left = self.reqs.len() - self.finished.get();
        let err = Err(Error::Poisoned {
            cause: "the leader of a write group panicked".into(),
        });
        self.finish(left, &err);
    }
}

/// The same outcome for another writer of the group (errors are not `Clone`).
pub(crate) fn copy_result(result: &Result<()>) -> Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(copy_error(e)),
    }
}

fn copy_error(e: &Error) -> Error {
    match e {
        Error::Io { op, path, source } => Error::Io {
            op,
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::Corruption {
            path,
            offset,
            expected,
        } => Error::Corruption {
            path: path.clone(),
            offset: *offset,
            expected: expected.clone(),
        },
        Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
        Error::Poisoned { cause } => Error::Poisoned {
            cause: cause.clone(),
        },
        Error::Locked { path } => Error::Locked { path: path.clone() },
        Error::ReadOnly => Error::ReadOnly,
        other => Error::Poisoned {
            cause: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{Joined, MAX_GROUP_BYTES, Request, WriteQueue};

    #[test]
    fn a_request_gives_back_its_operations() {
        let ops: [(&[u8], Option<&[u8]>); 3] =
            [(b"a", Some(b"1")), (b"bb", None), (b"c", Some(b""))];
        let req = Request::new(&ops, true);
        assert_eq!(req.ops(), ops.to_vec());
        assert!(req.batch);
    }

    #[test]
    fn a_lone_writer_leads_and_the_lead_passes_in_queue_order() {
        let q = WriteQueue::default();
        assert!(matches!(q.join(&[(b"k", None)], false), Joined::Lead));
        assert!(q.take(0).is_empty());
        q.pass_lead();
        // No one leads any more: the next writer leads at once.
        assert!(matches!(q.join(&[(b"k", None)], false), Joined::Lead));
    }

    #[test]
    fn the_queue_is_idle_only_with_no_leader_and_no_one_queued() {
        let q = WriteQueue::default();
        assert!(q.idle());
        assert!(matches!(q.join(&[(b"k", None)], false), Joined::Lead));
        assert!(!q.idle(), "a leader");
        let req = std::sync::Arc::new(Request::new(&[(b"k", None)], false));
        let mut st = q.state.lock();
        st.waiting.push_back(req);
        q.busy
            .store(st.busy(), std::sync::atomic::Ordering::Release);
        drop(st);
        q.pass_lead();
        assert!(!q.idle(), "the lead passed to the queued writer");
        assert_eq!(q.len(), 1);
        q.pass_lead();
        assert!(q.idle());
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn take_keeps_a_group_within_its_bound_but_always_moves() {
        let q = WriteQueue::default();
        let big = vec![0u8; MAX_GROUP_BYTES];
        for _ in 0..2 {
            let req = std::sync::Arc::new(Request::new(&[(&big, None)], false));
            let mut st = q.state.lock();
            st.waiting.push_back(req);
            q.busy
                .store(st.busy(), std::sync::atomic::Ordering::Release);
        }
        assert_eq!(q.take(10).len(), 1);
        assert_eq!(q.take(0).len(), 1);
    }
}
