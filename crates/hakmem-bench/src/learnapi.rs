//! The allocator-side learning API the `learn` suite reads (`hakmem::tuning`), behind one small
//! module so the suite builds while that API is being wired in on `main`.
//!
//! Until `hakmem::tuning` exists this is a stand-in that only reports what the environment asked
//! for (no epochs); once it lands, the body becomes `pub use hakmem::tuning::{finish, status};`.

use hakmem::learn::strategy::{default_name, DEFAULTS};
use hakmem::learn::Strategy;

/// What `hakmem::tuning::status()` returns (the fields the suite uses).
#[derive(Clone, Copy, Debug)]
pub struct Status {
    pub learning: bool,
    pub epochs: u64,
    pub phase: &'static str,
    pub current: Strategy,
    pub name: Option<&'static str>,
}

/// Stand-in for `hakmem::tuning::status()`.
pub fn status() -> Status {
    let learning = matches!(
        std::env::var("HAKMEM_LEARN").as_deref(),
        Ok("elo") | Ok("ucb1")
    );
    let want = std::env::var("HAKMEM_STRATEGY").unwrap_or_else(|_| "default".into());
    let current = DEFAULTS
        .iter()
        .find(|(n, _)| *n == want)
        .or_else(|| DEFAULTS.iter().find(|(n, _)| *n == "default"))
        .unwrap_or(&DEFAULTS[0])
        .1;
    Status {
        learning,
        epochs: 0,
        phase: if learning { "learn" } else { "off" },
        current,
        name: default_name(&current),
    }
}

/// Stand-in for `hakmem::tuning::finish()` (saves the playbook).
pub fn finish() {}

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
        s.refill_batch,
        s.warm_superslabs
    )
}
