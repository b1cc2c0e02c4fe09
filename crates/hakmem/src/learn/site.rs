//! Per-call-site profiles: up to `MAX_SITES`, keyed by the call site's address (a linear scan;
//! only sampled events look); when full, a new site evicts the one with the fewest allocations
//! (ties: the least recently seen). Each counts allocations and frees, keeps a size sketch
//! and estimates its blocks' mean lifetime by Little's law (time-integral of live blocks over
//! allocations, in the caller's ticks). No allocation; `sites.rs` samples and serialises.

use super::sketch::SizeSketch;

/// Most call sites profiled at once.
pub const MAX_SITES: usize = 64;

#[derive(Clone, Copy, Debug)]
pub struct SiteProfile {
    /// The call site's address.
    pub site: usize,
    pub allocs: u64,
    pub frees: u64,
    pub sizes: SizeSketch,
    /// Integral of live blocks over ticks, up to `last_tick`.
    live_ticks: u128,
    /// Tick of the last event seen for this site.
    pub last_tick: u64,
}

impl SiteProfile {
    const fn new(site: usize, now: u64) -> Self {
        SiteProfile {
            site,
            allocs: 0,
            frees: 0,
            sizes: SizeSketch::new(),
            live_ticks: 0,
            last_tick: now,
        }
    }

    /// Blocks allocated here and not yet freed (as far as sampled events tell).
    pub fn live(&self) -> u64 {
        self.allocs - self.frees
    }

    fn advance(&mut self, now: u64) {
        if now > self.last_tick {
            self.live_ticks += self.live() as u128 * (now - self.last_tick) as u128;
            self.last_tick = now;
        }
    }

    /// Mean lifetime of a block from this site in ticks, by Little's law, counting blocks still
    /// live up to `now`; None before the first allocation.
    pub fn lifetime(&self, now: u64) -> Option<u64> {
        if self.allocs == 0 {
            return None;
        }
        let extra = self.live() as u128 * now.saturating_sub(self.last_tick) as u128;
        Some(((self.live_ticks + extra) / self.allocs as u128).min(u64::MAX as u128) as u64)
    }
}

pub struct SiteTable {
    profiles: [SiteProfile; MAX_SITES],
    len: usize,
}

impl SiteTable {
    pub const fn new() -> Self {
        SiteTable {
            profiles: [SiteProfile::new(0, 0); MAX_SITES],
            len: 0,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &SiteProfile> {
        self.profiles[..self.len].iter()
    }

    fn position(&self, site: usize) -> Option<usize> {
        self.iter().position(|p| p.site == site)
    }

    #[cfg(test)]
    pub fn get(&self, site: usize) -> Option<&SiteProfile> {
        self.position(site).map(|i| &self.profiles[i])
    }

    /// Records a sampled allocation of `size` bytes from `site` at tick `now`.
    pub fn record_alloc(&mut self, site: usize, size: u64, now: u64) {
        let i = self.position(site).unwrap_or_else(|| {
            if self.len == MAX_SITES {
                let coldest = (0..self.len)
                    .min_by_key(|&i| (self.profiles[i].allocs, self.profiles[i].last_tick));
                self.len -= 1;
                self.profiles[coldest.unwrap_or(0)] = self.profiles[self.len];
            }
            self.profiles[self.len] = SiteProfile::new(site, now);
            self.len += 1;
            self.len - 1
        });
        let p = &mut self.profiles[i];
        p.advance(now);
        p.allocs += 1;
        p.sizes.record(size);
    }

    /// Records a sampled free of a block allocated at `site`; false if the site is not profiled
    /// (never sampled, or evicted), in which case nothing changes.
    pub fn record_free(&mut self, site: usize, now: u64) -> bool {
        let Some(i) = self.position(site) else {
            return false;
        };
        let p = &mut self.profiles[i];
        p.advance(now);
        if p.frees < p.allocs {
            p.frees += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sizes_and_lifetimes_by_littles_law() {
        let mut t = SiteTable::new();
        // One block every tick, each freed 10 ticks later: lifetime 10.
        for now in 0..1000u64 {
            t.record_alloc(7, 64 + now % 4, now);
            if now >= 10 {
                assert!(t.record_free(7, now));
            }
        }
        let p = t.get(7).unwrap();
        assert_eq!((p.allocs, p.live()), (1000, 10));
        assert!((64..=67).contains(&p.sizes.p50().unwrap()));
        assert!((9..=11).contains(&p.lifetime(1000).unwrap()));
        assert!(t.get(8).is_none() && !t.record_free(8, 0));
    }

    #[test]
    fn a_full_table_evicts_the_coldest() {
        let mut t = SiteTable::new();
        // Site k gets k + 2 allocations, so site 0 is the coldest.
        for k in 0..MAX_SITES {
            for _ in 0..k + 2 {
                t.record_alloc(0x1000 + 16 * k, 8, k as u64);
            }
        }
        t.record_alloc(0x9999_0000, 8, 100);
        assert_eq!(t.len, MAX_SITES);
        assert!(t.get(0x1000).is_none());
        for k in 1..MAX_SITES {
            assert_eq!(t.get(0x1000 + 16 * k).unwrap().allocs, k as u64 + 2);
        }
        // The newcomer (1 allocation) is now the coldest and goes next.
        t.record_alloc(0x7777_0000, 8, 101);
        assert!(t.get(0x9999_0000).is_none() && t.get(0x7777_0000).is_some());
    }
}
