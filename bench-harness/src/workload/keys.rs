//! Turning key ids into bytes: keys are zero-padded decimal ids (db_bench's `%016d`), so key
//! order is id order and `fillseq` really is sequential for an ordered engine; values are slices
//! of one seeded random pool, as db_bench does, so generating them costs nothing per op.

use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The last byte of a key that is never written: real keys are all digits, so replacing the last
/// digit with this letter gives a key inside the key range that no write ever created (db_bench's
/// `readmissing` appends a `.` for the same purpose).
const MISSING_MARK: u8 = b'x';

/// Encodes key ids as fixed-width, zero-padded decimal strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyCodec {
    size: usize,
}

impl KeyCodec {
    /// Keys of `size` bytes.
    pub fn new(size: usize) -> Self {
        KeyCodec { size }
    }

    /// The key size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Decimal digits needed to write `id`.
    pub fn digits(id: u64) -> usize {
        id.checked_ilog10().map_or(1, |d| d as usize + 1)
    }

    /// Whether every id up to and including `max_id` fits in the key size.
    pub fn fits(&self, max_id: u64) -> bool {
        Self::digits(max_id) <= self.size
    }

    /// Writes the key of `id` into `out` (replacing its contents), without allocating: it runs
    /// once per operation.
    pub fn encode(&self, id: u64, out: &mut Vec<u8>) {
        out.clear();
        let digits = Self::digits(id);
        out.resize(self.size.saturating_sub(digits) + digits, b'0');
        let mut rest = id;
        for byte in out.iter_mut().rev().take(digits) {
            let digit = (rest % 10) as u8;
            *byte = b'0' + digit;
            rest /= 10;
        }
    }

    /// Writes a key next to `id`'s that no workload ever writes.
    pub fn encode_missing(&self, id: u64, out: &mut Vec<u8>) {
        self.encode(id, out);
        if let Some(last) = out.last_mut() {
            *last = MISSING_MARK;
        }
    }
}

/// Seeded random bytes from which every value is sliced.
#[derive(Clone, Debug)]
pub struct ValuePool {
    bytes: Vec<u8>,
    value_size: usize,
}

/// Distinct value offsets in the pool; values at different offsets differ.
const POOL_SPAN: usize = 1 << 20;

impl ValuePool {
    /// A pool for values of `value_size` bytes, filled from `seed`.
    pub fn new(value_size: usize, seed: u64) -> Self {
        let mut bytes = vec![0; POOL_SPAN + value_size];
        ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
        ValuePool { bytes, value_size }
    }

    /// How many distinct offsets a value can start at.
    pub fn offsets(&self) -> u32 {
        #[expect(clippy::cast_possible_truncation, reason = "POOL_SPAN is 2^20")]
        let span = POOL_SPAN as u32;
        span
    }

    /// The value that starts at `offset` (taken modulo [`ValuePool::offsets`]).
    pub fn value(&self, offset: u32) -> &[u8] {
        let start = offset as usize % POOL_SPAN;
        self.bytes
            .get(start..start + self.value_size)
            .unwrap_or_default()
    }

    /// The value size in bytes.
    pub fn value_size(&self) -> usize {
        self.value_size
    }
}
