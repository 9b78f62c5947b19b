//! The user-facing scan iterator: a snapshot applied to a merged internal-key stream.

use std::ops::Bound;

use bytes::Bytes;
use engine_api::{KeyRange, Result, Value};

use super::InternalIterator;
use crate::key::{self, Kind, MAX_SEQ, SeqNo};

/// Yields `(user key, value)` for the newest version of each key visible at `snapshot`, in
/// ascending order within `range`, hiding tombstones. After an error it yields that error once
/// and ends.
pub(crate) struct UserIter<I> {
    inner: I,
    snapshot: SeqNo,
    end: Bound<Vec<u8>>,
    /// The user key of the last version taken (emitted or hidden); older versions are skipped.
    last_user: Option<Vec<u8>>,
    started: Option<Bound<Vec<u8>>>,
    done: bool,
}

impl<I: InternalIterator> UserIter<I> {
    /// A lazy scan: nothing is read until the first `next`.
    pub(crate) fn new(inner: I, snapshot: SeqNo, range: KeyRange) -> Self {
        UserIter {
            inner,
            snapshot,
            end: range.end,
            last_user: None,
            started: Some(range.start),
            done: false,
        }
    }

    fn start(&mut self, start: Bound<Vec<u8>>) -> Result<()> {
        match start {
            Bound::Unbounded => self.inner.seek_to_first(),
            Bound::Included(k) => self.inner.seek(&key::seek_key(&k, MAX_SEQ)),
            Bound::Excluded(k) => {
                self.inner.seek(&key::seek_key(&k, MAX_SEQ))?;
                // Every version of the excluded key counts as taken.
                self.last_user = Some(k);
                Ok(())
            }
        }
    }

    fn past_end(&self, user: &[u8]) -> bool {
        match &self.end {
            Bound::Unbounded => false,
            Bound::Included(e) => user > e.as_slice(),
            Bound::Excluded(e) => user >= e.as_slice(),
        }
    }

    fn advance(&mut self) -> Result<Option<(Value, Value)>> {
        if let Some(start) = self.started.take() {
            self.start(start)?;
        }
        while self.inner.valid() {
            let ikey = self.inner.key();
            let parsed = key::parse(ikey).ok_or_else(|| {
                engine_api::Error::invalid("internal key without a trailer in a scan")
            })?;
            if self.past_end(parsed.user) {
                return Ok(None);
            }
            if parsed.seq > self.snapshot || self.last_user.as_deref() == Some(parsed.user) {
                self.inner.next()?;
                continue;
            }
            let user = parsed.user.to_vec();
            let kind = parsed.kind;
            self.last_user = Some(user.clone());
            let value = self.inner.value();
            self.inner.next()?;
            if kind == Kind::Put {
                return Ok(Some((Bytes::from(user), value)));
            }
        }
        Ok(None)
    }
}

impl<I: InternalIterator> Iterator for UserIter<I> {
    type Item = Result<(Value, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.advance() {
            Ok(Some(pair)) => Some(Ok(pair)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
