//! The allocator-side learning API the `learn` suite reads: `hakmem::tuning::{status, finish}`, in
//! one place (it stood in for that API while it was being wired in), plus a short description of an
//! evolved strategy.

use hakmem::strategy::Strategy;
pub use hakmem::tuning::{finish, status};

/// A strategy's knobs in a few words, for one that is not a named candidate.
pub fn describe(s: &Strategy) -> String {
    let b = |v: u64| {
        if v >= 1 << 20 {
            format!("{}M", v >> 20)
        } else if v >= 1 << 10 {
            format!("{}K", v >> 10)
        } else {
            v.to_string()
        }
    };
    format!(
        "evolved(thr {} bc {} batch {} purge {}ms cap x{} refill {} warm {})",
        b(s.large_threshold),
        b(s.bigcache_bytes),
        b(s.madvise_batch),
        s.purge_delay_ms,
        s.cache_cap_mult,
        b(s.refill_bytes),
        s.warm_superslabs
    )
}
