//! The `HAKMEM_*` environment variables, read once on first use without allocating.
//!
//! | variable | default | accepted values and meaning |
//! |---|---|---|
//! | `HAKMEM_STRATEGY` | `default` | the fixed strategy (knob vector) to run: a name from `learn::strategy::DEFAULTS` |
//! | `HAKMEM_LEARN` | `off` | `elo` or `ucb1`: tune the knobs online with that selector (`tuning.rs`); an on spelling means `elo`, an off spelling `off` |
//! | `HAKMEM_MODE` | `balanced` | what learning optimises: `fast` (CPU), `balanced`, `lean` (memory) |
//! | `HAKMEM_PLAYBOOK` | unset | file the learned playbook is loaded from at start and saved to at exit (learning only: ignored with a warning when learning is off) |
//! | `HAKMEM_PURGE_DELAY_MS` | 50 | 0 to 86400000 (a day): how long freed memory keeps its pages before they go back to the OS |
//! | `HAKMEM_SS_WARM` | 32 | 0 to 65536: most empty SuperSlabs (2 MiB each) keeping their pages, whatever their age |
//! | `HAKMEM_SS_COLD` | 64 | 0 to 65536: further empty SuperSlabs kept as address space only (pages returned) |
//! | `HAKMEM_BIGCACHE_MB` | 64 | 0 to 1048576 (1 TiB): most MiB of freed large blocks BigCache keeps with their pages, or half the large blocks in use it could keep (up to 256 MiB each, aligned to a page at most) when that is more |
//! | `HAKMEM_DISABLE_BIGCACHE` | off | switch; on: every large free unmaps at once |
//! | `HAKMEM_THP` | on | switch; on: ask for transparent huge pages on large blocks of 2 to 4 MiB (`large.rs`; rounded up to whole huge pages when that wastes at most an eighth) and on SuperSlabs of mid classes of 64 KiB or more (`superslab.rs`); off: never |
//! | `HAKMEM_SAFE_FREE` | off | switch; on: full misuse checks on every allocation and free (see `check.rs`); slower |
//! | `HAKMEM_STATS` | off | switch, or `json`; on: print the report (`stats.rs`: memory, counters, size classes, the learner's state, call sites) at exit; `json`: as one line of JSON |
//! | `HAKMEM_STATS_FILE` | stderr | file the report is appended to; `%p` in it is replaced by the pid, `%%` by `%` |
//! | `HAKMEM_SITES` | off | switch; on: profile call sites (`sites.rs`); on anyway with stats |
//! | `HAKMEM_FAIL_MMAP_AFTER`, `HAKMEM_FAIL_MMAP_TIMES` | unset, 1 | 0 to 2^64-1; test hook: mappings N+1..N+M fail |
//!
//! A switch is `1`, `on`, `yes` or `true` for on, `0`, `off`, `no` or `false` for off; these and
//! the names are matched in any case. Numbers are decimal digits only (no sign, space, exponent
//! or suffix) within the range shown. An empty value counts as unset. A value not understood is
//! reported in one warning on stderr (the variable, the value, what is accepted, the default
//! used instead), and the default applies.
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
    /// `HAKMEM_SITES=1`: profile call sites even without stats.
    pub sites: bool,
    /// The stats file's path pattern (`%p`: the pid), NUL-terminated.
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

/// Largest `HAKMEM_PURGE_DELAY_MS`: a day (the delay is added to millisecond clock readings).
pub const MAX_PURGE_DELAY_MS: u64 = 86_400_000;
/// Largest `HAKMEM_SS_WARM` and `HAKMEM_SS_COLD`: 65536 SuperSlabs, 128 GiB.
pub const MAX_SUPERSLABS: u64 = 65_536;
/// Largest `HAKMEM_BIGCACHE_MB`: 1 TiB.
pub const MAX_BIGCACHE_MB: u64 = 1 << 20;

/// The spellings of a switch, for warnings.
const SWITCH: &[u8] = b"1/0, on/off, yes/no, true/false";

#[cold]
fn init() {
    if STATE
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
        .is_ok()
    {
        // SAFETY: we won the race; nobody reads CONFIG until STATE is 2.
        let c = unsafe { (*CONFIG.0.get()).write(DEFAULT) };
        if let Some(v) = value(b"HAKMEM_STRATEGY") {
            match parse_strategy(v) {
                Some(i) => c.strategy = i,
                None => {
                    // The names, comma-separated: 2 parts per name.
                    let names = &crate::learn::strategy::DEFAULTS;
                    let mut parts: [&[u8]; 2 * crate::learn::strategy::DEFAULT_COUNT] =
                        [b""; 2 * crate::learn::strategy::DEFAULT_COUNT];
                    for (i, (name, _)) in names.iter().enumerate() {
                        parts[2 * i] = if i == 0 { b"" } else { b", " };
                        parts[2 * i + 1] = name.as_bytes();
                    }
                    bad_value(b"HAKMEM_STRATEGY", v, &parts, b"default");
                }
            }
        }
        if let Some(v) = value(b"HAKMEM_LEARN") {
            c.learn = parse_learn(v).unwrap_or_else(|| {
                let accepted: &[u8] = b"elo, ucb1, 1/on/yes/true (elo), 0/off/no/false";
                bad_value(b"HAKMEM_LEARN", v, &[accepted], b"off");
                0
            });
        }
        if let Some(v) = value(b"HAKMEM_MODE") {
            c.mode = parse_mode(v).unwrap_or_else(|| {
                bad_value(b"HAKMEM_MODE", v, &[b"fast, balanced, lean"], b"balanced");
                1
            });
        }
        c.playbook = var_path(b"HAKMEM_PLAYBOOK");
        if c.playbook.is_some() && c.learn == 0 {
            warn(&[
                b"HAKMEM_PLAYBOOK is ignored because learning is off",
                b" (HAKMEM_LEARN is not elo or ucb1)",
            ]);
        }
        c.stats_file = var_path(b"HAKMEM_STATS_FILE");
        c.sites = switch(b"HAKMEM_SITES", false);
        let strategy = b"the fixed strategy's value";
        c.purge_delay_ms = number(b"HAKMEM_PURGE_DELAY_MS", MAX_PURGE_DELAY_MS, strategy);
        c.ss_warm_max = number(b"HAKMEM_SS_WARM", MAX_SUPERSLABS, strategy).map(|v| v as usize);
        if let Some(v) = number(b"HAKMEM_SS_COLD", MAX_SUPERSLABS, b"64") {
            c.ss_cold_max = v as usize;
        }
        c.bigcache_bytes =
            number(b"HAKMEM_BIGCACHE_MB", MAX_BIGCACHE_MB, strategy).map(|v| (v << 20) as usize);
        c.bigcache_enabled = !switch(b"HAKMEM_DISABLE_BIGCACHE", false);
        c.thp = switch(b"HAKMEM_THP", true);
        c.safe_free = switch(b"HAKMEM_SAFE_FREE", false);
        if let Some(v) = value(b"HAKMEM_STATS") {
            c.stats = parse_stats(v).unwrap_or_else(|| {
                bad_value(b"HAKMEM_STATS", v, &[SWITCH, b", json"], b"off");
                0
            });
        }
        c.fail_mmap_after = number(b"HAKMEM_FAIL_MMAP_AFTER", u64::MAX, b"unset");
        if let Some(v) = number(b"HAKMEM_FAIL_MMAP_TIMES", u64::MAX, b"1") {
            c.fail_mmap_times = v;
        }
        STATE.store(2, Ordering::Release);
    } else {
        while STATE.load(Ordering::Acquire) != 2 {
            core::hint::spin_loop();
        }
    }
}

/// Switch variable `name`: its value, or `default` (with a warning) when it is not understood.
fn switch(name: &[u8], default: bool) -> bool {
    let Some(v) = value(name) else {
        return default;
    };
    parse_switch(v).unwrap_or_else(|| {
        bad_value(name, v, &[SWITCH], if default { b"on" } else { b"off" });
        default
    })
}

/// Number variable `name`, from 0 to `max`; None (with a warning) when it is not understood.
/// `default` says what applies instead.
fn number(name: &[u8], max: u64, default: &[u8]) -> Option<u64> {
    let v = value(name)?;
    let n = parse_number(v, max);
    if n.is_none() {
        let mut digits = [0u8; 20];
        let max = crate::text::decimal(max, &mut digits);
        bad_value(name, v, &[b"decimal digits, 0 to ", max], default);
    }
    n
}

/// Warns, in one line: `NAME=value is not understood; accepted: ...; using the default: ...`.
/// The value is cut at 64 bytes.
fn bad_value(name: &[u8], value: &[u8], accepted: &[&[u8]], default: &[u8]) {
    let mut parts: [&[u8]; 32] = [b""; 32];
    let head: [&[u8]; 4] = [
        name,
        b"=",
        &value[..value.len().min(64)],
        b" is not understood; accepted: ",
    ];
    let tail: [&[u8]; 2] = [b"; using the default: ", default];
    let mut n = 0;
    for p in head.iter().chain(accepted).chain(tail.iter()) {
        if n < parts.len() {
            parts[n] = p;
            n += 1;
        }
    }
    warn(&parts[..n]);
}

/// A switch: `1`, `on`, `yes`, `true` or `0`, `off`, `no`, `false`, in any case.
pub fn parse_switch(s: &[u8]) -> Option<bool> {
    let is = |words: [&[u8]; 4]| words.iter().any(|w| s.eq_ignore_ascii_case(w));
    if is([b"1", b"on", b"yes", b"true"]) {
        Some(true)
    } else if is([b"0", b"off", b"no", b"false"]) {
        Some(false)
    } else {
        None
    }
}

/// A decimal number from 0 to `max`: digits only (no sign, space, exponent or suffix), and no
/// overflow.
pub fn parse_number(s: &[u8], max: u64) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &d in s {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    (v <= max).then_some(v)
}

/// `HAKMEM_STRATEGY`: the index of the strategy of that name in `learn::strategy::DEFAULTS`.
pub fn parse_strategy(s: &[u8]) -> Option<usize> {
    crate::learn::strategy::DEFAULTS
        .iter()
        .position(|(n, _)| s.eq_ignore_ascii_case(n.as_bytes()))
}

/// `HAKMEM_LEARN`: 0 off, 1 ELO, 2 UCB1; a switch's on spellings mean ELO.
pub fn parse_learn(s: &[u8]) -> Option<u8> {
    if s.eq_ignore_ascii_case(b"elo") {
        Some(1)
    } else if s.eq_ignore_ascii_case(b"ucb1") {
        Some(2)
    } else {
        parse_switch(s).map(|on| on as u8)
    }
}

/// `HAKMEM_MODE`: 0 fast, 1 balanced, 2 lean.
pub fn parse_mode(s: &[u8]) -> Option<u8> {
    [&b"fast"[..], b"balanced", b"lean"]
        .iter()
        .position(|m| s.eq_ignore_ascii_case(m))
        .map(|i| i as u8)
}

/// `HAKMEM_STATS`: 0 off, 1 text, 2 JSON.
pub fn parse_stats(s: &[u8]) -> Option<u8> {
    if s.eq_ignore_ascii_case(b"json") {
        Some(2)
    } else {
        parse_switch(s).map(|on| on as u8)
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

/// The value of environment variable `name`, if set and not empty.
fn value(name: &[u8]) -> Option<&'static [u8]> {
    var(name).filter(|v| !v.is_empty())
}

/// Writes `hakmem: `, the parts and a newline to stderr (`stats::stderr_fd`: the copy kept for
/// the report, if stderr was closed since) as one line, in one system call, without allocating.
/// At most 30 parts are written.
pub fn warn(parts: &[&[u8]]) {
    let iovec = |s: &[u8]| libc::iovec {
        iov_base: s.as_ptr() as *mut libc::c_void,
        iov_len: s.len(),
    };
    let mut iov = [iovec(b""); 32];
    iov[0] = iovec(b"hakmem: ");
    let mut n = 1;
    for p in parts.iter().take(iov.len() - 2) {
        iov[n] = iovec(p);
        n += 1;
    }
    iov[n] = iovec(b"\n");
    n += 1;
    let fd = crate::stats::stderr_fd();
    if fd >= 0 {
        // SAFETY: every iovec points at a live byte slice of its length; writev only reads them.
        unsafe { libc::writev(fd, iov.as_ptr(), n as libc::c_int) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_strictly_within_their_range() {
        assert_eq!(parse_number(b"0", 10), Some(0));
        assert_eq!(parse_number(b"123", 1000), Some(123));
        assert_eq!(parse_number(b"007", 10), Some(7));
        assert_eq!(parse_number(b"1048576", MAX_BIGCACHE_MB), Some(1 << 20));
        assert_eq!(parse_number(b"1048577", MAX_BIGCACHE_MB), None);
        assert_eq!(parse_number(b"99999999999999999", MAX_BIGCACHE_MB), None);
        assert_eq!(
            parse_number(b"18446744073709551615", u64::MAX),
            Some(u64::MAX)
        );
        assert_eq!(parse_number(b"18446744073709551616", u64::MAX), None);
        assert_eq!(parse_number(b"99999999999999999999999", u64::MAX), None);
        for bad in [
            &b""[..],
            b"12a",
            b"-5",
            b"+5",
            b"1e3",
            b" 5",
            b"5 ",
            b"0x10",
            b"1.5",
            b"abc",
        ] {
            assert_eq!(parse_number(bad, u64::MAX), None, "{:?}", bad);
        }
    }

    #[test]
    fn switches_take_the_usual_spellings_in_any_case() {
        for on in [&b"1"[..], b"on", b"ON", b"yes", b"Yes", b"true", b"TRUE"] {
            assert_eq!(parse_switch(on), Some(true), "{:?}", on);
        }
        for off in [&b"0"[..], b"off", b"Off", b"no", b"NO", b"false", b"False"] {
            assert_eq!(parse_switch(off), Some(false), "{:?}", off);
        }
        for bad in [&b""[..], b"2", b"y", b"n", b"enable", b"onn", b" on", b"01"] {
            assert_eq!(parse_switch(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn named_values() {
        assert_eq!(parse_learn(b"elo"), Some(1));
        assert_eq!(parse_learn(b"UCB1"), Some(2));
        assert_eq!(parse_learn(b"yes"), Some(1));
        for off in [&b"off"[..], b"0", b"no", b"false"] {
            assert_eq!(parse_learn(off), Some(0));
        }
        assert_eq!(parse_learn(b"maybe"), None);
        assert_eq!(parse_mode(b"fast"), Some(0));
        assert_eq!(parse_mode(b"Balanced"), Some(1));
        assert_eq!(parse_mode(b"lean"), Some(2));
        assert_eq!(parse_mode(b"slow"), None);
        assert_eq!(parse_stats(b"json"), Some(2));
        assert_eq!(parse_stats(b"yes"), Some(1));
        assert_eq!(parse_stats(b"off"), Some(0));
        assert_eq!(parse_stats(b"xml"), None);
        assert_eq!(parse_strategy(b"default"), Some(0));
        assert_eq!(parse_strategy(b"lean"), Some(3));
        assert_eq!(parse_strategy(b"no-such-strategy"), None);
    }

    #[test]
    fn reads_the_environment() {
        assert!(var(b"PATH").is_some());
        assert!(var(b"HAKMEM_SURELY_UNSET_VARIABLE").is_none());
    }
}
