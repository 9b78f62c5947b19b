//! Where everything lives in the one engine: a one-byte prefix per role.
//!
//! | key | value |
//! |---|---|
//! | `00 "vote"` | the vote |
//! | `00 "purged"` | the last purged log id |
//! | `01 index (u64 BE)` | a log entry (big-endian so the engine's order is the log's order) |
//! | `02 00` | the state machine's applied state: last applied log id and membership |
//! | `02 01 user-key` | a replicated pair |
//! | `03` | the current snapshot: its meta and its bytes |
//!
//! The applied state sorts just before the pairs, so one scan of prefix `02` reads both from
//! one consistent view: that is how a snapshot's meta always matches its data.

use std::ops::{Bound, RangeBounds};

use engine_api::KeyRange;

pub(crate) const VOTE: &[u8] = b"\x00vote";
pub(crate) const PURGED: &[u8] = b"\x00purged";
const LOG: u8 = 0x01;
const STATE_MACHINE: u8 = 0x02;
pub(crate) const APPLIED: &[u8] = &[STATE_MACHINE, 0x00];
const DATA: u8 = 0x01;
pub(crate) const SNAPSHOT: &[u8] = &[0x03];
/// Bytes a user key gets in front of it.
pub(crate) const DATA_OVERHEAD: usize = 2;

/// The key of the entry at `index`.
pub(crate) fn log_key(index: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(LOG);
    #[expect(
        clippy::big_endian_bytes,
        reason = "big-endian, so the engine's key order is the log's index order"
    )]
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The keys of the entries whose indexes lie in `range`, or `None` if no index can.
pub(crate) fn log_range(range: &impl RangeBounds<u64>) -> Option<KeyRange> {
    let first = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => Bound::Included(log_key(i)),
        Bound::Excluded(&i) => Bound::Excluded(log_key(i)),
        Bound::Unbounded => Bound::Excluded(vec![LOG + 1]),
    };
    let empty = match range.end_bound() {
        Bound::Included(&i) => first > i,
        Bound::Excluded(&i) => first >= i,
        Bound::Unbounded => false,
    };
    (!empty).then(|| KeyRange {
        start: Bound::Included(log_key(first)),
        end,
    })
}

/// Every key of the state machine: its applied state and its pairs.
pub(crate) fn state_machine_range() -> KeyRange {
    KeyRange::new(&[STATE_MACHINE][..]..&[STATE_MACHINE + 1][..])
}

/// The engine key of a user key.
pub(crate) fn data_key(user_key: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(DATA_OVERHEAD + user_key.len());
    key.extend_from_slice(&[STATE_MACHINE, DATA]);
    key.extend_from_slice(user_key);
    key
}

/// The user key of an engine key from [`state_machine_range`], or `None` for the applied state.
pub(crate) fn user_key(engine_key: &[u8]) -> Option<&[u8]> {
    engine_key.strip_prefix(&[STATE_MACHINE, DATA][..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_as_their_indexes() {
        assert!(log_key(255) < log_key(256));
        assert!(log_key(u64::MAX) < vec![LOG + 1]);
    }

    #[test]
    fn empty_index_ranges_give_no_key_range() {
        assert!(log_range(&(5..5)).is_none());
        assert!(log_range(&(Bound::Included(6), Bound::Included(5))).is_none());
        let r = log_range(&(3..=4)).expect("non-empty");
        assert!(r.contains(&log_key(3)) && r.contains(&log_key(4)) && !r.contains(&log_key(5)));
    }

    #[test]
    fn applied_state_sorts_before_every_pair() {
        assert!(APPLIED < data_key(b"").as_slice());
        assert_eq!(user_key(&data_key(b"k")), Some(&b"k"[..]));
        assert_eq!(user_key(APPLIED), None);
    }
}
