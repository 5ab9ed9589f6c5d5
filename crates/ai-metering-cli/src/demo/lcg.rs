//! A tiny deterministic pseudo-random generator for the demo's synthetic data (a 64-bit
//! linear congruential generator with Knuth's MMIX constants; the high bits are used).
//! Not for anything that needs real randomness.

/// The generator; the same seed gives the same sequence on every platform.
#[derive(Debug, Clone)]
pub struct Lcg(u64);

impl Lcg {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // The high half has the best statistical quality; the shift leaves 32 bits.
        u32::try_from(self.0 >> 32).unwrap_or(u32::MAX)
    }

    /// A number in `lo..=hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo + 1;
        lo + u64::from(self.next_u32()) % span
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.range(0, 99) < percent
    }

    /// An item of `weighted` (item, weight), chosen by weight.
    pub fn pick<'a, T>(&mut self, weighted: &'a [(T, u64)]) -> Option<&'a T> {
        let total: u64 = weighted.iter().map(|(_, w)| *w).sum();
        if total == 0 {
            return None;
        }
        let mut roll = self.range(0, total - 1);
        for (item, w) in weighted {
            if roll < *w {
                return Some(item);
            }
            roll -= w;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_deterministic_and_stays_in_range() {
        let mut a = Lcg::new(42);
        let mut b = Lcg::new(42);
        for _ in 0..1000 {
            let x = a.range(10, 20);
            assert_eq!(x, b.range(10, 20));
            assert!((10..=20).contains(&x));
        }
        assert_ne!(Lcg::new(1).next_u32(), Lcg::new(2).next_u32());
    }

    #[test]
    fn picks_follow_the_weights() {
        let mut g = Lcg::new(7);
        let items = [("a", 90), ("b", 10), ("never", 0)];
        let mut a = 0;
        for _ in 0..1000 {
            match g.pick(&items) {
                Some(&"a") => a += 1,
                Some(&"never") => panic!("weight 0 picked"),
                _ => {}
            }
        }
        assert!((850..=950).contains(&a), "{a}");
    }
}
