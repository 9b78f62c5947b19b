//! Internal keys: a user key plus an 8-byte trailer holding the sequence number and the kind.
//!
//! Encoded as `user_key | trailer (u64 LE)` with `trailer = seq << 8 | kind`. Internal keys sort
//! by user key ascending, then trailer *descending*, so the newest version of a key comes first
//! and a seek to `(key, snapshot_seq, MAX_KIND)` lands on the newest version a snapshot can see.
//! Spec: `docs/formats/sstable.md` ("Internal keys").

use std::cmp::Ordering;

/// A sequence number: every write gets the next one. 56 bits, the rest of the trailer is the kind.
pub type SeqNo = u64;

/// The largest sequence number the trailer can hold.
pub const MAX_SEQ: SeqNo = (1 << 56) - 1;

/// The first of `n` sequence numbers following `last`, if all of them fit an internal key
/// (`1..=MAX_SEQ`): a larger one would lose its top bits in the trailer.
pub(crate) fn seq_range(last: SeqNo, n: usize) -> Option<SeqNo> {
    let first = last.checked_add(1)?;
    let end = last.checked_add(u64::try_from(n).ok()?)?;
    (n > 0 && end <= MAX_SEQ).then_some(first)
}

/// Length of the trailer appended to every user key.
pub(crate) const TRAILER_LEN: usize = 8;

/// What an internal key records. DO NOT CHANGE the values: they are on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    /// A tombstone.
    Delete = 0,
    /// A value.
    Put = 1,
}

impl Kind {
    /// The largest kind value; seeks use it to land before every kind of a sequence number.
    pub(crate) const MAX: u8 = 1;

    pub(crate) fn from_u8(b: u8) -> Option<Kind> {
        match b {
            0 => Some(Kind::Delete),
            1 => Some(Kind::Put),
            _ => None,
        }
    }
}

/// Encodes `user | trailer(seq, kind)`.
pub(crate) fn encode(user: &[u8], seq: SeqNo, kind: Kind) -> Vec<u8> {
    let mut out = Vec::with_capacity(user.len() + TRAILER_LEN);
    out.extend_from_slice(user);
    out.extend_from_slice(&trailer(seq, kind as u8).to_le_bytes());
    out
}

/// The key a seek uses to find the newest version of `user` visible at `seq`.
pub(crate) fn seek_key(user: &[u8], seq: SeqNo) -> Vec<u8> {
    let mut out = Vec::with_capacity(user.len() + TRAILER_LEN);
    out.extend_from_slice(user);
    out.extend_from_slice(&trailer(seq.min(MAX_SEQ), Kind::MAX).to_le_bytes());
    out
}

/// A [`seek_key`] built without an allocation when the user key is short (nearly always): a
/// get builds one per call, and a `Vec` for it was a `malloc` and a `free` per get.
pub(crate) enum SeekKey {
    /// The key in the first `len` bytes.
    Inline {
        buf: [u8; SeekKey::INLINE],
        len: usize,
    },
    /// A key too long for the inline buffer.
    Heap(Vec<u8>),
}

impl SeekKey {
    /// The longest seek key (user key and trailer) kept inline.
    const INLINE: usize = 64;

    pub(crate) fn new(user: &[u8], seq: SeqNo) -> Self {
        let len = user.len() + TRAILER_LEN;
        let mut buf = [0u8; SeekKey::INLINE];
        let Some(dst) = buf.get_mut(..len) else {
            return SeekKey::Heap(seek_key(user, seq));
        };
        let (u, t) = dst.split_at_mut(user.len());
        u.copy_from_slice(user);
        t.copy_from_slice(&trailer(seq.min(MAX_SEQ), Kind::MAX).to_le_bytes());
        SeekKey::Inline { buf, len }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            SeekKey::Inline { buf, len } => buf.get(..*len).unwrap_or_default(),
            SeekKey::Heap(v) => v,
        }
    }
}

/// The encoded trailer of `(seq, kind)`: what [`encode`] appends to the user key.
pub(crate) fn trailer_bytes(seq: SeqNo, kind: Kind) -> [u8; TRAILER_LEN] {
    trailer(seq, kind as u8).to_le_bytes()
}

fn trailer(seq: SeqNo, kind: u8) -> u64 {
    (seq << 8) | u64::from(kind)
}

/// A decoded view of an encoded internal key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ParsedKey<'a> {
    pub(crate) user: &'a [u8],
    pub(crate) seq: SeqNo,
    pub(crate) kind: Kind,
}

/// Parses an encoded internal key; `None` if it is too short or its kind is unknown.
pub(crate) fn parse(ikey: &[u8]) -> Option<ParsedKey<'_>> {
    let split = ikey.len().checked_sub(TRAILER_LEN)?;
    let (user, t) = ikey.split_at(split);
    let t = u64::from_le_bytes(t.try_into().ok()?);
    #[expect(clippy::cast_possible_truncation, reason = "the low byte is the kind")]
    let kind = Kind::from_u8(t as u8)?;
    Some(ParsedKey {
        user,
        seq: t >> 8,
        kind,
    })
}

/// The user-key part of an encoded internal key (all of it if it is too short to have a
/// trailer; such keys are rejected by the decoders before they get here).
pub(crate) fn user_key(ikey: &[u8]) -> &[u8] {
    let split = ikey.len().saturating_sub(TRAILER_LEN);
    ikey.get(..split).unwrap_or_default()
}

fn trailer_of(ikey: &[u8]) -> u64 {
    let split = ikey.len().saturating_sub(TRAILER_LEN);
    ikey.get(split..)
        .and_then(|t| t.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// The order of internal keys: user key ascending, then trailer descending.
#[inline]
pub(crate) fn compare(a: &[u8], b: &[u8]) -> Ordering {
    compare_user(user_key(a), user_key(b)).then_with(|| trailer_of(b).cmp(&trailer_of(a)))
}

/// Byte order of user keys, eight bytes at a time: a chunk that differs decides as one integer
/// comparison, and only a tail shorter than eight bytes goes to `memcmp`. Keys with long common
/// prefixes (db_bench's zero-padded numbers share their first ten bytes) made the `memcmp`
/// call the hottest frame of a get (`docs/results/profiles/`).
#[inline]
#[expect(
    clippy::big_endian_bytes,
    reason = "byte order as an integer: the first byte must be the most significant (nothing on disk)"
)]
fn compare_user(mut a: &[u8], mut b: &[u8]) -> Ordering {
    while let (Some((x, ra)), Some((y, rb))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        let (x, y) = (u64::from_be_bytes(*x), u64::from_be_bytes(*y));
        if x != y {
            return x.cmp(&y);
        }
        (a, b) = (ra, rb);
    }
    a.cmp(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_sort_first_and_user_keys_by_bytes() {
        let a5 = encode(b"a", 5, Kind::Put);
        let a7 = encode(b"a", 7, Kind::Delete);
        let ab1 = encode(b"ab", 1, Kind::Put);
        assert_eq!(compare(&a7, &a5), Ordering::Less);
        assert_eq!(compare(&a5, &ab1), Ordering::Less);
        assert_eq!(compare(&seek_key(b"a", 6), &a5), Ordering::Less);
        assert_eq!(compare(&seek_key(b"a", 6), &a7), Ordering::Greater);
        let p = parse(&a7).unwrap();
        assert_eq!((p.user, p.seq, p.kind), (&b"a"[..], 7, Kind::Delete));
        assert!(parse(b"short").is_none());
    }

    #[test]
    fn seek_keys_inline_or_not_encode_as_seek_key() {
        for n in [
            0,
            1,
            16,
            SeekKey::INLINE - TRAILER_LEN,
            SeekKey::INLINE - TRAILER_LEN + 1,
            300,
        ] {
            let user = vec![0xa5u8; n];
            for seq in [0, 7, MAX_SEQ, u64::MAX] {
                assert_eq!(
                    SeekKey::new(&user, seq).as_slice(),
                    seek_key(&user, seq),
                    "{n} {seq}"
                );
            }
        }
    }

    #[test]
    fn user_keys_compare_as_bytes_across_the_eight_byte_fast_path() {
        let keys: [&[u8]; 13] = [
            b"",
            b"a",
            b"abcdefg",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefgi",
            b"abcdefh",
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\x01",
            b"0000000000000012",
            b"0000000000000013",
            b"00000000000000123",
            b"000000000000001",
        ];
        for a in keys {
            for b in keys {
                let (ia, ib) = (encode(a, 3, Kind::Put), encode(b, 3, Kind::Put));
                assert_eq!(compare(&ia, &ib), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }
}
