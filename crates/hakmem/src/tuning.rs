//! Online tuning: the epoch driver between the allocator's slow paths and the learner (`learn/`).
//!
//! With `HAKMEM_LEARN` off (the default) this only applies the fixed strategy at start-up
//! (`HAKMEM_STRATEGY`, else `default`, plus the knob variables of `config.rs`). With it on:
//! - every 8th slow call of a heap (refill, flush) and every 8th large allocation or free is
//!   timed in TSC ticks and charged 8 times (`Timer`), and its request size goes into the epoch's
//!   size sketch (`tick`, under a try-lock: a busy lock just skips the sample);
//! - when `EPOCH_MS` have passed (`PROBE_MS` for the first epoch of a strategy never run yet),
//!   the thread that holds the lock ends the epoch: it reads the
//!   process's CPU time and minor faults (getrusage) and resident size (/proc/self/statm), hands
//!   the learner the epoch's `Measurements`, and stores the strategy it returns in `knobs`.
//!
//! What an epoch measures, all as deltas over the epoch: slow-path time (ticks converted to ns
//! with the epoch's own TSC/clock ratio), minor faults, and resident bytes; "per operation" means
//! per microsecond of process CPU time, since the fast paths count nothing. Live bytes are not
//! tracked (that would cost the fast path), so the memory term is resident bytes against the
//! 1 MiB floor: the scorer compares it with its running baseline, which is what ranks strategies.
//! The fast paths never look at any of this; the slow paths read one relaxed flag when off.

use crate::learn::reuse::{self, Reuse};
use crate::learn::sketch::SizeSketch;
use crate::learn::{Learner, Measurements, Mode, Phase, Selector, Strategy};
use crate::lock::Lock;
use crate::text::Text;
use crate::{config, knobs, os};
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Wall time of one epoch.
pub const EPOCH_MS: u64 = 10;
/// Wall time of a probe: the first epoch of a strategy that has not run yet (it may be
/// catastrophic for this workload, and a probe is enough to tell).
pub const PROBE_MS: u64 = 3;
/// One slow event in this many is timed and sampled (a power of two).
pub const SAMPLE_PERIOD: u64 = 8;

struct State {
    learner: MaybeUninit<Learner>,
    sizes: SizeSketch,
    last: Sample,
    slow_ticks_seen: u64,
    next_epoch_ms: u64,
    finished: bool,
}

struct Global {
    lock: Lock,
    /// Whether learning is on. Here, in `.data` with the learner's state, rather than a `.bss`
    /// flag of its own: it is read on slow paths from the first allocation on and written only
    /// when learning starts, and the first read of a `.bss` page nothing wrote maps the zero page
    /// (a fault), where `.data` pages are mapped with their neighbours.
    learning: AtomicBool,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is only touched with `lock` held, and `learner` only once `learning` is set.
unsafe impl Sync for Global {}

static GLOBAL: Global = Global {
    lock: Lock::new(),
    learning: AtomicBool::new(false),
    state: UnsafeCell::new(State {
        learner: MaybeUninit::uninit(),
        sizes: SizeSketch::new(),
        last: Sample::ZERO,
        slow_ticks_seen: 0,
        next_epoch_ms: 0,
        finished: false,
    }),
};

static SLOW_TICKS: AtomicU64 = AtomicU64::new(0);
static LARGE_OPS: AtomicU32 = AtomicU32::new(0);
/// The epoch's warm reuses in pages, by [age bucket][depth bucket] (`learn::reuse`).
static REUSE_BIG: [[AtomicU64; 7]; 7] = [const { [const { AtomicU64::new(0) }; 7] }; 7];
static REUSE_SUPERSLAB: [[AtomicU64; 7]; 7] = [const { [const { AtomicU64::new(0) }; 7] }; 7];
static REUSE_COLD_BIG: [[AtomicU64; 7]; 7] = [const { [const { AtomicU64::new(0) }; 7] }; 7];
static REUSE_COLD_FROM_LAST_EPOCH: AtomicU64 = AtomicU64::new(0);
/// Epochs ended so far (wraps): which epoch a BigCache purge happened in.
static EPOCH: AtomicU32 = AtomicU32::new(0);

/// The learner's current epoch number (wrapping; 0 while learning is off).
#[inline]
pub fn epoch() -> u32 {
    EPOCH.load(Ordering::Relaxed)
}

/// Whether learning is on.
#[inline]
pub fn learning() -> bool {
    GLOBAL.learning.load(Ordering::Relaxed)
}

/// Applies the starting strategy and, with learning on, sets up the learner (loading the
/// playbook file if there is one); registers what runs at exit. Called once, from
/// `init::ensure_init`.
pub fn init() {
    let cfg = config::get();
    register_exit_hook(cfg);
    if cfg.learn == 0 {
        let mut s = crate::learn::strategy::DEFAULTS[cfg.strategy].1;
        if let Some(v) = cfg.purge_delay_ms {
            s.purge_delay_ms = v;
        }
        if let Some(v) = cfg.ss_warm_max {
            s.warm_superslabs = v as u64;
        }
        if let Some(v) = cfg.bigcache_bytes {
            s.bigcache_bytes = v as u64;
        }
        knobs::apply(&s);
        return;
    }
    let mode = match cfg.mode {
        0 => Mode::Fast,
        2 => Mode::Lean,
        _ => Mode::Balanced,
    };
    let selector = if cfg.learn == 2 {
        Selector::Ucb1
    } else {
        Selector::Elo
    };
    let seed = Sample::now().wall_ns ^ (unsafe { libc::getpid() } as u64).rotate_left(32);
    GLOBAL.lock.lock();
    // SAFETY: the lock is held; `learning` is not set yet, so nobody else reads the learner.
    let st = unsafe { &mut *GLOBAL.state.get() };
    let learner = st.learner.write(Learner::new(mode, selector, seed));
    if let Some(path) = cfg.playbook {
        match learner.load(path) {
            Ok(()) => {}
            Err(crate::learn::FileError::Io(libc::ENOENT)) => {}
            Err(e) => warn_playbook(b"cannot use", path, e, b"; starting cold"),
        }
    }
    knobs::apply(learner.current());
    st.last = Sample::now();
    st.next_epoch_ms = os::monotonic_ns() / 1_000_000 + EPOCH_MS;
    GLOBAL.learning.store(true, Ordering::Release);
    GLOBAL.lock.unlock();
}

/// Times one slow event when it is sampled and learning is on.
pub struct Timer(u64);

impl Timer {
    /// Starts timing if `sampled` (one event in `SAMPLE_PERIOD`) and learning is on.
    #[inline]
    pub fn start(sampled: bool) -> Timer {
        if sampled && learning() {
            Timer(ticks().max(1))
        } else {
            Timer(0)
        }
    }

    /// Starts timing every `SAMPLE_PERIOD`-th large allocation or free.
    #[inline]
    pub fn start_large() -> Timer {
        if !learning() {
            return Timer(0);
        }
        // A racy count is fine: it only spaces the samples out.
        let n = LARGE_OPS.load(Ordering::Relaxed);
        LARGE_OPS.store(n.wrapping_add(1), Ordering::Relaxed);
        Timer::start((n as u64).is_multiple_of(SAMPLE_PERIOD))
    }

    /// Charges the event (scaled by the sampling period) and samples its size.
    #[inline]
    pub fn stop(self, size: usize) {
        if self.0 != 0 {
            let t = ticks().saturating_sub(self.0);
            SLOW_TICKS.fetch_add(t * SAMPLE_PERIOD, Ordering::Relaxed);
            tick(size);
        }
    }
}

/// Records that BigCache handed out a block of `bytes` (learning only: the caller checks
/// `learning()`), warm or purged (`purge`: the epoch of its purge and the page faults touching it
/// again costs, `large::refaults`), that waited `age_ms`, with `depth` warm bytes newer than it or
/// in it. (An epoch ending on another thread meanwhile may count a reuse in the wrong epoch: a
/// window of microseconds per 10 ms epoch.)
pub fn record_big_reuse(age_ms: u64, depth: u64, bytes: usize, purge: Option<(u32, u64)>) {
    let a = reuse::age_bucket(age_ms);
    let d = reuse::depth_bucket(depth, &reuse::BIG_DEPTH);
    let pages = bytes as u64 / reuse::PAGE;
    let table = if purge.is_some() {
        &REUSE_COLD_BIG
    } else {
        &REUSE_BIG
    };
    table[a][d].fetch_add(pages, Ordering::Relaxed);
    if let Some((e, faults)) = purge {
        if epoch().wrapping_sub(e) == 1 {
            REUSE_COLD_FROM_LAST_EPOCH.fetch_add(faults, Ordering::Relaxed);
        }
    }
}

/// Records that an empty SuperSlab of `bytes` was taken again with its pages (learning only),
/// after `age_ms`, `depth` empty SuperSlabs deep (1: the most recently emptied).
pub fn record_superslab_reuse(age_ms: u64, depth: u64, bytes: usize) {
    let a = reuse::age_bucket(age_ms);
    let d = reuse::depth_bucket(depth, &reuse::SS_DEPTH);
    REUSE_SUPERSLAB[a][d].fetch_add(bytes as u64 / reuse::PAGE, Ordering::Relaxed);
}

/// The reuses since the last call, which ends an epoch.
fn take_reuse() -> Reuse {
    // Purges from now on belong to the next epoch.
    EPOCH.fetch_add(1, Ordering::Relaxed);
    let mut r = Reuse::ZERO;
    for a in 0..7 {
        for d in 0..7 {
            r.big[a][d] = REUSE_BIG[a][d].swap(0, Ordering::Relaxed);
            r.superslab[a][d] = REUSE_SUPERSLAB[a][d].swap(0, Ordering::Relaxed);
            r.cold_big[a][d] = REUSE_COLD_BIG[a][d].swap(0, Ordering::Relaxed);
        }
    }
    r.cold_from_last_epoch = REUSE_COLD_FROM_LAST_EPOCH.swap(0, Ordering::Relaxed);
    (r.held_big, r.held_cold_big) = crate::bigcache::held();
    r
}

/// Samples `size` and ends the epoch if it is due. Never waits for the lock.
#[cold]
fn tick(size: usize) {
    if !GLOBAL.lock.try_lock() {
        return;
    }
    // SAFETY: the lock is held.
    let st = unsafe { &mut *GLOBAL.state.get() };
    st.sizes.record(size as u64);
    let now = os::monotonic_ns() / 1_000_000;
    if now >= st.next_epoch_ms && !st.finished {
        end_epoch(st, now);
    }
    GLOBAL.lock.unlock();
}

fn end_epoch(st: &mut State, now_ms: u64) {
    let s = Sample::now();
    let slow = SLOW_TICKS.load(Ordering::Relaxed);
    let d_ticks = slow - st.slow_ticks_seen;
    let d_wall = s.wall_ns.saturating_sub(st.last.wall_ns).max(1);
    let d_tsc = s.tsc.saturating_sub(st.last.tsc).max(1);
    let m = Measurements {
        slow_path_ns: (d_ticks as u128 * d_wall as u128 / d_tsc as u128) as u64,
        minor_faults: s.minor_faults.saturating_sub(st.last.minor_faults),
        live_bytes: 0,
        mapped_bytes: s.resident_bytes,
        ops: s.cpu_us.saturating_sub(st.last.cpu_us).max(1),
        elapsed_ns: d_wall,
        size_p50: st.sizes.p50().unwrap_or(0),
        size_p95: st.sizes.p95().unwrap_or(0),
        reuse: take_reuse(),
    };
    // SAFETY: `learning` is set, so the learner is initialised; the lock is held.
    let learner = unsafe { st.learner.assume_init_mut() };
    knobs::apply(learner.on_epoch_end(&m));
    st.sizes.clear();
    st.last = s;
    st.slow_ticks_seen = slow;
    st.next_epoch_ms = now_ms
        + if learner.probing() {
            PROBE_MS
        } else {
            EPOCH_MS
        };
}

/// At start-up, when there is something to do at exit (a playbook to save, a report to print):
/// registers `at_exit` with atexit, for every program (a Rust one with `#[global_allocator]` has
/// no destructor of libhakmem.so), and keeps a copy of stderr for the report.
fn register_exit_hook(cfg: &config::Config) {
    if cfg.stats != 0 {
        crate::stats::keep_stderr();
    }
    if cfg.stats != 0 || (cfg.learn != 0 && cfg.playbook.is_some()) {
        extern "C" fn hook() {
            at_exit();
        }
        // SAFETY: registers a plain function; atexit may allocate, which re-enters the allocator
        // safely (`init::ensure_init` lets the initialising thread through).
        unsafe { libc::atexit(hook) };
    }
}

/// What runs at exit, once: saves the playbook (`finish`), then prints the report if
/// `HAKMEM_STATS` asks for it. The atexit handler calls it, and so does libhakmem.so's destructor
/// (which runs later, after every atexit handler): whichever comes first does the work.
pub fn at_exit() {
    static DONE: AtomicBool = AtomicBool::new(false);
    if !DONE.swap(true, Ordering::AcqRel) {
        finish();
        crate::stats::print_if_asked();
    }
}

/// Ends learning for this process: saves the playbook to `HAKMEM_PLAYBOOK` (if set) and stops
/// the epochs. Safe to call more than once; the preload calls it at exit.
pub fn finish() {
    if learning() {
        finish_learning();
    }
}

/// Out of line, so that a process not learning does not probe (fault in) its large stack frame.
#[cold]
#[inline(never)]
fn finish_learning() {
    GLOBAL.lock.lock();
    // SAFETY: the lock is held; `learning` is set, so the learner is initialised.
    let st = unsafe { &mut *GLOBAL.state.get() };
    if !st.finished {
        st.finished = true;
        if let Some(path) = config::get().playbook {
            // SAFETY: as above.
            let learner = unsafe { st.learner.assume_init_ref() };
            if let Err(e) = learner.save(path) {
                warn_playbook(b"cannot write", path, e, b"; not saved");
            }
        }
    }
    GLOBAL.lock.unlock();
}

/// Warns `<what> HAKMEM_PLAYBOOK file <path>: <reason><consequence>` (`path` NUL-terminated).
fn warn_playbook(what: &[u8], path: &[u8], e: crate::learn::FileError, consequence: &[u8]) {
    let mut digits = [0u8; 20];
    let errno: [&[u8]; 3] = match e {
        crate::learn::FileError::Io(n) => [
            b" (errno ",
            crate::text::decimal(n as u64, &mut digits),
            b")",
        ],
        _ => [b""; 3],
    };
    let path = &path[..path.len() - 1];
    let reason = e.reason().as_bytes();
    config::warn(&[
        what,
        b" HAKMEM_PLAYBOOK file ",
        path,
        b": ",
        reason,
        errno[0],
        errno[1],
        errno[2],
        consequence,
    ]);
}

/// One playbook evolution step now (`hak_evolve_playbook`): (strategies retired, challenger
/// added), or None when learning is off.
pub fn evolve_playbook() -> Option<(u32, bool)> {
    if !learning() {
        return None;
    }
    GLOBAL.lock.lock();
    // SAFETY: the lock is held; `learning` is set, so the learner is initialised.
    let l = unsafe { (*GLOBAL.state.get()).learner.assume_init_mut() };
    let ev = l.evolve();
    GLOBAL.lock.unlock();
    Some((ev.retired, ev.added.is_some()))
}

/// What the tuner is doing, for programs and the benchmark.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Status {
    pub learning: bool,
    /// Epochs ended in this process.
    pub epochs: u64,
    /// Epochs the playbook has learned from (those run in LEARN: it stops growing while frozen),
    /// including those of earlier runs (warm start).
    pub trained_epochs: u64,
    /// "learn", "frozen" or "canary"; "fixed" when learning is off.
    pub phase: &'static str,
    /// The strategy running now.
    pub current: Strategy,
    /// Its name, when it is one of `learn::strategy::DEFAULTS`.
    pub name: Option<&'static str>,
    /// The best strategy known (the current one when learning is off).
    pub best: Strategy,
}

pub fn status() -> Status {
    crate::init::ensure_init();
    let mut s = Status {
        learning: false,
        epochs: 0,
        trained_epochs: 0,
        phase: "fixed",
        current: knobs::live(),
        name: None,
        best: knobs::live(),
    };
    if learning() {
        GLOBAL.lock.lock();
        // SAFETY: the lock is held; `learning` is set, so the learner is initialised.
        let l = unsafe { (*GLOBAL.state.get()).learner.assume_init_ref() };
        s.learning = true;
        s.epochs = l.epoch();
        s.trained_epochs = l.playbook().epochs();
        s.phase = phase_name(l.phase());
        s.current = *l.current();
        s.best = *l.best();
        GLOBAL.lock.unlock();
    }
    s.name = crate::learn::strategy::default_name(&s.current);
    s
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Learn => "learn",
        Phase::Frozen => "frozen",
        Phase::Canary => "canary",
    }
}

/// Appends the learner's state for the exit report: text lines, or the value of a JSON member.
pub fn write(out: &mut Text, json: bool) {
    if !learning() {
        let s = knobs::live();
        let name = crate::learn::strategy::default_name(&s).unwrap_or("custom");
        if json {
            out.str("{\"learning\":false,\"strategy\":\"")
                .str(name)
                .str("\",\"knobs\":");
            write_knobs(out, &s, true);
            out.str("}");
        } else {
            out.str("hakmem: learning off, strategy ")
                .str(name)
                .str(" ");
            write_knobs(out, &s, false);
            out.str("\n");
        }
        return;
    }
    GLOBAL.lock.lock();
    // SAFETY: the lock is held; `learning` is set, so the learner is initialised.
    let l = unsafe { (*GLOBAL.state.get()).learner.assume_init_ref() };
    let selector = match l.selector() {
        Selector::Elo => "elo",
        Selector::Ucb1 => "ucb1",
    };
    let mode = match l.mode() {
        Mode::Fast => "fast",
        Mode::Balanced => "balanced",
        Mode::Lean => "lean",
    };
    let chosen = *l.best();
    if json {
        out.str("{\"learning\":true,\"selector\":\"").str(selector);
        out.str("\",\"mode\":\"")
            .str(mode)
            .str("\",\"epochs\":")
            .number(l.epoch());
        out.str(",\"phase\":\"")
            .str(phase_name(l.phase()))
            .str("\",\"chosen\":");
        write_knobs(out, &chosen, true);
        out.str(",\"leaderboard\":[");
    } else {
        out.str("hakmem: learning ")
            .str(selector)
            .str(", mode ")
            .str(mode);
        out.str(", ").number(l.epoch()).str(" epochs, phase ");
        out.str(phase_name(l.phase())).str("\nhakmem: chosen ");
        write_knobs(out, &chosen, false);
        out.str("\nhakmem: leaderboard, best first by ");
        out.str(match l.selector() {
            Selector::Elo => "rating",
            Selector::Ucb1 => "mean reward 1/(1+cost^2)",
        });
        out.str(" (rank #id <parent rating wins losses draws epochs mean_cost name knobs)\n");
        out.str("hakmem:   (#id: the strategy's number; <parent: the one it was mutated from, <0 for a built-in candidate;\n");
        out.str("hakmem:   rating: ELO from pairwise epoch comparisons, 1500 at start, with their wins losses draws;\n");
        out.str("hakmem:   epochs: epochs it ran (a loaded playbook's included); mean_cost: their cost (a moving\n");
        out.str("hakmem:   average of about the last 16), about 1.0 for an average epoch, lower is better;\n");
        out.str(
            "hakmem:   name: the built-in candidate it is, - for a mutation; *: the chosen one)\n",
        );
    }
    for (rank, e) in l.leaderboard().enumerate() {
        let name = crate::learn::strategy::default_name(&e.strategy).unwrap_or("-");
        if json {
            if rank > 0 {
                out.str(",");
            }
            out.str("{\"id\":")
                .number(e.id as u64)
                .str(",\"parent\":")
                .number(e.parent as u64);
            out.str(",\"rating\":").fixed(e.elo.rating, 1);
            out.str(",\"wins\":").number(e.elo.wins as u64);
            out.str(",\"losses\":").number(e.elo.losses as u64);
            out.str(",\"draws\":").number(e.elo.draws as u64);
            out.str(",\"epochs\":").number(e.samples as u64);
            out.str(",\"mean_cost\":").fixed(e.mean_cost, 4);
            out.str(",\"name\":\"").str(name).str("\",\"knobs\":");
            write_knobs(out, &e.strategy, true);
            out.str(",\"chosen\":").str(if e.strategy == chosen {
                "true"
            } else {
                "false"
            });
            out.str("}");
        } else {
            out.str("hakmem:   ")
                .number(rank as u64 + 1)
                .str(" #")
                .number(e.id as u64);
            out.str(" <")
                .number(e.parent as u64)
                .str(" ")
                .fixed(e.elo.rating, 1);
            out.str(" ")
                .number(e.elo.wins as u64)
                .str(" ")
                .number(e.elo.losses as u64);
            out.str(" ")
                .number(e.elo.draws as u64)
                .str(" ")
                .number(e.samples as u64);
            out.str(" ")
                .fixed(e.mean_cost, 3)
                .str(" ")
                .str(name)
                .str(" ");
            write_knobs(out, &e.strategy, false);
            out.str(if e.strategy == chosen { " *\n" } else { "\n" });
        }
    }
    if json {
        out.str("],\"transitions\":[");
    } else {
        out.str("hakmem: transitions (epoch event)\n");
    }
    for (i, r) in l.events().iter().enumerate() {
        if json {
            if i > 0 {
                out.str(",");
            }
            out.str("{\"epoch\":").number(r.epoch).str(",\"event\":\"");
            out.str(r.event.name()).str("\"}");
        } else {
            out.str("hakmem:   ")
                .number(r.epoch)
                .str(" ")
                .str(r.event.name())
                .str("\n");
        }
    }
    if json {
        out.str("]}");
    }
    GLOBAL.lock.unlock();
}

fn write_knobs(out: &mut Text, s: &Strategy, json: bool) {
    if json {
        out.str("{");
    }
    for (i, k) in crate::learn::Knob::ALL.iter().enumerate() {
        if json {
            if i > 0 {
                out.str(",");
            }
            out.str("\"").str(k.name()).str("\":").number(s.get(*k));
        } else {
            if i > 0 {
                out.str(" ");
            }
            out.str(k.name()).str("=").number(s.get(*k));
        }
    }
    if json {
        out.str("}");
    }
}

/// The process figures an epoch is measured from.
#[derive(Clone, Copy)]
struct Sample {
    wall_ns: u64,
    tsc: u64,
    cpu_us: u64,
    minor_faults: u64,
    resident_bytes: u64,
}

impl Sample {
    const ZERO: Sample = Sample {
        wall_ns: 0,
        tsc: 0,
        cpu_us: 0,
        minor_faults: 0,
        resident_bytes: 0,
    };

    fn now() -> Sample {
        // SAFETY: an all-zero rusage is valid; getrusage fills it.
        let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
        // SAFETY: getrusage writes the struct we pass.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        Sample {
            wall_ns: os::monotonic_ns(),
            tsc: ticks(),
            cpu_us: us(ru.ru_utime) + us(ru.ru_stime),
            minor_faults: ru.ru_minflt as u64,
            resident_bytes: resident_bytes(),
        }
    }
}

/// The process's resident bytes, from /proc/self/statm (0 if it cannot be read).
fn resident_bytes() -> u64 {
    let mut buf = [0u8; 128];
    // SAFETY: open/read/close on our own buffer and a constant NUL-terminated path.
    let n = unsafe {
        let fd = libc::open(
            c"/proc/self/statm".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return 0;
        }
        let n = libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len());
        libc::close(fd);
        n
    };
    if n <= 0 {
        return 0;
    }
    // The second field is the resident page count.
    let mut fields = buf[..n as usize].split(|&b| b == b' ');
    let pages = fields
        .nth(1)
        .map(|f| {
            f.iter()
                .take_while(|b| b.is_ascii_digit())
                .fold(0u64, |v, &d| v * 10 + (d - b'0') as u64)
        })
        .unwrap_or(0);
    pages * 4096
}

/// A cheap, monotonic tick count: the TSC on x86_64, else nanoseconds.
#[inline]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        os::monotonic_ns()
    }
}

/// The lock the fork handlers hold across `fork()` (`fork.rs`); it nests outside the others.
pub fn lock() -> &'static Lock {
    &GLOBAL.lock
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_samples_move_forward() {
        let a = Sample::now();
        let v: Vec<u8> = vec![1; 1 << 20];
        let b = Sample::now();
        assert!(b.wall_ns > a.wall_ns && b.tsc > a.tsc);
        assert!(b.cpu_us >= a.cpu_us && b.minor_faults >= a.minor_faults);
        assert!(a.resident_bytes > 1 << 20, "{}", a.resident_bytes);
        assert_eq!(v.iter().map(|&x| x as usize).sum::<usize>(), 1 << 20);
    }

    /// A cold reuse is attributed to the epoch before only if its purge happened in that epoch.
    #[test]
    fn cold_reuses_know_the_epoch_of_their_purge() {
        let bytes = 64 * reuse::PAGE as usize;
        let _ = take_reuse();
        let e = epoch();
        record_big_reuse(20, 8 << 20, bytes, Some((e, 64))); // purged and reused in this epoch
        let r = take_reuse();
        assert_eq!(r.cold_from_last_epoch, 0);
        assert_eq!(r.cold_big.iter().flatten().sum::<u64>(), 64);
        assert_eq!(epoch(), e.wrapping_add(1));
        // Purged in the epoch before: its faults (3: say, huge pages) are the last epoch's.
        record_big_reuse(20, 8 << 20, bytes, Some((e, 3)));
        record_big_reuse(20, 8 << 20, bytes, Some((e.wrapping_sub(1), 64))); // two epochs before
        record_big_reuse(20, 8 << 20, bytes, None); // warm
        let r = take_reuse();
        assert_eq!(r.cold_from_last_epoch, 3);
        assert_eq!(r.cold_big.iter().flatten().sum::<u64>(), 128);
        assert_eq!(r.big.iter().flatten().sum::<u64>(), 64);
    }
}
