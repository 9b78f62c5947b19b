//! A tiny seeded generator for the reliability harnesses: reproducible from a printed seed,
//! and without a dependency the library would otherwise not need.

/// SplitMix64.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    /// A number in `0..n` as a `usize`.
    pub(crate) fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }

    /// True with probability `percent`/100.
    pub(crate) fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Deterministic filler bytes for a value: the same `(id, len)` always gives the same bytes, so
/// a checker can tell a value the workload wrote from a garbled or invented one.
pub(crate) fn filler(id: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(id ^ 0x5eed_f111_e400_0000);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let word = rng.next().to_le_bytes();
        let take = (len - out.len()).min(word.len());
        out.extend_from_slice(&word[..take]);
    }
    out
}
