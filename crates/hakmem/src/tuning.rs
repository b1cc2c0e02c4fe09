//! Online tuning: the epoch driver between the allocator's slow paths and the learner (`learn/`).
//! With learning off it only applies the fixed strategy at start-up (`HAKMEM_STRATEGY`, else
//! `default`, plus `config.rs`'s knob variables). With it on, one slow event in `SAMPLE_PERIOD`
//! (heap refill or flush, large allocation or free) is timed in TSC ticks and its size sampled
//! (`Timer`); every `EPOCH_MS` the thread holding the lock ends the epoch (`end_epoch`) and applies
//! the learner's next strategy. The fast paths never look at this; the slow paths read one flag.

use crate::learn::reuse::{self, Reuse};
use crate::learn::sketch::SizeSketch;
use crate::learn::{FileError, Learner, Measurements, Mode, Selector, Strategy};
use crate::lock::Lock;
use crate::text::Text;
use crate::{config, knobs, os};
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Wall time of one epoch.
pub(crate) const EPOCH_MS: u64 = 10;
/// One slow event in this many is timed and sampled (a power of two).
pub(crate) const SAMPLE_PERIOD: u64 = 8;

struct State {
    learner: MaybeUninit<Learner>,
    sizes: SizeSketch,
    last: Sample,
    slow_ticks_seen: u64,
    next_epoch_ms: u64,
    finished: bool,
    /// The highest resident size an epoch ended with (`ru_maxrss` carries over an `execve`).
    peak_resident: u64,
}

struct Global {
    lock: Lock,
    /// Whether learning is on: in `.data` beside the state, as a `.bss` flag's first read (on a
    /// slow path, from the first allocation on) would fault in the zero page.
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
        peak_resident: 0,
    }),
};

static SLOW_TICKS: AtomicU64 = AtomicU64::new(0);
/// The epoch's warm BigCache reuses in pages, by [age bucket][depth bucket] (`learn::reuse`).
static REUSE: [[AtomicU64; 6]; 8] = [const { [const { AtomicU64::new(0) }; 6] }; 8];
static LARGE_OPS: AtomicU32 = AtomicU32::new(0);
#[inline]
pub(crate) fn learning() -> bool {
    GLOBAL.learning.load(Ordering::Relaxed)
}

/// Applies the starting strategy or, with learning on, sets up the learner (with the playbook
/// file if there is one); registers what runs at exit. Called once, by `init::ensure_init`.
pub(crate) fn init() {
    let cfg = config::get();
    register_exit_hook(cfg);
    if cfg.learn == 0 {
        let mut s = crate::learn::strategy::DEFAULTS[cfg.strategy].1;
        s.purge_delay_ms = cfg.purge_delay_ms.unwrap_or(s.purge_delay_ms);
        s.warm_superslabs = cfg.ss_warm_max.map_or(s.warm_superslabs, |v| v as u64);
        s.bigcache_bytes = cfg.bigcache_bytes.map_or(s.bigcache_bytes, |v| v as u64);
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
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u64;
    let seed = os::monotonic_ns() ^ pid.rotate_left(32);
    GLOBAL.lock.lock();
    // SAFETY: the lock is held; `learning` is not set yet, so nobody else reads the learner.
    let st = unsafe { &mut *GLOBAL.state.get() };
    let learner = st.learner.write(Learner::new(mode, selector, seed));
    if let Some(path) = cfg.playbook {
        match learner.load(path) {
            Ok(()) | Err(FileError::Io(libc::ENOENT)) => {}
            Err(e) => warn_playbook(b"cannot use", path, e, b"; starting cold"),
        }
    }
    let now = Sample::now();
    st.peak_resident = now.resident_bytes;
    knobs::apply(&applied(learner, st.peak_resident, st.peak_resident));
    crate::bigcache::observe_reuses(Some(record_big_reuse));
    st.last = now;
    st.next_epoch_ms = os::monotonic_ns() / 1_000_000 + EPOCH_MS;
    GLOBAL.learning.store(true, Ordering::Release);
    GLOBAL.lock.unlock();
}

/// Times one slow event when it is sampled and learning is on.
pub(crate) struct Timer(u64);

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

/// BigCache's reuse observer while learning: a warm block of `bytes`, `age_ms` old, `depth` deep.
fn record_big_reuse(age_ms: u64, depth: u64, bytes: usize) {
    let (a, d) = reuse::cell(age_ms, depth);
    REUSE[a][d].fetch_add(bytes as u64 / 4096, Ordering::Relaxed);
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
        system_ns: s.system_us.saturating_sub(st.last.system_us) * 1000,
        resident_bytes: s.resident_bytes,
        ops: s.cpu_us.saturating_sub(st.last.cpu_us).max(1),
        size_p50: st.sizes.p50().unwrap_or(0),
        size_p95: st.sizes.p95().unwrap_or(0),
        reuse: Reuse {
            pages: core::array::from_fn(|a| {
                core::array::from_fn(|d| REUSE[a][d].swap(0, Ordering::Relaxed))
            }),
        },
    };
    // SAFETY: `learning` is set, so the learner is initialised; the lock is held.
    let learner = unsafe { st.learner.assume_init_mut() };
    learner.on_epoch_end(&m);
    st.peak_resident = st.peak_resident.max(m.resident_bytes);
    knobs::apply(&applied(learner, m.resident_bytes, st.peak_resident));
    st.sizes.clear();
    st.last = s;
    st.slow_ticks_seen = slow;
    st.next_epoch_ms = now_ms + EPOCH_MS;
}

/// The knobs to run the learner's current strategy with: in `balanced` mode within the headroom
/// (`Strategy::within_headroom`).
fn applied(learner: &Learner, resident: u64, peak: u64) -> Strategy {
    match learner.mode() {
        Mode::Balanced => learner.current().within_headroom(resident, peak),
        _ => *learner.current(),
    }
}

/// When there is a playbook to save or a report to print: registers `at_exit` with atexit (a Rust
/// `#[global_allocator]` has no libhakmem.so destructor) and keeps a copy of stderr for the report.
fn register_exit_hook(cfg: &config::Config) {
    if cfg.stats != 0 {
        crate::stats::keep_stderr();
    }
    if cfg.stats != 0 || (cfg.learn != 0 && cfg.playbook.is_some()) {
        extern "C" fn hook() {
            at_exit();
        }
        // SAFETY: a plain function; atexit may allocate (`init::ensure_init` lets this thread in).
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
fn warn_playbook(what: &[u8], path: &[u8], e: FileError, consequence: &[u8]) {
    let mut digits = [0u8; 20];
    let [open, n, close]: [&[u8]; 3] = match e {
        FileError::Io(n) => [
            b" (errno ",
            crate::text::decimal(n as u64, &mut digits),
            b")",
        ],
        _ => [b""; 3],
    };
    let path = &path[..path.len() - 1];
    let reason = e.reason().as_bytes();
    let file = b" HAKMEM_PLAYBOOK file ";
    config::warn(&[what, file, path, b": ", reason, open, n, close, consequence]);
}

/// One playbook evolution step now (`hak_evolve_playbook`): (strategies retired, challenger
/// added), or None when learning is off.
pub fn evolve_playbook() -> Option<(u32, bool)> {
    with_learner(|l| l.evolve()).map(|ev| (ev.retired, ev.added.is_some()))
}

/// What the tuner is doing, for programs and the benchmark.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Status {
    /// Whether the learner runs (`HAKMEM_LEARN`).
    pub learning: bool,
    /// Epochs ended in this process.
    pub epochs: u64,
    /// Epochs the playbook has learned from (those run in LEARN: it stops growing while frozen),
    /// including those of earlier runs (warm start).
    pub trained_epochs: u64,
    /// "learn", "frozen" or "canary"; "fixed" when learning is off.
    pub phase: &'static str,
    /// The knobs running now.
    pub current: Strategy,
    /// The name of the strategy they come from, if one of `DEFAULTS` (in `balanced` mode the
    /// learner's choice runs within the headroom, so its knobs may be lower than the name's).
    pub name: Option<&'static str>,
    /// The best strategy known (the current one when learning is off).
    pub best: Strategy,
}

/// What the tuner runs now, and what it has learned.
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
    s.name = crate::learn::strategy::default_name(&s.current);
    with_learner(|l| {
        s.learning = true;
        s.epochs = l.epoch();
        s.trained_epochs = l.playbook().epochs();
        s.phase = l.phase().name();
        s.name = crate::learn::strategy::default_name(l.current());
        s.best = *l.best();
    });
    s
}

/// Runs `f` on the learner under the lock, if learning is on.
fn with_learner<R>(f: impl FnOnce(&mut Learner) -> R) -> Option<R> {
    if !learning() {
        return None;
    }
    GLOBAL.lock.lock();
    // SAFETY: the lock is held; `learning` is set, so the learner is initialised.
    let r = f(unsafe { (*GLOBAL.state.get()).learner.assume_init_mut() });
    GLOBAL.lock.unlock();
    Some(r)
}

/// Appends the learner's state for the exit report: text lines, or the value of a JSON member.
pub(crate) fn write(out: &mut Text, json: bool) {
    if with_learner(|l| write_learner(out, json, l)).is_none() {
        let s = knobs::live();
        let name = crate::learn::strategy::default_name(&s).unwrap_or("custom");
        let (head, sep, tail) = if json {
            ("{\"learning\":false,\"strategy\":\"", "\",\"knobs\":", "}")
        } else {
            ("hakmem: learning off, strategy ", " ", "\n")
        };
        out.str(head).str(name).str(sep);
        write_knobs(out, &s, json);
        out.str(tail);
    }
}

fn write_learner(out: &mut Text, json: bool, l: &Learner) {
    let (selector, mode, phase) = (l.selector().name(), l.mode().name(), l.phase().name());
    let chosen = *l.best();
    if json {
        out.str("{\"learning\":true,\"selector\":\"").str(selector);
        out.str("\",\"mode\":\"").str(mode);
        out.str("\",\"epochs\":").number(l.epoch());
        out.str(",\"phase\":\"").str(phase).str("\",\"chosen\":");
        write_knobs(out, &chosen, true);
        out.str(",\"leaderboard\":[");
    } else {
        out.str("hakmem: learning ").str(selector).str(", mode ");
        out.str(mode).str(", ").number(l.epoch());
        out.str(" epochs, phase ").str(phase);
        out.str("\nhakmem: chosen ");
        write_knobs(out, &chosen, false);
        out.str("\nhakmem: leaderboard, best first (rank #id <parent rating wins losses draws epochs mean_cost name knobs)\n");
        out.str("hakmem:   (<parent: the one it was mutated from, <0 for a built-in candidate; rating: ELO, 1500 at start;\n");
        out.str("hakmem:   epochs: those it ran, earlier runs' included; mean_cost: their cost, about 1.0 for an average\n");
        out.str("hakmem:   epoch, lower is better; name: the built-in candidate, - for a mutation; *: the chosen one)\n");
    }
    for (rank, e) in l.playbook().ranked().enumerate() {
        let name = crate::learn::strategy::default_name(&e.strategy).unwrap_or("-");
        let is_chosen = e.strategy == chosen;
        if json {
            out.str(if rank > 0 { ",{" } else { "{" });
            out.str("\"id\":").number(e.id as u64);
            out.str(",\"parent\":").number(e.parent as u64);
            out.str(",\"rating\":").fixed(e.elo.rating, 1);
            out.str(",\"wins\":").number(e.elo.wins as u64);
            out.str(",\"losses\":").number(e.elo.losses as u64);
            out.str(",\"draws\":").number(e.elo.draws as u64);
            out.str(",\"epochs\":").number(e.samples as u64);
            out.str(",\"mean_cost\":").fixed(e.mean_cost, 4);
            out.str(",\"name\":\"").str(name).str("\",\"knobs\":");
            write_knobs(out, &e.strategy, true);
            out.str(",\"chosen\":")
                .str(if is_chosen { "true}" } else { "false}" });
        } else {
            out.str("hakmem:   ").number(rank as u64 + 1);
            out.str(" #").number(e.id as u64);
            out.str(" <").number(e.parent as u64);
            out.str(" ").fixed(e.elo.rating, 1);
            for n in [e.elo.wins, e.elo.losses, e.elo.draws, e.samples] {
                out.str(" ").number(n as u64);
            }
            out.str(" ").fixed(e.mean_cost, 3);
            out.str(" ").str(name).str(" ");
            write_knobs(out, &e.strategy, false);
            out.str(if is_chosen { " *\n" } else { "\n" });
        }
    }
    let t = l.transitions();
    let counts = [
        ("froze", t.froze),
        ("canaries", t.canaries),
        ("promoted", t.promoted),
        ("rejected", t.rejected),
        ("rolled_back", t.rolled_back),
        ("phase_changes", t.phase_changes),
    ];
    out.str(if json {
        "],\"transitions\":"
    } else {
        "hakmem: transitions: "
    });
    write_pairs(out, json, " ", counts.map(|(name, n)| (name, n as u64)));
    out.str(if json { "}" } else { "\n" });
}

fn write_knobs(out: &mut Text, s: &Strategy, json: bool) {
    let pairs = crate::learn::Knob::ALL.map(|k| (k.name(), s.get(k)));
    write_pairs(out, json, "=", pairs);
}

/// Writes named numbers: a JSON object, or in text `name<eq>value` separated by spaces.
fn write_pairs<const N: usize>(out: &mut Text, json: bool, eq: &str, pairs: [(&str, u64); N]) {
    let (open, sep, eq, close) = if json {
        ("{\"", ",\"", "\":", "}")
    } else {
        ("", " ", eq, "")
    };
    for (i, (name, n)) in pairs.into_iter().enumerate() {
        out.str(if i == 0 { open } else { sep }).str(name);
        out.str(eq).number(n);
    }
    out.str(close);
}

/// The process figures an epoch is measured from.
#[derive(Clone, Copy)]
struct Sample {
    wall_ns: u64,
    tsc: u64,
    cpu_us: u64,
    system_us: u64,
    minor_faults: u64,
    resident_bytes: u64,
}

impl Sample {
    const ZERO: Sample = Sample {
        wall_ns: 0,
        tsc: 0,
        cpu_us: 0,
        system_us: 0,
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
            system_us: us(ru.ru_stime),
            minor_faults: ru.ru_minflt as u64,
            resident_bytes: resident_bytes(),
        }
    }
}

/// The process's resident bytes, from /proc/self/statm (0 if it cannot be read).
fn resident_bytes() -> u64 {
    let mut buf = [0u8; 128];
    let n = crate::os::read_file(c"/proc/self/statm", &mut buf);
    // The second field is the resident page count.
    let pages = buf[..n].split(|&b| b == b' ').nth(1);
    pages
        .and_then(|p| config::parse_number(p, u64::MAX))
        .unwrap_or(0)
        * 4096
}

/// A cheap, monotonic tick count: the TSC on x86_64, else nanoseconds.
#[inline]
pub(crate) fn ticks() -> u64 {
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
pub(crate) fn lock() -> &'static Lock {
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
}
