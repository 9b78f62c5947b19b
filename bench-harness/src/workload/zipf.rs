//! YCSB's key choosers, ported so that skew means what it means in YCSB: the zipfian generator of
//! Gray et al. ("Quickly Generating Billion-Record Synthetic Databases", SIGMOD 1994) with
//! constant 0.99, its scrambled variant (hot keys scattered over the key space by FNV-64), and
//! the skewed-latest variant (the newest keys are the hottest).

use rand::Rng;

/// YCSB's `ZIPFIAN_CONSTANT`.
pub const ZIPFIAN_CONSTANT: f64 = 0.99;

/// The item count YCSB's `ScrambledZipfianGenerator` draws ranks from before hashing them onto
/// the key space.
pub const SCRAMBLED_ITEM_COUNT: u64 = 10_000_000_000;

/// zeta(10^10, 0.99), precomputed by YCSB so the scrambled generator starts instantly.
pub const SCRAMBLED_ZETAN: f64 = 26.469_028_201_783_02;

/// YCSB's `Utils.fnvhash64`: FNV-1a over the eight little-endian bytes of `value`, made
/// non-negative as Java's `Math.abs` does.
pub fn fnv_hash64(value: u64) -> u64 {
    const OFFSET_BASIS: u64 = 0xCBF2_9CE4_8422_2325;
    const PRIME: u64 = 1_099_511_628_211;
    let mut hash = OFFSET_BASIS;
    let mut rest = value;
    for _ in 0..8 {
        hash ^= rest & 0xff;
        hash = hash.wrapping_mul(PRIME);
        rest >>= 8;
    }
    #[expect(
        clippy::cast_possible_wrap,
        reason = "Java reads the hash as a signed long"
    )]
    let signed = hash as i64;
    signed.unsigned_abs()
}

/// zeta(n, theta) continued from `start` items whose sum is `initial`: Σ 1/(i+1)^theta.
fn zeta(start: u64, n: u64, theta: f64, initial: f64) -> f64 {
    let mut sum = initial;
    for i in start..n {
        #[expect(clippy::cast_precision_loss, reason = "ranks far below 2^52")]
        let rank = (i + 1) as f64;
        sum += 1.0 / rank.powf(theta);
    }
    sum
}

/// YCSB's `ZipfianGenerator` over ranks `0..items`: rank 0 is the most popular.
#[derive(Clone, Debug)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    zeta2theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    count_for_zeta: u64,
}

impl Zipfian {
    /// A generator over `items` ranks with constant 0.99. Computing zeta costs O(items) once;
    /// clone the generator rather than building it again.
    pub fn new(items: u64) -> Self {
        let items = items.max(1);
        Self::with_zetan(items, zeta(0, items, ZIPFIAN_CONSTANT, 0.0))
    }

    /// A generator whose zeta(items) is already known.
    pub fn with_zetan(items: u64, zetan: f64) -> Self {
        let theta = ZIPFIAN_CONSTANT;
        let zeta2theta = zeta(0, 2, theta, 0.0);
        let mut z = Zipfian {
            items: items.max(1),
            theta,
            zeta2theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta: 0.0,
            count_for_zeta: items.max(1),
        };
        z.eta = z.compute_eta();
        z
    }

    /// YCSB computes eta from the item count given at construction, even after the count grows;
    /// kept as is so the skew matches YCSB's.
    fn compute_eta(&self) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "item counts far below 2^52")]
        let items = self.items as f64;
        (1.0 - (2.0 / items).powf(1.0 - self.theta)) / (1.0 - self.zeta2theta / self.zetan)
    }

    /// The item count the generator was built for.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// A rank in `0..item_count` (YCSB's `nextLong(itemcount)`). A count larger than the last
    /// one extends zeta incrementally, as YCSB does when records are inserted.
    pub fn next_rank<R: Rng>(&mut self, rng: &mut R, item_count: u64) -> u64 {
        let item_count = item_count.max(1);
        if item_count > self.count_for_zeta {
            self.zetan = zeta(self.count_for_zeta, item_count, self.theta, self.zetan);
            self.count_for_zeta = item_count;
            self.eta = self.compute_eta();
        }
        let u: f64 = rng.r#gen();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(item_count - 1);
        }
        #[expect(clippy::cast_precision_loss, reason = "item counts far below 2^52")]
        let spread = item_count as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha);
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "spread lies in [0, item_count)"
        )]
        let rank = spread as u64;
        rank.min(item_count - 1)
    }
}

/// YCSB's `ScrambledZipfianGenerator`: a zipfian rank over 10^10 items, hashed onto `0..n`, so the
/// popular keys are scattered over the key space rather than clustered at its start.
#[derive(Clone, Debug)]
pub struct ScrambledZipfian {
    n: u64,
    ranks: Zipfian,
}

impl ScrambledZipfian {
    /// A generator over key ids `0..n`.
    pub fn new(n: u64) -> Self {
        ScrambledZipfian {
            n: n.max(1),
            ranks: Zipfian::with_zetan(SCRAMBLED_ITEM_COUNT, SCRAMBLED_ZETAN),
        }
    }

    /// The next key id in `0..n`.
    pub fn next_id<R: Rng>(&mut self, rng: &mut R) -> u64 {
        let rank = self.ranks.next_rank(rng, SCRAMBLED_ITEM_COUNT);
        fnv_hash64(rank) % self.n
    }
}

/// A bijection of `0..n` (a four-round Feistel network with cycle walking): `fillrandom` writes
/// every key exactly once, in an order that looks random, without holding a shuffled array.
#[derive(Clone, Debug)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl Permutation {
    /// A permutation of `0..n` chosen by `seed`.
    pub fn new(n: u64, seed: u64) -> Self {
        let bits = 64 - n.max(2).saturating_sub(1).leading_zeros();
        let half_bits = bits.div_ceil(2).max(1);
        let mut state = seed;
        let keys = [0; 4].map(|_: u64| splitmix64(&mut state));
        Permutation { n, half_bits, keys }
    }

    /// The image of `i` (which must be below `n`).
    pub fn apply(&self, i: u64) -> u64 {
        let mut x = i;
        loop {
            x = self.feistel(x);
            if x < self.n {
                return x;
            }
        }
    }

    fn feistel(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for key in self.keys {
            let mut state = right ^ key;
            let f = splitmix64(&mut state) & mask;
            (left, right) = (right, left ^ f);
        }
        (left << self.half_bits) | right
    }
}

/// One step of SplitMix64: a fast, well-mixed 64-bit generator, used to derive seeds.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed derived from a parent seed and a label (phase index, thread index).
pub fn derive_seed(parent: u64, label: u64) -> u64 {
    let mut state = parent ^ label.wrapping_mul(0xD1B5_4A32_D192_ED03);
    splitmix64(&mut state)
}
