//! The `HAKMEM_*` environment variables, read once on first use without allocating.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HAKMEM_STRATEGY` | `default` | the fixed strategy (knob vector) to run: a name from `learn::strategy::DEFAULTS` |
//! | `HAKMEM_LEARN` | `off` | `elo` or `ucb1`: tune the knobs online with that selector (`tuning.rs`) |
//! | `HAKMEM_MODE` | `balanced` | what learning optimises: `fast` (CPU), `balanced`, `lean` (memory) |
//! | `HAKMEM_PLAYBOOK` | unset | file the learned playbook is loaded from at start and saved to at exit |
//! | `HAKMEM_PURGE_DELAY_MS` | 50 | how long freed memory keeps its pages before they go back to the OS |
//! | `HAKMEM_SS_WARM` | 32 | most empty SuperSlabs (2 MiB each) keeping their pages, whatever their age |
//! | `HAKMEM_SS_COLD` | 64 | further empty SuperSlabs kept as address space only (pages returned) |
//! | `HAKMEM_BIGCACHE_MB` | 64 | most MiB of freed large blocks BigCache keeps with their pages |
//! | `HAKMEM_DISABLE_BIGCACHE` | 0 | 1: every large free unmaps at once |
//! | `HAKMEM_THP` | 1 | 1: ask for transparent huge pages on large blocks of 2 MiB or more (`large.rs`: rounded up to whole huge pages when that wastes at most an eighth) and on SuperSlabs of mid classes of 64 KiB or more (`superslab.rs`); 0: never |
//! | `HAKMEM_SAFE_FREE` | 0 | 1: full misuse checks on every allocation and free (see `check.rs`); slower |
//! | `HAKMEM_STATS` | unset | `1`: print the counters (`stats.rs`) and the learner's state to stderr at exit; `json`: as JSON |
//! | `HAKMEM_STATS_FILE` | stderr | where `HAKMEM_STATS` output goes |
//! | `HAKMEM_SITES` | 0 | 1: profile call sites (`sites.rs`); on anyway with learning or stats |
//! | `HAKMEM_FAIL_MMAP_AFTER`, `HAKMEM_FAIL_MMAP_TIMES` | unset, 1 | test hook: mappings N+1..N+M fail |
//!
//! The purge delay, warm SuperSlabs and BigCache size are knobs of the strategy (`knobs.rs`): their
//! variables override the fixed strategy's values, and are ignored while learning.

use core::cell::UnsafeCell;
use core::ffi::c_char;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};

pub struct Config {
    /// Index in `learn::strategy::DEFAULTS` of the fixed strategy.
    pub strategy: usize,
    /// 0: off, 1: ELO, 2: UCB1.
    pub learn: u8,
    /// 0: fast, 1: balanced, 2: lean.
    pub mode: u8,
    /// The playbook file's path, NUL-terminated.
    pub playbook: Option<&'static [u8]>,
    /// `HAKMEM_SITES=1`: profile call sites even without learning or stats.
    pub sites: bool,
    /// The stats file's path, NUL-terminated.
    pub stats_file: Option<&'static [u8]>,
    pub purge_delay_ms: Option<u64>,
    pub ss_warm_max: Option<usize>,
    pub ss_cold_max: usize,
    pub bigcache_bytes: Option<usize>,
    pub bigcache_enabled: bool,
    pub safe_free: bool,
    pub thp: bool,
    /// 0: off, 1: text, 2: JSON.
    pub stats: u8,
    pub fail_mmap_after: Option<u64>,
    pub fail_mmap_times: u64,
}

const DEFAULT: Config = Config {
    strategy: 0,
    learn: 0,
    mode: 1,
    playbook: None,
    sites: false,
    stats_file: None,
    purge_delay_ms: None,
    ss_warm_max: None,
    ss_cold_max: 64,
    bigcache_bytes: None,
    bigcache_enabled: true,
    safe_free: false,
    thp: true,
    stats: 0,
    fail_mmap_after: None,
    fail_mmap_times: 1,
};

/// Uninitialised until `init`, so that it sits in `.bss` beside the allocator's other statics
/// (pages the first allocation touches anyway) rather than alone on a `.data` page whose first
/// write would cost a page fault of its own.
struct Cell(UnsafeCell<MaybeUninit<Config>>);
// SAFETY: written once by the thread that wins STATE 0 -> 1, read only after STATE is 2.
unsafe impl Sync for Cell {}

static CONFIG: Cell = Cell(UnsafeCell::new(MaybeUninit::uninit()));
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
    unsafe { (*CONFIG.0.get()).assume_init_ref() }
}

#[cold]
fn init() {
    if STATE
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
        .is_ok()
    {
        // SAFETY: we won the race; nobody reads CONFIG until STATE is 2.
        let c = unsafe { (*CONFIG.0.get()).write(DEFAULT) };
        if let Some(name) = var(b"HAKMEM_STRATEGY") {
            match crate::learn::strategy::DEFAULTS
                .iter()
                .position(|(n, _)| n.as_bytes() == name)
            {
                Some(i) => c.strategy = i,
                None => warn(b"HAKMEM_STRATEGY names no strategy; running `default`"),
            }
        }
        c.learn = match var(b"HAKMEM_LEARN") {
            None | Some(b"off") | Some(b"0") => 0,
            Some(b"elo") | Some(b"1") => 1,
            Some(b"ucb1") => 2,
            Some(_) => {
                warn(b"HAKMEM_LEARN is not off, elo or ucb1; learning stays off");
                0
            }
        };
        c.mode = match var(b"HAKMEM_MODE") {
            Some(b"fast") => 0,
            None | Some(b"balanced") => 1,
            Some(b"lean") => 2,
            Some(_) => {
                warn(b"HAKMEM_MODE is not fast, balanced or lean; using balanced");
                1
            }
        };
        c.playbook = var_path(b"HAKMEM_PLAYBOOK");
        c.stats_file = var_path(b"HAKMEM_STATS_FILE");
        c.sites = var_number(b"HAKMEM_SITES") == Some(1);
        c.purge_delay_ms = var_number(b"HAKMEM_PURGE_DELAY_MS").map(|v| v as u64);
        c.ss_warm_max = var_number(b"HAKMEM_SS_WARM");
        if let Some(v) = var_number(b"HAKMEM_SS_COLD") {
            c.ss_cold_max = v;
        }
        c.bigcache_bytes = var_number(b"HAKMEM_BIGCACHE_MB").map(|v| v.saturating_mul(1 << 20));
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

/// The value of environment variable `name` with its terminating NUL, if set and not empty.
fn var_path(name: &[u8]) -> Option<&'static [u8]> {
    let v = var(name)?;
    if v.is_empty() {
        return None;
    }
    // SAFETY: the value lives in environ and is followed by its NUL terminator.
    Some(unsafe { core::slice::from_raw_parts(v.as_ptr(), v.len() + 1) })
}

/// Writes `hakmem: <msg>` to stderr (no allocation).
pub fn warn(msg: &[u8]) {
    // SAFETY: plain writes of our own buffers.
    unsafe {
        libc::write(2, b"hakmem: ".as_ptr() as *const libc::c_void, 8);
        libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len());
        libc::write(2, b"\n".as_ptr() as *const libc::c_void, 1);
    }
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
