//! What the allocator's slow paths did, for `hak_stats_get`, the benchmark and the exit report
//! (`HAKMEM_STATS`, `print`). Nothing on the fast paths is counted (a counter there cost the
//! original 4.8x).
//!
//! Counters: per-heap ones (refills per size class, flushes, remote frees) have one writer each,
//! the heap's thread, and are summed over every heap ever made when read; the rest are global
//! atomics bumped on paths that already take a lock or make a system call.
//!
//! Gauges (bytes now, and the most they have been), each exact because it changes only where the
//! memory changes hands in bulk:
//! - mapped: what hakmem has mapped from the OS now (SuperSlabs, large blocks, heap records;
//!   cached memory included), counted in `os.rs` at each mmap, munmap and mremap;
//! - in slabs: the block bytes of the slabs threads hold (blocks in use, in thread caches, or free
//!   in those slabs), counted when a slab is formatted for a class and when it goes back
//!   (`slab.rs`), and per class as slab counts;
//! - in large blocks: the mappings of large blocks in use (header page included), counted at
//!   allocation, free and resize (`large.rs`), with the total allocated since start.
//!
//! Bytes handed to the program from slabs are not counted: that would cost the fast paths.
//!
//! The exit report: `HAKMEM_STATS=1` (text) or `json` prints it at exit (the atexit handler
//! `tuning::at_exit`, and libhakmem.so's destructor, whichever runs first), `print` at any time.
//! It goes to `HAKMEM_STATS_FILE` (`%p` is replaced by the pid; reports are appended, each in one
//! write), else to the stderr the process started with: a copy of it is kept from start-up
//! (`keep_stderr`), so programs that close stderr before they exit (coreutils do) still get it.

use crate::size_class::{class_size, NUM_CLASSES};
use crate::text::Text;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

/// Counters kept in each heap; written only by the heap's thread.
pub(crate) struct HeapCounters {
    /// Thread-cache refills, per size class.
    pub refills: [AtomicU64; NUM_CLASSES],
    pub flushes: AtomicU64,
    pub remote_frees: AtomicU64,
}

impl HeapCounters {
    pub(crate) const fn new() -> Self {
        HeapCounters {
            refills: [const { AtomicU64::new(0) }; NUM_CLASSES],
            flushes: AtomicU64::new(0),
            remote_frees: AtomicU64::new(0),
        }
    }
}

/// Adds one to a single-writer counter (a plain load and store, no locked instruction).
#[inline]
pub(crate) fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Adds `n` to a shared counter.
#[inline]
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub(crate) static SLABS_ACQUIRED: AtomicU64 = AtomicU64::new(0);
pub(crate) static SLABS_RELEASED: AtomicU64 = AtomicU64::new(0);
pub(crate) static SUPERSLABS_MAPPED: AtomicU64 = AtomicU64::new(0);
pub(crate) static SUPERSLABS_UNMAPPED: AtomicU64 = AtomicU64::new(0);
pub(crate) static LARGE_ALLOCS: AtomicU64 = AtomicU64::new(0);
pub(crate) static LARGE_FREES: AtomicU64 = AtomicU64::new(0);
pub(crate) static BIGCACHE_HITS: AtomicU64 = AtomicU64::new(0);
pub(crate) static PURGED_BYTES: AtomicU64 = AtomicU64::new(0);
pub(crate) static MMAP_FAILURES: AtomicU64 = AtomicU64::new(0);

/// A figure that goes up and down, and the most it has been.
pub(crate) struct Gauge {
    now: AtomicU64,
    peak: AtomicU64,
}

impl Gauge {
    pub const fn new() -> Gauge {
        Gauge {
            now: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        }
    }

    pub fn add(&self, n: u64) {
        let v = self.now.fetch_add(n, Ordering::Relaxed) + n;
        if v > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(v, Ordering::Relaxed);
        }
    }

    pub fn sub(&self, n: u64) {
        self.now.fetch_sub(n, Ordering::Relaxed);
    }

    /// A part of the figure that was `old` is now `new`: one update by the difference.
    pub fn change(&self, old: u64, new: u64) {
        if new > old {
            self.add(new - old);
        } else {
            self.sub(old - new);
        }
    }

    pub fn now(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }

    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Default for Gauge {
    fn default() -> Self {
        Gauge::new()
    }
}

/// Bytes hakmem has mapped from the OS (`os.rs`).
pub(crate) static MAPPED: Gauge = Gauge::new();
/// Block bytes of the slabs threads hold (`slab.rs`).
pub(crate) static SLAB_BYTES: Gauge = Gauge::new();
/// Slabs threads hold, per size class.
pub(crate) static CLASS_SLABS: [Gauge; NUM_CLASSES] = [const { Gauge::new() }; NUM_CLASSES];
/// Mapping bytes of the large blocks in use (`large.rs`).
pub(crate) static LARGE_BYTES: Gauge = Gauge::new();
/// Mapping bytes of the large blocks in use that BigCache could keep once freed
/// (`bigcache::could_keep`): what its share of the blocks in use is taken of.
pub(crate) static LARGE_CACHEABLE_BYTES: Gauge = Gauge::new();
/// Mapping bytes of large blocks allocated since start, growth by realloc included.
pub(crate) static LARGE_BYTES_TOTAL: AtomicU64 = AtomicU64::new(0);

/// A slab of `class` with `bytes` of blocks was handed to a thread.
pub(crate) fn slab_taken(class: usize, bytes: u64) {
    SLAB_BYTES.add(bytes);
    CLASS_SLABS[class].add(1);
}

/// A slab of `class` with `bytes` of blocks went back to its SuperSlab.
pub(crate) fn slab_given_back(class: usize, bytes: u64) {
    SLAB_BYTES.sub(bytes);
    CLASS_SLABS[class].sub(1);
}

/// The part of a large block's mapping of `len` bytes that counts towards BigCache's share: all
/// of it if BigCache could keep the block once freed, else none.
fn cacheable(len: usize, standard: bool) -> u64 {
    if crate::bigcache::could_keep(len, standard) {
        len as u64
    } else {
        0
    }
}

/// A large block on a mapping of `len` bytes, standard (`LargeHeader::standard`) or not, was
/// handed out.
pub(crate) fn large_taken(len: usize, standard: bool) {
    LARGE_BYTES.add(len as u64);
    LARGE_CACHEABLE_BYTES.add(cacheable(len, standard));
    add(&LARGE_BYTES_TOTAL, len as u64);
}

/// A large block on a mapping of `len` bytes, standard or not, was freed.
pub(crate) fn large_given_back(len: usize, standard: bool) {
    LARGE_BYTES.sub(len as u64);
    LARGE_CACHEABLE_BYTES.sub(cacheable(len, standard));
}

/// A standard large block in use (only those are trimmed, grown or moved) now has a mapping of
/// `new_len` bytes instead of `old_len`.
pub(crate) fn large_resized(old_len: usize, new_len: usize) {
    LARGE_BYTES.change(old_len as u64, new_len as u64);
    add(&LARGE_BYTES_TOTAL, new_len.saturating_sub(old_len) as u64);
    LARGE_CACHEABLE_BYTES.change(cacheable(old_len, true), cacheable(new_len, true));
}

/// Every figure at one moment (each read separately; totals may be off by in-flight events).
/// The layout of `struct hak_stats` after its header (include/hakmem.h): new fields go at the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Snapshot {
    /// Thread-cache refills from slabs.
    pub refills: u64,
    /// Thread-cache flushes back to slabs (half a full cache each).
    pub flushes: u64,
    /// Frees of blocks another thread's heap owns.
    pub remote_frees: u64,
    /// Slabs handed to threads.
    pub slabs_acquired: u64,
    /// Slabs given back empty.
    pub slabs_released: u64,
    /// 2 MiB SuperSlabs mapped from the OS.
    pub superslabs_mapped: u64,
    /// SuperSlabs unmapped.
    pub superslabs_unmapped: u64,
    /// SuperSlabs mapped now (in use or cached).
    pub superslabs_live: u64,
    /// Large blocks allocated (each in its own mapping).
    pub large_allocs: u64,
    /// Large blocks freed.
    pub large_frees: u64,
    /// Large allocations served from BigCache.
    pub bigcache_hits: u64,
    /// Freed large blocks in BigCache now.
    pub bigcache_blocks: u64,
    /// Bytes of those that still have their pages.
    pub bigcache_warm_bytes: u64,
    /// Bytes whose pages went back to the OS (`MADV_DONTNEED`).
    pub purged_bytes: u64,
    /// Mappings the OS refused.
    pub mmap_failures: u64,
    /// Bytes mapped from the OS now (cached memory included).
    pub mapped_bytes: u64,
    /// The most `mapped_bytes` has been.
    pub mapped_bytes_peak: u64,
    /// Block bytes of the slabs threads hold now (in use, cached or free in them).
    pub slab_bytes: u64,
    /// The most `slab_bytes` has been.
    pub slab_bytes_peak: u64,
    /// Bytes of the large blocks in use now (their mappings).
    pub large_bytes: u64,
    /// The most `large_bytes` has been.
    pub large_bytes_peak: u64,
    /// Bytes of large blocks allocated since start.
    pub large_bytes_total: u64,
}

/// Thread-cache refills per size class, summed over every heap.
pub(crate) fn class_refills() -> [u64; NUM_CLASSES] {
    let mut r = [0; NUM_CLASSES];
    crate::heap_pool::for_each_heap(|c| {
        for (sum, n) in r.iter_mut().zip(&c.refills) {
            *sum += n.load(Ordering::Relaxed);
        }
    });
    r
}

/// Reads every figure.
pub fn snapshot() -> Snapshot {
    let mut s = Snapshot {
        refills: class_refills().iter().sum(),
        ..Snapshot::default()
    };
    crate::heap_pool::for_each_heap(|c| {
        s.flushes += c.flushes.load(Ordering::Relaxed);
        s.remote_frees += c.remote_frees.load(Ordering::Relaxed);
    });
    let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
    s.slabs_acquired = r(&SLABS_ACQUIRED);
    s.slabs_released = r(&SLABS_RELEASED);
    s.superslabs_mapped = r(&SUPERSLABS_MAPPED);
    s.superslabs_unmapped = r(&SUPERSLABS_UNMAPPED);
    s.superslabs_live = crate::superslab::mapped_count() as u64;
    s.large_allocs = r(&LARGE_ALLOCS);
    s.large_frees = r(&LARGE_FREES);
    s.bigcache_hits = r(&BIGCACHE_HITS);
    let (blocks, warm) = crate::bigcache::stats();
    s.bigcache_blocks = blocks as u64;
    s.bigcache_warm_bytes = warm as u64;
    s.purged_bytes = r(&PURGED_BYTES);
    s.mmap_failures = r(&MMAP_FAILURES);
    s.mapped_bytes = MAPPED.now();
    s.mapped_bytes_peak = MAPPED.peak();
    s.slab_bytes = SLAB_BYTES.now();
    s.slab_bytes_peak = SLAB_BYTES.peak();
    s.large_bytes = LARGE_BYTES.now();
    s.large_bytes_peak = LARGE_BYTES.peak();
    s.large_bytes_total = r(&LARGE_BYTES_TOTAL);
    s
}

/// The counters (events since start) of `Snapshot::fields`, and what each counts.
const COUNTERS: [&str; 15] = [
    "thread-cache refills from slabs",
    "thread-cache flushes back to slabs (half a full cache each)",
    "frees of blocks another thread's heap owns",
    "slabs handed to threads",
    "slabs given back empty",
    "2 MiB SuperSlabs mapped from the OS",
    "SuperSlabs unmapped",
    "SuperSlabs mapped now (in use or cached)",
    "large blocks allocated (own mapping: above 256 KiB, or above the strategy's threshold)",
    "large blocks freed",
    "large allocations served from BigCache",
    "freed large blocks in BigCache now",
    "bytes of them that still have their pages",
    "bytes whose pages went back to the OS (MADV_DONTNEED)",
    "mappings the OS refused",
];

impl Snapshot {
    /// (name, value) pairs in a fixed order, for printing: the counters, then the gauges.
    pub fn fields(&self) -> [(&'static str, u64); 22] {
        [
            ("refills", self.refills),
            ("flushes", self.flushes),
            ("remote_frees", self.remote_frees),
            ("slabs_acquired", self.slabs_acquired),
            ("slabs_released", self.slabs_released),
            ("superslabs_mapped", self.superslabs_mapped),
            ("superslabs_unmapped", self.superslabs_unmapped),
            ("superslabs_live", self.superslabs_live),
            ("large_allocs", self.large_allocs),
            ("large_frees", self.large_frees),
            ("bigcache_hits", self.bigcache_hits),
            ("bigcache_blocks", self.bigcache_blocks),
            ("bigcache_warm_bytes", self.bigcache_warm_bytes),
            ("purged_bytes", self.purged_bytes),
            ("mmap_failures", self.mmap_failures),
            ("mapped_bytes", self.mapped_bytes),
            ("mapped_bytes_peak", self.mapped_bytes_peak),
            ("slab_bytes", self.slab_bytes),
            ("slab_bytes_peak", self.slab_bytes_peak),
            ("large_bytes", self.large_bytes),
            ("large_bytes_peak", self.large_bytes_peak),
            ("large_bytes_total", self.large_bytes_total),
        ]
    }
}

/// This process's resident bytes now and at most (VmRSS and VmHWM of /proc/self/status; the
/// peak from getrusage if that cannot be read). Without allocating.
pub(crate) fn resident_bytes() -> (u64, u64) {
    let mut buf = [0u8; 4096];
    let n = crate::os::read_file(c"/proc/self/status", &mut buf);
    let status = &buf[..n];
    let kib = |name: &[u8]| -> Option<u64> {
        let line = status
            .split(|&b| b == b'\n')
            .find(|l| l.starts_with(name))?;
        let digits = line[name.len()..]
            .iter()
            .skip_while(|b| !b.is_ascii_digit())
            .take_while(|b| b.is_ascii_digit());
        Some(digits.fold(0u64, |v, &d| v * 10 + (d - b'0') as u64))
    };
    let rss = kib(b"VmRSS:").unwrap_or(0) * 1024;
    let peak = kib(b"VmHWM:").map(|k| k * 1024).unwrap_or_else(|| {
        // SAFETY: an all-zero rusage is valid; getrusage fills it.
        let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
        // SAFETY: getrusage writes the struct we pass.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        ru.ru_maxrss as u64 * 1024
    });
    (rss, peak.max(rss))
}

/// Where the text report's figures end: the memory table's "now" and "peak" columns.
const NOW_COL: usize = 44;
const PEAK_COL: usize = 56;

/// Appends the figures: the memory table and the counters with what they count, or the members
/// of a JSON object (`"name":value,...`: every `Snapshot` field, then `rss_bytes` and
/// `rss_bytes_peak`) when `json` is set. Never allocates.
pub(crate) fn write(out: &mut Text, json: bool) {
    let s = snapshot();
    let (rss, rss_peak) = resident_bytes();
    if json {
        for (i, (name, v)) in s.fields().iter().enumerate() {
            if i > 0 {
                out.str(",");
            }
            out.str("\"").str(name).str("\":").number(*v);
        }
        out.str(",\"rss_bytes\":").number(rss);
        out.str(",\"rss_bytes_peak\":").number(rss_peak);
        out.str(",\"page_map_bytes\":")
            .number(crate::pagemap::entry_bytes());
        return;
    }
    out.str("hakmem: memory");
    out.right(NOW_COL, |t| {
        t.str("now");
    });
    out.right(PEAK_COL, |t| {
        t.str("peak");
    })
    .str("\n");
    let rows: [(&str, u64, Option<u64>, &str); 7] = [
        (
            "process resident",
            rss,
            Some(rss_peak),
            "the whole process (VmRSS, VmHWM)",
        ),
        (
            "mapped by hakmem",
            s.mapped_bytes,
            Some(s.mapped_bytes_peak),
            "its mappings: slabs, large blocks, caches, heaps",
        ),
        (
            "in slabs",
            s.slab_bytes,
            Some(s.slab_bytes_peak),
            "blocks of the slabs threads hold: in use, cached or free",
        ),
        (
            "in large blocks",
            s.large_bytes,
            Some(s.large_bytes_peak),
            "large blocks in use (their mappings)",
        ),
        (
            "in BigCache",
            s.bigcache_warm_bytes,
            None,
            "freed large blocks kept with their pages",
        ),
        (
            "large blocks handed out",
            s.large_bytes_total,
            None,
            "in total since start, BigCache reuses included",
        ),
        (
            "page map",
            crate::pagemap::entry_bytes(),
            None,
            "entries of free's map to slab records (256 B per SuperSlab); 0 B: no map, every free takes the registry's path",
        ),
    ];
    for (name, now, peak, what) in rows {
        out.str("hakmem:   ").str(name);
        out.right(NOW_COL, |t| {
            t.size(now);
        });
        out.right(PEAK_COL, |t| match peak {
            Some(p) => {
                t.size(p);
            }
            None => {
                t.str("-");
            }
        });
        out.str("  ").str(what).str("\n");
    }
    out.str("hakmem: counters since start\n");
    for ((name, v), what) in s.fields().iter().zip(COUNTERS) {
        out.str("hakmem:   ").str(name);
        out.right(NOW_COL, |t| {
            t.number(*v);
        });
        out.str("  ").str(what).str("\n");
    }
}

/// The size-class table's columns: where each ends, and its heading.
const CLASS_COLUMNS: [(usize, &str); 5] = [
    (15, "class"),
    (27, "block size"),
    (35, "slabs"),
    (43, "peak"),
    (55, "refills"),
];

/// Appends the size classes that held a slab or had a refill: block size, slabs held now and at
/// most, refills. Text lines, or a JSON array.
pub(crate) fn write_classes(out: &mut Text, json: bool) {
    let refills = class_refills();
    if json {
        out.str("[");
    } else {
        out.str("hakmem: size classes (slabs: held by threads now, and at most; refills: ");
        out.str("thread-cache refills)\nhakmem:");
        for (col, name) in CLASS_COLUMNS {
            out.right(col, |t| {
                t.str(name);
            });
        }
        out.str("\n");
    }
    let mut first = true;
    for (c, &refilled) in refills.iter().enumerate() {
        let slabs = &CLASS_SLABS[c];
        if refilled == 0 && slabs.peak() == 0 {
            continue;
        }
        if json {
            if !first {
                out.str(",");
            }
            out.str("{\"class\":").number(c as u64);
            out.str(",\"block_size\":").number(class_size(c) as u64);
            out.str(",\"slabs\":").number(slabs.now());
            out.str(",\"slabs_peak\":").number(slabs.peak());
            out.str(",\"refills\":").number(refilled).str("}");
        } else {
            let [class, block, now, peak, refills] = CLASS_COLUMNS.map(|(col, _)| col);
            out.str("hakmem:");
            out.right(class, |t| {
                t.number(c as u64);
            });
            out.right(block, |t| {
                t.size(class_size(c) as u64);
            });
            out.right(now, |t| {
                t.number(slabs.now());
            });
            out.right(peak, |t| {
                t.number(slabs.peak());
            });
            out.right(refills, |t| {
                t.number(refilled);
            });
            out.str("\n");
        }
        first = false;
    }
    if json {
        out.str("]");
    }
}

// ---- the exit report ----

/// The report is formatted here: in `.bss`, so it costs nothing until a report is printed, and
/// large enough for any report (the longest parts, leaderboard and call sites, are bounded).
const REPORT_CAPACITY: usize = 64 * 1024;

struct ReportBuffer(UnsafeCell<[u8; REPORT_CAPACITY]>);

// SAFETY: only the thread that set REPORT_BUSY touches the buffer.
unsafe impl Sync for ReportBuffer {}

static REPORT: ReportBuffer = ReportBuffer(UnsafeCell::new([0; REPORT_CAPACITY]));
static REPORT_BUSY: AtomicBool = AtomicBool::new(false);

/// `HAKMEM_STATS=1` (text) or `json`: prints the report. Called at exit.
pub(crate) fn print_if_asked() {
    let cfg = crate::config::get();
    if cfg.stats != 0 {
        print_report(cfg.stats == 2);
    }
}

/// Prints the report now (as JSON with `HAKMEM_STATS=json`, else as text) to `HAKMEM_STATS_FILE`
/// or stderr, whatever `HAKMEM_STATS` says: the counters and memory figures, the size classes,
/// the learner's state and the top call sites (profiled only with `HAKMEM_SITES=1`,
/// `HAKMEM_STATS` or learning on). Never allocates. A report asked for while another thread is
/// printing one is skipped.
pub fn print() {
    crate::init::ensure_init();
    print_report(crate::config::get().stats == 2);
}

/// Out of line and cold: a process that prints no report never touches any of it.
#[cold]
#[inline(never)]
fn print_report(json: bool) {
    if REPORT_BUSY.swap(true, Ordering::Acquire) {
        return;
    }
    // SAFETY: REPORT_BUSY makes this thread the buffer's only user until it is cleared.
    let mut out = Text::new(unsafe { &mut *REPORT.0.get() });
    write_report(&mut out, json);
    let (fd, opened) = destination();
    if fd >= 0 {
        out.write_to(fd);
    }
    if opened {
        // SAFETY: closes the file we opened.
        unsafe { libc::close(fd) };
    }
    REPORT_BUSY.store(false, Ordering::Release);
}

/// The whole report: text lines headed and ended with the pid, or one JSON object on one line.
pub(crate) fn write_report(out: &mut Text, json: bool) {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u64;
    let mut name = [0u8; 256];
    let program = program_name(&mut name);
    if json {
        out.str("{\"pid\":").number(pid).str(",\"program\":");
        out.json_str(program).str(",\"hakmem_stats\":{");
        write(out, true);
        out.str("},\"size_classes\":");
        write_classes(out, true);
        out.str(",\"tuning\":");
        crate::tuning::write(out, true);
        out.str(",\"call_sites\":");
        crate::sites::write(out, true, 10);
        out.str("}\n");
    } else {
        out.str("hakmem: ======== report of pid ").number(pid);
        out.str(", program ").push(program).str(" ========\n");
        write(out, false);
        write_classes(out, false);
        crate::tuning::write(out, false);
        crate::sites::write(out, false, 10);
        out.str("hakmem: ======== end of report of pid ")
            .number(pid);
        out.str(" ========\n");
    }
}

/// The program's name as it was started (argv[0], from /proc/self/cmdline; else glibc's
/// `program_invocation_name`), at most `buf.len()` bytes.
fn program_name(buf: &mut [u8]) -> &[u8] {
    let n = crate::os::read_file(c"/proc/self/cmdline", buf);
    let argv0 = buf[..n].split(|&b| b == 0).next().unwrap_or(b"");
    if !argv0.is_empty() {
        let len = argv0.len();
        return &buf[..len];
    }
    extern "C" {
        static program_invocation_name: *const libc::c_char;
    }
    // SAFETY: glibc sets it before main to argv[0], a NUL-terminated string it never frees.
    let name = unsafe { program_invocation_name };
    if name.is_null() {
        return b"?";
    }
    // SAFETY: as above.
    let s = unsafe { core::ffi::CStr::from_ptr(name) }.to_bytes();
    let len = s.len().min(buf.len());
    buf[..len].copy_from_slice(&s[..len]);
    &buf[..len]
}

/// Where the report goes: (descriptor, whether we opened it and must close it). The descriptor
/// is -1 when there is nowhere to write.
fn destination() -> (i32, bool) {
    if let Some(pattern) = crate::config::get().stats_file {
        let mut buf = [0u8; 4096];
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u64;
        let Some(path) = expand_pid(&pattern[..pattern.len() - 1], pid, &mut buf) else {
            crate::config::warn(&[b"HAKMEM_STATS_FILE is too long; writing to stderr"]);
            return (stderr_fd(), false);
        };
        // SAFETY: `path` is NUL-terminated (expand_pid).
        let fd = unsafe {
            libc::open(
                path.as_ptr() as *const libc::c_char,
                libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC,
                0o644,
            )
        };
        if fd >= 0 {
            return (fd, true);
        }
        let errno = crate::os::errno();
        let mut digits = [0u8; 20];
        let errno = crate::text::decimal(errno as u64, &mut digits);
        let path = &path[..path.len() - 1];
        crate::config::warn(&[
            b"cannot open HAKMEM_STATS_FILE ",
            path,
            b" (errno ",
            errno,
            b"); writing to stderr",
        ]);
    }
    (stderr_fd(), false)
}

/// `pattern` with each `%p` replaced by `pid` and `%%` by `%`, NUL-terminated in `buf`; None
/// when it does not fit.
fn expand_pid<'b>(pattern: &[u8], pid: u64, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let mut digits = [0u8; 20];
    let pid = crate::text::decimal(pid, &mut digits);
    let mut len = 0;
    let mut put = |s: &[u8], buf: &mut [u8]| -> Option<()> {
        buf.get_mut(len..len + s.len())?.copy_from_slice(s);
        len += s.len();
        Some(())
    };
    let mut i = 0;
    while i < pattern.len() {
        match (pattern[i], pattern.get(i + 1)) {
            (b'%', Some(b'p')) => {
                put(pid, buf)?;
                i += 2;
            }
            (b'%', Some(b'%')) => {
                put(b"%", buf)?;
                i += 2;
            }
            (b, _) => {
                put(&[b], buf)?;
                i += 1;
            }
        }
    }
    put(b"\0", buf)?;
    Some(&buf[..len])
}

/// The copy of stderr `keep_stderr` made: its descriptor (-1: none; -2: stderr was closed at
/// start-up, so nothing is written to descriptor 2), and its file's device and inode, to tell it
/// from a file the program opened later under the same number.
static KEPT_STDERR: AtomicI32 = AtomicI32::new(-1);
static KEPT_DEV: AtomicU64 = AtomicU64::new(0);
static KEPT_INO: AtomicU64 = AtomicU64::new(0);

/// The copy goes at this descriptor or above, out of the way of the low numbers programs expect
/// open() to return and of the ones shells redirect.
const KEPT_STDERR_MIN_FD: i32 = 512;

/// (device, inode) of the file open at `fd`, or None if `fd` is not open.
fn file_id(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: an all-zero stat is valid; fstat fills it or fails.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: fstat writes the struct we pass.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some((st.st_dev, st.st_ino))
}

/// Keeps a copy of stderr for the report (close-on-exec, at a high descriptor). Called once, at
/// start-up, when `HAKMEM_STATS` is on.
pub(crate) fn keep_stderr() {
    let Some((dev, ino)) = file_id(2) else {
        KEPT_STDERR.store(-2, Ordering::Relaxed);
        return;
    };
    // SAFETY: duplicates descriptor 2, which is open.
    let mut fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, KEPT_STDERR_MIN_FD) };
    if fd < 0 {
        // EINVAL: the descriptor limit is lower; take the lowest free one.
        // SAFETY: as above.
        fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
    }
    if fd >= 0 {
        KEPT_DEV.store(dev, Ordering::Relaxed);
        KEPT_INO.store(ino, Ordering::Relaxed);
        KEPT_STDERR.store(fd, Ordering::Release);
    }
}

/// Where stderr output goes: the copy kept at start-up while it still is that file (a program
/// may close any descriptor, and open another file under its number), else descriptor 2, unless
/// stderr was closed at start-up (-1: nowhere).
pub(crate) fn stderr_fd() -> i32 {
    let fd = KEPT_STDERR.load(Ordering::Acquire);
    if fd == -2 {
        return -1;
    }
    if fd >= 0 {
        let kept = (
            KEPT_DEV.load(Ordering::Relaxed),
            KEPT_INO.load(Ordering::Relaxed),
        );
        if file_id(fd) == Some(kept) {
            return fd;
        }
    }
    2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_text(f: impl FnOnce(&mut Text)) -> String {
        let mut buf = vec![0u8; REPORT_CAPACITY];
        let mut t = Text::new(&mut buf);
        f(&mut t);
        assert!(!t.truncated());
        String::from_utf8(t.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn counters_and_gauges_move_with_work() {
        let _serial = crate::tests::serial();
        let before = snapshot();
        let blocks: Vec<usize> = (0..10_000)
            .map(|i| unsafe { crate::malloc(32 + i % 200) } as usize)
            .collect();
        let mid = snapshot();
        for &b in &blocks {
            unsafe { crate::free(b as *mut u8) };
        }
        let big = unsafe { crate::malloc(8 << 20) };
        let with_big = snapshot();
        unsafe { crate::free(big) };
        let after = snapshot();
        assert!(after.refills > before.refills);
        assert!(after.flushes > before.flushes);
        assert!(after.large_allocs > before.large_allocs);
        assert!(after.large_frees > before.large_frees);
        // Other tests run at the same time, and some format slabs or take BigCache blocks
        // without the allocator's entry points: only totals and peaks are checked here; the
        // figures now are, in a process alone, by tests/c/faults/abi.c and tests/exit_report.rs.
        // 10,000 blocks of 32-231 bytes are at least 320 KB of slabs.
        assert!(mid.slab_bytes_peak >= 320_000, "{mid:?}");
        assert!(with_big.large_bytes_peak >= 8 << 20);
        assert!(with_big.large_bytes_total >= before.large_bytes_total + (8 << 20));
        assert!(after.mapped_bytes_peak >= 8 << 20);
        let refills = class_refills();
        assert!(refills[crate::size_class::class_of(32)] > 0);
        let text = with_text(|t| write(t, false));
        assert!(text.starts_with("hakmem: memory"), "{text}");
        assert!(text.contains("\nhakmem:   refills "), "{text}");
        assert!(text.contains("\nhakmem:   in large blocks "), "{text}");
    }

    #[test]
    fn resident_bytes_are_read() {
        let (rss, peak) = resident_bytes();
        assert!(rss > 0 && peak >= rss, "{rss} {peak}");
    }

    #[test]
    fn the_report_names_the_process_and_its_json_is_one_line() {
        let _serial = crate::tests::serial();
        let p = unsafe { crate::malloc(100) };
        let text = with_text(|t| write_report(t, false));
        let pid = std::process::id();
        assert!(
            text.starts_with(&format!("hakmem: ======== report of pid {pid}, program /")),
            "{text}"
        );
        assert!(text.contains("hakmem: size classes"), "{text}");
        assert!(text.ends_with(&format!("end of report of pid {pid} ========\n")));
        let json = with_text(|t| write_report(t, true));
        assert!(json.starts_with(&format!("{{\"pid\":{pid},\"program\":\"/")));
        assert!(
            json.ends_with("}\n") && json.matches('\n').count() == 1,
            "{json}"
        );
        assert!(json.contains(",\"size_classes\":[{\"class\":"), "{json}");
        unsafe { crate::free(p) };
    }

    #[test]
    fn stats_file_names_get_the_pid() {
        let mut buf = [0u8; 64];
        assert_eq!(
            expand_pid(b"/tmp/r.%p.json", 4242, &mut buf),
            Some(&b"/tmp/r.4242.json\0"[..])
        );
        assert_eq!(
            expand_pid(b"%p-%%p-%x-%", 7, &mut buf),
            Some(&b"7-%p-%x-%\0"[..])
        );
        assert_eq!(expand_pid(&[b'a'; 64], 7, &mut buf), None);
        assert_eq!(
            expand_pid(&[b'a'; 63], 7, &mut buf).map(|p| p.len()),
            Some(64)
        );
    }
}
