//! Per-call-site profiles, and the adaptive sampling rate that bounds their cost.
//!
//! `SiteTable` holds up to `MAX_SITES` profiles keyed by the call site's address (the caller's
//! return address, taken only for sampled allocations). Lookup goes through an open-addressing
//! index (linear probing, `INDEX_SLOTS` = 2 x `MAX_SITES`, so probes stay short) into a dense array
//! of profiles. When the table is full, a new site evicts the profile with the fewest allocations
//! (ties: the least recently seen), removed with backward-shift deletion, so no tombstones build up.
//!
//! Each profile counts allocations, frees and bytes, keeps a size sketch, and estimates the mean
//! lifetime of its blocks by Little's law: lifetime = (time-integral of live blocks) / allocations,
//! where time is whatever tick the caller passes (sampled events, or nanoseconds).
//!
//! `Sampler` samples 1 in 2^k events; `adjust` raises k when the measured overhead is over budget
//! and lowers it when it is under a quarter of the budget (the band keeps it from oscillating).
//! No allocation; the caller serialises access.

use super::sketch::SizeSketch;

/// Most call sites profiled at once.
pub const MAX_SITES: usize = 64;
/// Slots in the open-addressing index (a power of two, twice `MAX_SITES`).
pub const INDEX_SLOTS: usize = 2 * MAX_SITES;
const EMPTY: u8 = u8::MAX;

#[derive(Clone, Copy, Debug)]
pub struct SiteProfile {
    /// The call site's address.
    pub site: usize,
    pub allocs: u64,
    pub frees: u64,
    /// Bytes requested in total.
    pub bytes: u64,
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
            bytes: 0,
            sizes: SizeSketch::new(),
            live_ticks: 0,
            last_tick: now,
        }
    }

    /// Blocks allocated here and not yet freed (as far as sampled events tell).
    pub fn live(&self) -> u64 {
        self.allocs.saturating_sub(self.frees)
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

    pub fn mean_size(&self) -> u64 {
        self.bytes.checked_div(self.allocs).unwrap_or(0)
    }
}

pub struct SiteTable {
    profiles: [SiteProfile; MAX_SITES],
    len: usize,
    /// Index into `profiles`, or EMPTY.
    index: [u8; INDEX_SLOTS],
    evictions: u64,
}

fn home(site: usize) -> usize {
    // Fibonacci hashing: the top bits of site * 2^64/phi.
    ((site as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - INDEX_SLOTS.trailing_zeros()))
        as usize
}

impl SiteTable {
    pub const fn new() -> Self {
        SiteTable {
            profiles: [SiteProfile::new(0, 0); MAX_SITES],
            len: 0,
            index: [EMPTY; INDEX_SLOTS],
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Profiles evicted so far to make room.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    pub fn iter(&self) -> impl Iterator<Item = &SiteProfile> {
        self.profiles[..self.len].iter()
    }

    /// The index slot that holds `site`, or the empty slot where it would go.
    fn probe(&self, site: usize) -> (usize, bool) {
        let mut s = home(site);
        loop {
            let p = self.index[s];
            if p == EMPTY {
                return (s, false);
            }
            if self.profiles[p as usize].site == site {
                return (s, true);
            }
            s = (s + 1) % INDEX_SLOTS;
        }
    }

    pub fn get(&self, site: usize) -> Option<&SiteProfile> {
        match self.probe(site) {
            (s, true) => Some(&self.profiles[self.index[s] as usize]),
            _ => None,
        }
    }

    /// Records a sampled allocation of `size` bytes from `site` at tick `now`.
    pub fn record_alloc(&mut self, site: usize, size: u64, now: u64) {
        let p = self.get_or_insert(site, now);
        p.advance(now);
        p.allocs += 1;
        p.bytes = p.bytes.saturating_add(size);
        p.sizes.record(size);
    }

    /// Records a sampled free of a block allocated at `site`; false if the site is not profiled
    /// (never sampled, or evicted), in which case nothing changes.
    pub fn record_free(&mut self, site: usize, now: u64) -> bool {
        match self.probe(site) {
            (s, true) => {
                let p = &mut self.profiles[self.index[s] as usize];
                p.advance(now);
                if p.frees < p.allocs {
                    p.frees += 1;
                }
                true
            }
            _ => false,
        }
    }

    fn get_or_insert(&mut self, site: usize, now: u64) -> &mut SiteProfile {
        let (mut slot, found) = self.probe(site);
        if !found {
            if self.len == MAX_SITES {
                self.evict_coldest();
                slot = self.probe(site).0;
            }
            let i = self.len;
            self.profiles[i] = SiteProfile::new(site, now);
            self.index[slot] = i as u8;
            self.len += 1;
        }
        let i = self.index[slot] as usize;
        &mut self.profiles[i]
    }

    /// Removes the profile with the fewest allocations (ties: least recently seen, then lowest
    /// position).
    fn evict_coldest(&mut self) {
        let mut v = 0;
        for i in 1..self.len {
            let (a, b) = (&self.profiles[i], &self.profiles[v]);
            if (a.allocs, a.last_tick) < (b.allocs, b.last_tick) {
                v = i;
            }
        }
        self.remove_at(v);
        self.evictions += 1;
    }

    /// Removes profile `i`: backward-shift deletion in the index, then the last profile moves
    /// into position `i`.
    fn remove_at(&mut self, i: usize) {
        let (mut hole, found) = self.probe(self.profiles[i].site);
        debug_assert!(found);
        self.index[hole] = EMPTY;
        let mut s = (hole + 1) % INDEX_SLOTS;
        while self.index[s] != EMPTY {
            let h = home(self.profiles[self.index[s] as usize].site);
            // Move the entry back when its home is not in the cyclic range (hole, s].
            let dist_s = (s + INDEX_SLOTS - h) % INDEX_SLOTS;
            let dist_hole = (hole + INDEX_SLOTS - h) % INDEX_SLOTS;
            if dist_hole < dist_s {
                self.index[hole] = self.index[s];
                self.index[s] = EMPTY;
                hole = s;
            }
            s = (s + 1) % INDEX_SLOTS;
        }
        let last = self.len - 1;
        if i != last {
            let (slot, found) = self.probe(self.profiles[last].site);
            debug_assert!(found);
            self.profiles[i] = self.profiles[last];
            self.index[slot] = i as u8;
        }
        self.len -= 1;
    }

    /// Removes every profile.
    pub fn clear(&mut self) {
        self.len = 0;
        self.index = [EMPTY; INDEX_SLOTS];
    }
}

impl Default for SiteTable {
    fn default() -> Self {
        SiteTable::new()
    }
}

/// Samples 1 in 2^shift events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampler {
    shift: u32,
    min_shift: u32,
    max_shift: u32,
}

impl Sampler {
    /// Starts at 1 in 2^`shift`, kept within [min_shift, max_shift] (at most 2^30).
    pub const fn new(shift: u32, min_shift: u32, max_shift: u32) -> Self {
        let max_shift = if max_shift > 30 { 30 } else { max_shift };
        let min_shift = if min_shift > max_shift {
            max_shift
        } else {
            min_shift
        };
        let shift = if shift < min_shift {
            min_shift
        } else if shift > max_shift {
            max_shift
        } else {
            shift
        };
        Sampler {
            shift,
            min_shift,
            max_shift,
        }
    }

    pub fn shift(&self) -> u32 {
        self.shift
    }

    /// Events per sample.
    pub fn period(&self) -> u64 {
        1 << self.shift
    }

    /// True when event number `n` (a counter the caller keeps) is sampled.
    pub fn is_sampled(&self, n: u64) -> bool {
        n & (self.period() - 1) == 0
    }

    /// Adjusts the rate after an epoch in which sampling cost `overhead_ns` of `total_ns`, against
    /// a budget in parts per million. Returns +1 (sample less), -1 (sample more) or 0.
    pub fn adjust(&mut self, overhead_ns: u64, total_ns: u64, budget_ppm: u64) -> i32 {
        if total_ns == 0 {
            return 0;
        }
        let ppm = overhead_ns as u128 * 1_000_000 / total_ns as u128;
        if ppm > budget_ppm as u128 && self.shift < self.max_shift {
            self.shift += 1;
            1
        } else if ppm * 4 < budget_ppm as u128 && self.shift > self.min_shift {
            self.shift -= 1;
            -1
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bytes_sizes_and_lookup() {
        let mut t = Box::new(SiteTable::new());
        for i in 0..100u64 {
            t.record_alloc(0x40_1000, 64 + i % 4, i);
            if i % 2 == 0 {
                t.record_alloc(0x40_2000, 1 << 20, i);
            }
        }
        assert_eq!(t.len(), 2);
        let a = t.get(0x40_1000).unwrap();
        assert_eq!((a.allocs, a.bytes), (100, 100 * 64 + 150));
        assert_eq!(a.mean_size(), 65);
        assert!((64..=67).contains(&a.sizes.p50().unwrap()));
        let b = t.get(0x40_2000).unwrap();
        assert_eq!(b.allocs, 50);
        assert_eq!(b.sizes.p95(), Some(1 << 20));
        assert!(t.get(0x40_3000).is_none());
        assert!(!t.record_free(0x40_3000, 0));
    }

    #[test]
    fn lifetime_follows_littles_law() {
        let mut t = SiteTable::new();
        // One block every tick, each freed 10 ticks later: lifetime 10.
        for now in 0..1000u64 {
            t.record_alloc(7, 32, now);
            if now >= 10 {
                assert!(t.record_free(7, now));
            }
        }
        let l = t.get(7).unwrap().lifetime(1000).unwrap();
        assert!((9..=11).contains(&l), "{l}");
        // Short-lived: freed at once.
        for now in 0..1000u64 {
            t.record_alloc(8, 32, now);
            t.record_free(8, now);
        }
        assert_eq!(t.get(8).unwrap().lifetime(1000), Some(0));
        assert_eq!(t.get(8).unwrap().live(), 0);
    }

    #[test]
    fn full_table_evicts_the_coldest_and_keeps_lookups_right() {
        let mut t = SiteTable::new();
        // 64 sites; site k gets k + 2 allocations, so site 0 is coldest.
        for k in 0..MAX_SITES {
            for _ in 0..k + 2 {
                t.record_alloc(0x1000 + 16 * k, 8, k as u64);
            }
        }
        assert_eq!(t.len(), MAX_SITES);
        t.record_alloc(0x9999_0000, 8, 100);
        assert_eq!(t.len(), MAX_SITES);
        assert_eq!(t.evictions(), 1);
        assert!(t.get(0x1000).is_none());
        assert_eq!(t.get(0x9999_0000).unwrap().allocs, 1);
        for k in 1..MAX_SITES {
            assert_eq!(
                t.get(0x1000 + 16 * k).unwrap().allocs,
                k as u64 + 2,
                "site {k}"
            );
        }
        // The newcomer (1 allocation) is now the coldest and goes next.
        t.record_alloc(0x7777_0000, 8, 101);
        assert!(t.get(0x9999_0000).is_none());
        assert!(t.get(0x7777_0000).is_some());
    }

    #[test]
    fn churn_keeps_index_consistent() {
        // Many sites with colliding-ish addresses through a full table.
        let mut t = SiteTable::new();
        for i in 0..5000usize {
            let site = (i * 37 % 300) << 12;
            t.record_alloc(site, 16, i as u64);
            assert!(t.get(site).is_some());
            assert!(t.len() <= MAX_SITES);
        }
        let sites: Vec<usize> = t.iter().map(|p| p.site).collect();
        for &s in &sites {
            assert_eq!(t.get(s).unwrap().site, s);
        }
        let mut sorted = sites.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), sites.len());
        t.clear();
        assert!(t.is_empty() && t.get(sites[0]).is_none());
    }

    #[test]
    fn sampler_keeps_overhead_under_budget() {
        // Sampling everything costs 2 % (20,000 ppm); the budget is 1,000 ppm.
        let mut s = Sampler::new(0, 0, 20);
        let full_cost_ppm = 20_000u64;
        let budget = 1_000u64;
        let mut moves = Vec::new();
        for _ in 0..30 {
            let overhead = full_cost_ppm / s.period();
            moves.push(s.adjust(overhead, 1_000_000, budget));
        }
        // 20,000 / 2^5 = 625 <= 1,000 and 625 * 4 >= 1,000: it settles at 2^5 and stays.
        assert_eq!(s.shift(), 5);
        assert!(moves[10..].iter().all(|&m| m == 0));
        assert!(s.is_sampled(64) && !s.is_sampled(65));
        // Cheaper sampling later: the rate goes back up.
        for _ in 0..30 {
            let overhead = 100 / s.period();
            s.adjust(overhead, 1_000_000, budget);
        }
        assert_eq!(s.shift(), 0);
        assert_eq!(s.adjust(5, 0, budget), 0);
        assert_eq!(Sampler::new(40, 50, 60).shift(), 30);
    }
}
