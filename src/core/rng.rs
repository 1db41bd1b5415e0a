//! The random source for branches, Call-IDs and tags: ChaCha8 keyed from the caller's seed.
//!
//! The core reads no entropy of its own. The caller seeds it once (from the platform's random source in
//! production, from a fixed number in tests); every branch then carries 96 unpredictable bits, so an
//! off-path attacker cannot forge a reply that matches.
//!
//! # Why a ChaCha8 of its own
//!
//! The `chacha20` crate (0.10, `rng` feature, `ChaChaCore<R8, Legacy>`) gives the same keystream (same
//! key, 64-bit block counter and zero nonce), was measured in its place, and was not taken: its block
//! function computes four blocks per call, so each recomputation of a cycle's 10 words costs four
//! blocks where this one costs one or two. Measured against this file (fastest of three criterion
//! runs on a loaded 2-core x86-64 host): a cycle start 379 ns here, 436 ns with the crate; a reply
//! 280 ns and 327 ns; encode, parse and match 541 ns and 587 ns. On a Cortex-M4 there is no SIMD to
//! spread the four blocks over, so about 8 blocks per server and cycle instead of about 3. The code
//! size is the same (thumbv7em `.text` within 10 bytes, `size_of::<Agent>()` 1016 bytes either way,
//! since the key and position are all that is stored) but the four-block buffer adds 180 bytes of
//! stack on the target. `rand_chacha` buffers four blocks the same way.

/// A ChaCha8 keystream used as a random-number generator.
///
/// The state is the key and a position in the keystream (in 32-bit words); blocks are computed when
/// needed, not cached, which keeps the agent small. Any past output can be recomputed from its position
/// with [`Rng::fill_at`].
#[derive(Clone)]
pub struct Rng {
    key: [u32; 8],
    /// The keystream word the next draw starts at.
    pos: u64,
}

impl core::fmt::Debug for Rng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Rng { .. }")
    }
}

const ROUNDS: usize = 8;

/// The ChaCha quarter round.
#[inline(always)]
fn quarter([mut a, mut b, mut c, mut d]: [u32; 4]) -> [u32; 4] {
    a = a.wrapping_add(b);
    d = (d ^ a).rotate_left(16);
    c = c.wrapping_add(d);
    b = (b ^ c).rotate_left(12);
    a = a.wrapping_add(b);
    d = (d ^ a).rotate_left(8);
    c = c.wrapping_add(d);
    b = (b ^ c).rotate_left(7);
    [a, b, c, d]
}

/// A quarter round on four words of the state, named by constant indices (checked at compile time).
macro_rules! quarter {
    ($s:ident, $a:literal, $b:literal, $c:literal, $d:literal) => {
        [$s[$a], $s[$b], $s[$c], $s[$d]] = quarter([$s[$a], $s[$b], $s[$c], $s[$d]]);
    };
}

/// Word `pos % 16` of `block`, the block that holds keystream word `pos`.
fn word(block: &[u32; 16], pos: u64) -> u32 {
    // Never the fallback: the remainder indexes the 16 words.
    block.get((pos % 16) as usize).copied().unwrap_or(0)
}

impl Rng {
    /// A generator keyed with 32 bytes of entropy.
    pub fn from_key(key: [u8; 32]) -> Self {
        let mut k = [0u32; 8];
        for (word, chunk) in k.iter_mut().zip(key.chunks_exact(4)) {
            if let Some(bytes) = chunk.first_chunk() {
                *word = u32::from_le_bytes(*bytes);
            }
        }
        Rng { key: k, pos: 0 }
    }

    /// A generator keyed from a 64-bit seed (expanded with SplitMix64).
    pub fn from_seed(seed: u64) -> Self {
        let mut key = [0u8; 32];
        let mut x = seed;
        for chunk in key.chunks_exact_mut(8) {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            if let Ok(chunk) = <&mut [u8; 8]>::try_from(chunk) {
                *chunk = z.to_le_bytes();
            }
        }
        Self::from_key(key)
    }

    /// Keystream block number `counter`.
    fn block(&self, counter: u64) -> [u32; 16] {
        let [k0, k1, k2, k3, k4, k5, k6, k7] = self.key;
        // "expand 32-byte k", the key, the 64-bit block counter, a zero nonce.
        #[rustfmt::skip]
        let input = [
            0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574,
            k0, k1, k2, k3,
            k4, k5, k6, k7,
            counter as u32, (counter >> 32) as u32, 0, 0,
        ];
        let mut s = input;
        for _ in 0..ROUNDS / 2 {
            quarter!(s, 0, 4, 8, 12);
            quarter!(s, 1, 5, 9, 13);
            quarter!(s, 2, 6, 10, 14);
            quarter!(s, 3, 7, 11, 15);
            quarter!(s, 0, 5, 10, 15);
            quarter!(s, 1, 6, 11, 12);
            quarter!(s, 2, 7, 8, 13);
            quarter!(s, 3, 4, 9, 14);
        }
        for (o, i) in s.iter_mut().zip(input.iter()) {
            *o = o.wrapping_add(*i);
        }
        s
    }

    /// The keystream word the next draw starts at.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Fills `out` with the bytes [`Rng::fill`] wrote (or will write) when at word position `pos`,
    /// without moving this generator.
    pub fn fill_at(&self, pos: u64, out: &mut [u8]) {
        let mut cached: Option<(u64, [u32; 16])> = None;
        let mut pos = pos;
        for chunk in out.chunks_mut(4) {
            let counter = pos / 16;
            let block = match cached {
                Some((c, b)) if c == counter => b,
                _ => {
                    let b = self.block(counter);
                    cached = Some((counter, b));
                    b
                }
            };
            for (o, b) in chunk.iter_mut().zip(word(&block, pos).to_le_bytes()) {
                *o = b;
            }
            pos = pos.wrapping_add(1);
        }
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        let v = word(&self.block(self.pos / 16), self.pos);
        self.pos = self.pos.wrapping_add(1);
        v
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        (u64::from(self.next_u32()) << 32) | u64::from(self.next_u32())
    }

    /// Fills `out` with random bytes: one keystream word per 4 bytes or part of them.
    pub fn fill(&mut self, out: &mut [u8]) {
        self.fill_at(self.pos, out);
        self.skip(out.len());
    }

    /// Moves past the words a [`Rng::fill`] of `bytes` bytes would take, without computing them: for
    /// draws that are recomputed with [`Rng::fill_at`] when needed.
    pub fn skip(&mut self, bytes: usize) {
        self.pos = self.pos.wrapping_add(bytes.div_ceil(4) as u64);
    }

    /// A value in `0..=max`, without modulo bias worth noticing for the spans used here.
    pub fn below_or_equal(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            return self.next_u64();
        }
        // Multiply-shift reduction (Lemire); bias is at most 2^-64 per draw. `max + 1` is at most 2^64,
        // and the product of a 64-bit value with it fits in 128 bits: neither can wrap.
        (u128::from(self.next_u64()).wrapping_mul(u128::from(max).wrapping_add(1)) >> 64) as u64
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let mut a = Rng::from_seed(7);
        let mut b = Rng::from_seed(7);
        let mut c = Rng::from_seed(8);
        let xa: [u64; 4] = core::array::from_fn(|_| a.next_u64());
        let xb: [u64; 4] = core::array::from_fn(|_| b.next_u64());
        let xc: [u64; 4] = core::array::from_fn(|_| c.next_u64());
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn chacha8_keystream_matches_reference() {
        // First words of ChaCha8 with an all-zero key and nonce (reference keystream
        // 3e00ef2f895f40d67f5bb8e81f09a5a12c840ec3ce9a7f3b181be188ef711a1e...).
        let mut r = Rng::from_key([0; 32]);
        assert_eq!(r.next_u32().to_le_bytes(), [0x3e, 0x00, 0xef, 0x2f]);
        assert_eq!(r.next_u32().to_le_bytes(), [0x89, 0x5f, 0x40, 0xd6]);
    }

    /// FNV-1a of `bytes`.
    fn fnv(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
    }

    #[test]
    fn the_keystream_stays_the_recorded_one() {
        // Branches, Call-IDs, tags and failback spreads, and so the lab's outputs for a seed, come from
        // this keystream: another implementation must give the same words at the same positions, also
        // across block boundaries and far into the stream.
        let r = Rng::from_seed(42);
        let mut words = std::vec![0u8; 4 * 2048];
        r.fill_at(0, &mut words);
        assert_eq!(fnv(&words), 0xd36f_23e6_96a0_71da);
        for (pos, want) in [
            (15, 0x017a_1f76_0c3c_d924),
            (63, 0x1193_695b_1013_5496),
            (64, 0x8324_ba14_7f4b_f22e),
            (1 << 36, 0xb909_2c8e_88a2_f6de),
            ((1 << 40) + 61, 0x5186_3998_5871_991b),
            (u64::MAX - 20, 0x5030_847f_8d0c_6017),
        ] {
            let mut b = [0u8; 40];
            r.fill_at(pos, &mut b);
            assert_eq!(fnv(&b), want, "at word {pos}");
        }
        let mut k = Rng::from_key(*b"sip-failover keystream reference");
        assert_eq!(k.next_u64(), 0x1836_3529_8b45_891f);
        assert_eq!(k.below_or_equal(1_000_000), 0x3a8fe);
    }

    #[test]
    fn fill_at_recomputes_past_output() {
        let mut r = Rng::from_seed(9);
        let _ = r.next_u32();
        let mut past = [[0u8; 12]; 5];
        let mut at = [0u64; 5];
        for (i, buf) in past.iter_mut().enumerate() {
            at[i] = r.position();
            r.fill(&mut buf[..4 + 2 * i]);
        }
        for (i, buf) in past.iter().enumerate() {
            let mut again = [0u8; 12];
            r.fill_at(at[i], &mut again[..4 + 2 * i]);
            assert_eq!(again, *buf);
        }
        // Crossing a block boundary draws the same words as one at a time.
        let mut a = Rng::from_seed(5);
        let mut b = a.clone();
        let mut big = [0u8; 80];
        a.fill(&mut big);
        for chunk in big.chunks(4) {
            assert_eq!(chunk, b.next_u32().to_le_bytes());
        }
        assert_eq!(a.position(), 20);
        // Skipping moves as far as filling, a part of a word taking a whole one.
        let mut c = Rng::from_seed(5);
        c.skip(80);
        c.skip(6);
        let mut d = Rng::from_seed(5);
        d.fill(&mut [0u8; 80]);
        d.fill(&mut [0u8; 6]);
        assert_eq!((c.position(), c.next_u32()), (d.position(), d.next_u32()));
    }

    #[test]
    fn below_or_equal_stays_in_range() {
        let mut r = Rng::from_seed(1);
        for max in [0u64, 1, 5, 1000, u64::MAX] {
            for _ in 0..100 {
                assert!(r.below_or_equal(max) <= max);
            }
        }
    }
}
