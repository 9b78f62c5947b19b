//! Version edits: the records of the manifest. Spec: `docs/formats/manifest.md`.
//!
//! An edit is a list of fields, each `tag (varint) | len (varint) | body`. Length-prefixing every
//! field lets a reader skip fields it does not know whose tag is at or above
//! [`SAFE_TO_IGNORE`]; an unknown tag below it is corruption (a newer format this reader must not
//! misread).

use crate::coding::{Reader, put_bytes, put_varint};
use crate::filename::MAX_FILE_NUMBER;
use crate::key::{self, MAX_SEQ};

const TAG_LOG_NUMBER: u64 = 1;
const TAG_NEXT_FILE: u64 = 2;
const TAG_LAST_SEQUENCE: u64 = 3;
const TAG_DELETED_FILE: u64 = 4;
const TAG_NEW_FILE: u64 = 5;
const TAG_COMMITTED_TASK: u64 = 6;
/// Unknown tags at or above this may be skipped by older readers.
pub(crate) const SAFE_TO_IGNORE: u64 = 64;
/// The synced length of a WAL, recorded at clean close. Only adds a check, so an older reader
/// may skip it.
const TAG_WAL_SYNCED: u64 = SAFE_TO_IGNORE;

/// What the manifest knows about one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FileMeta {
    pub(crate) number: u64,
    pub(crate) size: u64,
    /// Smallest and largest internal keys.
    pub(crate) smallest: Vec<u8>,
    pub(crate) largest: Vec<u8>,
    pub(crate) min_seq: u64,
    pub(crate) max_seq: u64,
    pub(crate) entries: u64,
    pub(crate) tombstones: u64,
}

/// A change to the set of live tables and the engine's counters, committed atomically as one
/// manifest record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct VersionEdit {
    /// Every WAL numbered below this has been flushed and may be deleted.
    pub(crate) log_number: Option<u64>,
    /// No file of this engine has a number at or above this.
    pub(crate) next_file_number: Option<u64>,
    /// The highest sequence number used so far.
    pub(crate) last_sequence: Option<u64>,
    /// Tables removed: (level, number).
    pub(crate) deleted: Vec<(u32, u64)>,
    /// Tables added: (level, metadata).
    pub(crate) added: Vec<(u32, FileMeta)>,
    /// The compaction task this edit commits, so recovery can tell a committed task from an
    /// interrupted one.
    pub(crate) committed_task: Option<u64>,
    /// `(WAL number, length)`: that WAL was synced through `length` bytes, so at open a shorter
    /// or damaged prefix is corruption, not a torn tail. Written by a clean close and carried
    /// in every snapshot while the WAL is live (`docs/lsm.md`, "Close").
    pub(crate) wal_synced: Option<(u64, u64)>,
}

impl FileMeta {
    /// Sequence numbers within an internal key's range, parseable boundary keys in order, no
    /// more tombstones than entries.
    fn is_consistent(&self) -> bool {
        let keys = match (key::parse(&self.smallest), key::parse(&self.largest)) {
            _ if self.entries == 0 => self.smallest.is_empty() && self.largest.is_empty(),
            (Some(_), Some(_)) => key::compare(&self.smallest, &self.largest).is_le(),
            _ => false,
        };
        keys && self.min_seq <= self.max_seq
            && self.max_seq <= MAX_SEQ
            && self.tombstones <= self.entries
    }
}

fn field(out: &mut Vec<u8>, tag: u64, body: &[u8]) {
    put_varint(out, tag);
    put_bytes(out, body);
}

fn varint_body(v: u64) -> Vec<u8> {
    let mut b = Vec::new();
    put_varint(&mut b, v);
    b
}

impl VersionEdit {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let singles = [
            (TAG_LOG_NUMBER, self.log_number),
            (TAG_NEXT_FILE, self.next_file_number),
            (TAG_LAST_SEQUENCE, self.last_sequence),
            (TAG_COMMITTED_TASK, self.committed_task),
        ];
        for (tag, value) in singles {
            if let Some(v) = value {
                field(&mut out, tag, &varint_body(v));
            }
        }
        for &(level, number) in &self.deleted {
            let mut b = varint_body(u64::from(level));
            put_varint(&mut b, number);
            field(&mut out, TAG_DELETED_FILE, &b);
        }
        for (level, f) in &self.added {
            let mut b = varint_body(u64::from(*level));
            put_varint(&mut b, f.number);
            put_varint(&mut b, f.size);
            put_bytes(&mut b, &f.smallest);
            put_bytes(&mut b, &f.largest);
            for v in [f.min_seq, f.max_seq, f.entries, f.tombstones] {
                put_varint(&mut b, v);
            }
            field(&mut out, TAG_NEW_FILE, &b);
        }
        if let Some((number, len)) = self.wal_synced {
            let mut b = varint_body(number);
            put_varint(&mut b, len);
            field(&mut out, TAG_WAL_SYNCED, &b);
        }
        out
    }

    /// Decodes an edit; `Err` says what was malformed.
    pub(crate) fn decode(bytes: &[u8]) -> Result<VersionEdit, &'static str> {
        let mut r = Reader::new(bytes);
        let mut edit = VersionEdit::default();
        while !r.is_empty() {
            let tag = r.varint().ok_or("a field tag")?;
            let body = r.bytes().ok_or("a field body within the record")?;
            edit.decode_field(tag, body)?;
        }
        edit.check()?;
        Ok(edit)
    }

    /// The checksum proves only that these are the bytes written: every number must also be
    /// one this engine could have written (sequence numbers that fit an internal key, file
    /// numbers the counter cannot wrap from, consistent table metadata).
    fn check(&self) -> Result<(), &'static str> {
        let numbers = [self.log_number, self.next_file_number, self.committed_task]
            .into_iter()
            .flatten()
            .chain(self.deleted.iter().map(|&(_, n)| n))
            .chain(self.added.iter().map(|(_, f)| f.number))
            .chain(self.wal_synced.map(|(n, _)| n));
        if numbers.into_iter().any(|n| n > MAX_FILE_NUMBER) {
            return Err("file numbers below 2^56");
        }
        if self.last_sequence.is_some_and(|s| s > MAX_SEQ) {
            return Err("a last sequence number that fits an internal key");
        }
        if !self.added.iter().all(|(_, f)| f.is_consistent()) {
            return Err("consistent table metadata");
        }
        Ok(())
    }

    fn decode_field(&mut self, tag: u64, body: &[u8]) -> Result<(), &'static str> {
        let mut b = Reader::new(body);
        let single = |b: &mut Reader<'_>| b.varint().ok_or("a varint field");
        match tag {
            TAG_LOG_NUMBER => self.log_number = Some(single(&mut b)?),
            TAG_NEXT_FILE => self.next_file_number = Some(single(&mut b)?),
            TAG_LAST_SEQUENCE => self.last_sequence = Some(single(&mut b)?),
            TAG_COMMITTED_TASK => self.committed_task = Some(single(&mut b)?),
            TAG_DELETED_FILE => {
                let level = level(&mut b)?;
                self.deleted.push((level, single(&mut b)?));
            }
            TAG_NEW_FILE => {
                let level = level(&mut b)?;
                let f = new_file(&mut b).ok_or("a well-formed new-file field")?;
                self.added.push((level, f));
            }
            TAG_WAL_SYNCED => self.wal_synced = Some((single(&mut b)?, single(&mut b)?)),
            t if t > SAFE_TO_IGNORE => return Ok(()),
            _ => return Err("a known field tag"),
        }
        if b.is_empty() {
            Ok(())
        } else {
            Err("a field with no trailing bytes")
        }
    }
}

fn level(b: &mut Reader<'_>) -> Result<u32, &'static str> {
    b.varint()
        .and_then(|l| u32::try_from(l).ok())
        .ok_or("a level number")
}

fn new_file(b: &mut Reader<'_>) -> Option<FileMeta> {
    Some(FileMeta {
        number: b.varint()?,
        size: b.varint()?,
        smallest: b.bytes()?.to_vec(),
        largest: b.bytes()?.to_vec(),
        min_seq: b.varint()?,
        max_seq: b.varint()?,
        entries: b.varint()?,
        tombstones: b.varint()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_round_trip_and_skip_ignorable_fields() {
        let edit = VersionEdit {
            log_number: Some(4),
            next_file_number: Some(9),
            last_sequence: Some(1000),
            deleted: vec![(0, 3), (6, 5)],
            added: vec![(
                6,
                FileMeta {
                    number: 8,
                    size: 4096,
                    smallest: b"a\x01\0\0\0\0\0\0\0".to_vec(),
                    largest: b"z\x01\0\0\0\0\0\0\0".to_vec(),
                    min_seq: 1,
                    max_seq: 99,
                    entries: 50,
                    tombstones: 2,
                },
            )],
            committed_task: Some(17),
            wal_synced: Some((12, 4096)),
        };
        let mut bytes = edit.encode();
        assert_eq!(VersionEdit::decode(&bytes), Ok(edit.clone()));
        field(&mut bytes, SAFE_TO_IGNORE + 1, b"future");
        assert_eq!(VersionEdit::decode(&bytes), Ok(edit));
        let mut unknown = Vec::new();
        field(&mut unknown, 40, b"x");
        assert!(VersionEdit::decode(&unknown).is_err());
    }
}
