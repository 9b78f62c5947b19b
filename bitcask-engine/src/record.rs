//! Data-file records: encoding and checked decoding.
//!
//! The byte layout is specified in `docs/formats/bitcask-record.md`; this module is its only
//! implementation. Every decoder here takes untrusted bytes: lengths are checked against the
//! engine limits and the buffer before anything is sliced, and the CRC is verified before any
//! field other than the lengths is believed.

use engine_api::{MAX_KEY_LEN, MAX_VALUE_LEN};

/// Bytes before the key: crc32 (4) | seq (8) | kind (1) | key_len (2) | value_len (4) |
/// synced (4).
pub(crate) const HEADER_LEN: usize = 23;

/// Largest sequence number open accepts from disk (2^62 - 1: beyond any real workload). The
/// bound leaves room above it, so `+ 1` on a number read from disk cannot overflow.
pub(crate) const MAX_SEQ: u64 = (1 << 62) - 1;

/// Value length of a [`Kind::BatchEnd`] record: first_seq (8) | count (4).
const BATCH_END_LEN: usize = 12;

/// Value length of a [`Kind::Seal`] record: records (8) | min_seq (8) | max_seq (8) | offset (8).
pub(crate) const SEAL_VALUE_LEN: usize = 32;

/// Total length of a seal record.
pub(crate) const SEAL_LEN: usize = HEADER_LEN + SEAL_VALUE_LEN;

/// What a record is. A flag, never a magic value: no user key or value can be mistaken for a
/// tombstone or for framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A put outside any batch.
    Put = 1,
    /// A delete outside any batch.
    Tombstone = 2,
    /// A put that belongs to the batch closed by the next [`Kind::BatchEnd`].
    BatchPut = 3,
    /// A delete that belongs to the batch closed by the next [`Kind::BatchEnd`].
    BatchTombstone = 4,
    /// Closes a batch: only now do its members count.
    BatchEnd = 5,
    /// The last record of a sealed (immutable) data file.
    Seal = 6,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Put,
            2 => Kind::Tombstone,
            3 => Kind::BatchPut,
            4 => Kind::BatchTombstone,
            5 => Kind::BatchEnd,
            6 => Kind::Seal,
            _ => return None,
        })
    }

    /// Whether the record sets a key (inside a batch or not).
    pub(crate) fn is_put(self) -> bool {
        matches!(self, Kind::Put | Kind::BatchPut)
    }

    /// Whether the record removes a key (inside a batch or not).
    pub(crate) fn is_tombstone(self) -> bool {
        matches!(self, Kind::Tombstone | Kind::BatchTombstone)
    }
}

/// Why bytes are not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bad {
    /// Fewer bytes than the header or the lengths it states.
    Short,
    /// An unknown kind byte.
    Kind(u8),
    /// A key or value length beyond the engine's limits, or framing of the wrong size.
    Length,
    /// The checksum does not match.
    Crc,
}

impl Bad {
    /// A description for [`engine_api::Error::Corruption`].
    pub(crate) fn expected(self) -> String {
        match self {
            Bad::Short => "a complete record (the file ends inside one)".to_string(),
            Bad::Kind(k) => format!("a known record kind (found {k})"),
            Bad::Length => "key and value lengths within the limits".to_string(),
            Bad::Crc => "a record whose crc32 matches its contents".to_string(),
        }
    }
}

/// A decoded header; the lengths are within the limits, the CRC not yet checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    crc: u32,
    kind: Kind,
    key_len: usize,
    value_len: usize,
}

impl Header {
    /// Parses and bounds-checks the header at the start of `buf`.
    pub(crate) fn parse(buf: &[u8]) -> Result<Header, Bad> {
        let h = buf.get(..HEADER_LEN).ok_or(Bad::Short)?;
        let crc = u32::from_le_bytes(array(h, 0)?);
        let kind_byte = *h.get(12).ok_or(Bad::Short)?;
        let kind = Kind::from_u8(kind_byte).ok_or(Bad::Kind(kind_byte))?;
        let key_len = usize::from(u16::from_le_bytes(array(h, 13)?));
        let value_len =
            usize::try_from(u32::from_le_bytes(array(h, 15)?)).map_err(|_| Bad::Length)?;
        // `synced` (bytes 19..23) is believed only once the CRC is checked.
        let header = Header {
            crc,
            kind,
            key_len,
            value_len,
        };
        header.check_lengths()?;
        Ok(header)
    }

    fn check_lengths(&self) -> Result<(), Bad> {
        let ok = match self.kind {
            Kind::Put | Kind::BatchPut => {
                self.key_len > 0 && self.key_len <= MAX_KEY_LEN && self.value_len <= MAX_VALUE_LEN
            }
            Kind::Tombstone | Kind::BatchTombstone => {
                self.key_len > 0 && self.key_len <= MAX_KEY_LEN && self.value_len == 0
            }
            Kind::BatchEnd => self.key_len == 0 && self.value_len == BATCH_END_LEN,
            Kind::Seal => self.key_len == 0 && self.value_len == SEAL_VALUE_LEN,
        };
        if ok { Ok(()) } else { Err(Bad::Length) }
    }

    /// Length of the whole record.
    pub(crate) fn record_len(&self) -> usize {
        HEADER_LEN + self.key_len + self.value_len
    }
}

/// A verified record borrowed from a buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Record<'a> {
    pub(crate) seq: u64,
    /// The file's synced length when the record was written: every byte before it had been
    /// made durable. Recovery uses it to tell damage from a torn tail.
    pub(crate) synced: u64,
    pub(crate) kind: Kind,
    pub(crate) key: &'a [u8],
    pub(crate) value: &'a [u8],
}

impl Record<'_> {
    /// `(first_seq, count)` of a [`Kind::BatchEnd`] record.
    pub(crate) fn batch_end(&self) -> Option<(u64, u32)> {
        if self.kind != Kind::BatchEnd {
            return None;
        }
        Some((
            u64::from_le_bytes(array(self.value, 0).ok()?),
            u32::from_le_bytes(array(self.value, 8).ok()?),
        ))
    }

    /// The contents of a [`Kind::Seal`] record.
    pub(crate) fn seal(&self) -> Option<Seal> {
        if self.kind != Kind::Seal {
            return None;
        }
        let v = self.value;
        Some(Seal {
            records: u64::from_le_bytes(array(v, 0).ok()?),
            min_seq: u64::from_le_bytes(array(v, 8).ok()?),
            max_seq: u64::from_le_bytes(array(v, 16).ok()?),
            offset: u64::from_le_bytes(array(v, 24).ok()?),
        })
    }
}

/// What a seal record says about the file it ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Seal {
    /// Put and tombstone records in the file (framing not counted).
    pub(crate) records: u64,
    /// Smallest sequence number in the file (`u64::MAX` if none).
    pub(crate) min_seq: u64,
    /// Largest sequence number in the file (0 if none).
    pub(crate) max_seq: u64,
    /// Offset of the seal record itself: the file's length before sealing.
    pub(crate) offset: u64,
}

/// What ties a record to the file it is written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The file's random nonce (from its header): it seeds every record's CRC, so a record
    /// copied from elsewhere (or written by a user inside a value) does not verify here.
    pub(crate) nonce: u32,
    /// The file's synced length at the time the record is written.
    pub(crate) synced: u64,
}

/// The CRC of a record body in a file with `nonce`.
fn crc(nonce: u32, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(nonce);
    h.update(body);
    h.finalize()
}

/// Decodes and verifies the record at the start of `buf` (which may hold more after it), in a
/// file whose nonce is `nonce`.
pub(crate) fn decode(buf: &[u8], nonce: u32) -> Result<Record<'_>, Bad> {
    let header = Header::parse(buf)?;
    let end = header.record_len();
    let body = buf.get(4..end).ok_or(Bad::Short)?;
    if crc(nonce, body) != header.crc {
        return Err(Bad::Crc);
    }
    let seq = u64::from_le_bytes(array(body, 0)?);
    let synced = u64::from(u32::from_le_bytes(array(body, 15)?));
    let key_end = HEADER_LEN + header.key_len;
    Ok(Record {
        seq,
        synced,
        kind: header.kind,
        key: buf.get(HEADER_LEN..key_end).ok_or(Bad::Short)?,
        value: buf.get(key_end..end).ok_or(Bad::Short)?,
    })
}

/// Appends one record to `out`. Keys and values must already be within the limits (the engine
/// checks them at its entry points), and offsets are below 2^32 (`max_file_size` is at most
/// 1 GiB).
pub(crate) fn encode(
    out: &mut Vec<u8>,
    frame: Frame,
    seq: u64,
    kind: Kind,
    key: &[u8],
    value: &[u8],
) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&len16(key.len()).to_le_bytes());
    out.extend_from_slice(&len32(value.len()).to_le_bytes());
    let synced = u32::try_from(frame.synced).unwrap_or(u32::MAX);
    out.extend_from_slice(&synced.to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    let crc = crc(frame.nonce, out.get(start + 4..).unwrap_or_default());
    if let Some(slot) = out.get_mut(start..start + 4) {
        slot.copy_from_slice(&crc.to_le_bytes());
    }
}

/// Appends the record closing a batch of `count` members numbered from `first_seq`.
pub(crate) fn encode_batch_end(out: &mut Vec<u8>, frame: Frame, first_seq: u64, count: u32) {
    let mut value = [0u8; BATCH_END_LEN];
    value[..8].copy_from_slice(&first_seq.to_le_bytes());
    value[8..].copy_from_slice(&count.to_le_bytes());
    // The writer's numbers stay far below `u64::MAX` (`MAX_SEQ`); saturating all the same.
    let last = first_seq.saturating_add(u64::from(count).saturating_sub(1));
    encode(out, frame, last, Kind::BatchEnd, &[], &value);
}

/// Appends the seal record that makes a data file immutable. Everything before it is synced
/// before it is appended, so its `synced` field is its own offset.
pub(crate) fn encode_seal(out: &mut Vec<u8>, nonce: u32, seal: &Seal) {
    let mut value = [0u8; SEAL_VALUE_LEN];
    value[..8].copy_from_slice(&seal.records.to_le_bytes());
    value[8..16].copy_from_slice(&seal.min_seq.to_le_bytes());
    value[16..24].copy_from_slice(&seal.max_seq.to_le_bytes());
    value[24..].copy_from_slice(&seal.offset.to_le_bytes());
    let frame = Frame {
        nonce,
        synced: seal.offset,
    };
    encode(out, frame, seal.max_seq, Kind::Seal, &[], &value);
}

/// Length of the record that holds `key` and `value`.
pub(crate) fn record_len(key: &[u8], value: &[u8]) -> usize {
    HEADER_LEN + key.len() + value.len()
}

/// Keys are at most `MAX_KEY_LEN` (< 2^16) bytes: checked before encoding.
fn len16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// Values are at most `MAX_VALUE_LEN` (< 2^32) bytes: checked before encoding.
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `N` bytes at `at`, or `Bad::Short`.
pub(crate) fn array<const N: usize>(buf: &[u8], at: usize) -> Result<[u8; N], Bad> {
    let end = at.checked_add(N).ok_or(Bad::Short)?;
    buf.get(at..end)
        .and_then(|b| b.try_into().ok())
        .ok_or(Bad::Short)
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Frame = Frame {
        nonce: 0x5eed,
        synced: 24,
    };

    #[test]
    fn round_trip_every_kind() {
        let mut buf = Vec::new();
        encode(&mut buf, F, 7, Kind::Put, b"key", b"value");
        encode(&mut buf, F, 8, Kind::Tombstone, b"key", b"");
        encode_batch_end(&mut buf, F, 9, 3);
        let seal = Seal {
            records: 2,
            min_seq: 7,
            max_seq: 11,
            offset: 99,
        };
        encode_seal(&mut buf, F.nonce, &seal);
        let r = decode(&buf, F.nonce).unwrap();
        assert_eq!(
            (r.seq, r.kind, r.key, r.value, r.synced),
            (7, Kind::Put, &b"key"[..], &b"value"[..], 24)
        );
        let at = record_len(b"key", b"value");
        let t = decode(&buf[at..], F.nonce).unwrap();
        assert_eq!((t.seq, t.kind), (8, Kind::Tombstone));
        let at = at + record_len(b"key", b"");
        let end = decode(&buf[at..], F.nonce).unwrap();
        assert_eq!(end.batch_end(), Some((9, 3)));
        assert_eq!(end.seq, 11);
        let at = at + HEADER_LEN + BATCH_END_LEN;
        let s = decode(&buf[at..], F.nonce).unwrap();
        assert_eq!((s.seal(), s.synced), (Some(seal), 99));
        assert_eq!(buf.len() - at, SEAL_LEN);
    }

    #[test]
    fn a_record_verifies_only_under_its_files_nonce() {
        let mut buf = Vec::new();
        encode(&mut buf, F, 1, Kind::Put, b"k", b"v");
        assert!(decode(&buf, F.nonce).is_ok());
        assert_eq!(decode(&buf, F.nonce ^ 1).unwrap_err(), Bad::Crc);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let mut buf = Vec::new();
        encode(&mut buf, F, 1, Kind::Put, b"k", b"some value");
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(
                decode(&bad, F.nonce).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn truncations_and_bad_lengths_are_typed_errors() {
        let mut buf = Vec::new();
        encode(&mut buf, F, 1, Kind::Put, b"k", b"v");
        for len in 0..buf.len() {
            assert_eq!(decode(&buf[..len], F.nonce).unwrap_err(), Bad::Short);
        }
        let mut tomb_with_value = Vec::new();
        encode(&mut tomb_with_value, F, 1, Kind::Tombstone, b"k", b"v");
        assert_eq!(decode(&tomb_with_value, F.nonce).unwrap_err(), Bad::Length);
        let mut empty_key = Vec::new();
        encode(&mut empty_key, F, 1, Kind::Put, b"", b"v");
        assert_eq!(decode(&empty_key, F.nonce).unwrap_err(), Bad::Length);
        let mut unknown = buf.clone();
        unknown[12] = 99;
        assert_eq!(decode(&unknown, F.nonce).unwrap_err(), Bad::Kind(99));
    }
}
