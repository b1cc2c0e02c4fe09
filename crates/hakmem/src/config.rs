//! The `HAKMEM_*` environment variables, read once on first use without allocating.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HAKMEM_PURGE_DELAY_MS` | 50 | how long freed memory keeps its pages before they go back to the OS |
//! | `HAKMEM_SS_WARM` | 32 | most empty SuperSlabs (2 MiB each) keeping their pages, whatever their age |
//! | `HAKMEM_SS_COLD` | 64 | further empty SuperSlabs kept as address space only (pages returned) |
//! | `HAKMEM_BIGCACHE_MB` | 64 | most MiB of freed large blocks BigCache keeps with their pages |
//! | `HAKMEM_DISABLE_BIGCACHE` | 0 | 1: every large free unmaps at once |
//! | `HAKMEM_THP` | 1 | 1: ask for transparent huge pages on large blocks of 2 MiB or more; 0: never |
//! | `HAKMEM_SAFE_FREE` | 0 | 1: full misuse checks on every allocation and free (see `check.rs`); slower |
//! | `HAKMEM_STATS` | unset | `1`: print the counters (`stats.rs`) to stderr at exit; `json`: as JSON |
//! | `HAKMEM_FAIL_MMAP_AFTER`, `HAKMEM_FAIL_MMAP_TIMES` | unset, 1 | test hook: mappings N+1..N+M fail |

use core::cell::UnsafeCell;
use core::ffi::c_char;
use core::sync::atomic::{AtomicU8, Ordering};

pub struct Config {
    pub purge_delay_ms: u64,
    pub ss_warm_max: usize,
    pub ss_cold_max: usize,
    pub bigcache_bytes: usize,
    pub bigcache_enabled: bool,
    pub safe_free: bool,
    pub thp: bool,
    /// 0: off, 1: text, 2: JSON.
    pub stats: u8,
    pub fail_mmap_after: Option<u64>,
    pub fail_mmap_times: u64,
}

const DEFAULT: Config = Config {
    purge_delay_ms: 50,
    ss_warm_max: 32,
    ss_cold_max: 64,
    bigcache_bytes: 64 << 20,
    bigcache_enabled: true,
    safe_free: false,
    thp: true,
    stats: 0,
    fail_mmap_after: None,
    fail_mmap_times: 1,
};

struct Cell(UnsafeCell<Config>);
// SAFETY: written once by the thread that wins STATE 0 -> 1, read only after STATE is 2.
unsafe impl Sync for Cell {}

static CONFIG: Cell = Cell(UnsafeCell::new(DEFAULT));
static STATE: AtomicU8 = AtomicU8::new(0);

extern "C" {
    static environ: *const *const c_char;
}

/// The configuration, read from the environment on the first call.
#[inline]
pub fn get() -> &'static Config {
    if STATE.load(Ordering::Acquire) != 2 {
        init();
    }
    // SAFETY: STATE is 2, so CONFIG is written and never changes again.
    unsafe { &*CONFIG.0.get() }
}

#[cold]
fn init() {
    if STATE
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
        .is_ok()
    {
        // SAFETY: we won the race; nobody reads CONFIG until STATE is 2.
        let c = unsafe { &mut *CONFIG.0.get() };
        if let Some(v) = var_number(b"HAKMEM_PURGE_DELAY_MS") {
            c.purge_delay_ms = v as u64;
        }
        if let Some(v) = var_number(b"HAKMEM_SS_WARM") {
            c.ss_warm_max = v;
        }
        if let Some(v) = var_number(b"HAKMEM_SS_COLD") {
            c.ss_cold_max = v;
        }
        if let Some(v) = var_number(b"HAKMEM_BIGCACHE_MB") {
            c.bigcache_bytes = v.saturating_mul(1 << 20);
        }
        if var_number(b"HAKMEM_DISABLE_BIGCACHE") == Some(1) {
            c.bigcache_enabled = false;
        }
        if let Some(v) = var_number(b"HAKMEM_THP") {
            c.thp = v != 0;
        }
        if var_number(b"HAKMEM_SAFE_FREE") == Some(1) {
            c.safe_free = true;
        }
        c.stats = match var(b"HAKMEM_STATS") {
            Some(b"1") => 1,
            Some(b"json") => 2,
            _ => 0,
        };
        c.fail_mmap_after = var_number(b"HAKMEM_FAIL_MMAP_AFTER").map(|v| v as u64);
        if let Some(v) = var_number(b"HAKMEM_FAIL_MMAP_TIMES") {
            c.fail_mmap_times = v as u64;
        }
        STATE.store(2, Ordering::Release);
    } else {
        while STATE.load(Ordering::Acquire) != 2 {
            core::hint::spin_loop();
        }
    }
}

/// The value of environment variable `name`, if set (without allocating).
pub fn var(name: &[u8]) -> Option<&'static [u8]> {
    // SAFETY: environ is a null-terminated array of NUL-terminated strings owned by libc.
    unsafe {
        let mut e = environ;
        if e.is_null() {
            return None;
        }
        while !(*e).is_null() {
            let s = core::ffi::CStr::from_ptr(*e).to_bytes();
            if s.len() > name.len() && s.starts_with(name) && s[name.len()] == b'=' {
                return Some(&s[name.len() + 1..]);
            }
            e = e.add(1);
        }
    }
    None
}

/// A decimal number from environment variable `name`; None if unset or not a number.
pub fn var_number(name: &[u8]) -> Option<usize> {
    parse_number(var(name)?)
}

fn parse_number(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 18 {
        return None;
    }
    let mut v = 0usize;
    for &d in s {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (d - b'0') as usize;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_strictly() {
        assert_eq!(parse_number(b"0"), Some(0));
        assert_eq!(parse_number(b"123"), Some(123));
        assert_eq!(parse_number(b""), None);
        assert_eq!(parse_number(b"12a"), None);
        assert_eq!(parse_number(b"-1"), None);
    }

    #[test]
    fn reads_the_environment() {
        assert!(var(b"PATH").is_some());
        assert!(var(b"HAKMEM_SURELY_UNSET_VARIABLE").is_none());
    }
}
