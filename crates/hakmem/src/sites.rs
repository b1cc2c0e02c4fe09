//! Call-site profiles (telemetry): which call sites allocate, how much, what sizes, and how long
//! their blocks live (`learn::site`).
//!
//! On with `HAKMEM_SITES=1`, or whenever `HAKMEM_STATS` is on (the learner does not use them). Sites come from
//! `hak_alloc_at(size, site)` / `hak_free_at(p, site)`, and from `malloc`'s caller (the return
//! address the preload passes in) on allocations that take a slow path: thread-cache refills and
//! large blocks. Fast-path allocations are never looked at. Of those events, 1 in `PERIOD` is
//! recorded, under a try-lock (a busy lock skips the sample): a slow path costs hundreds of
//! nanoseconds, so recording (a scan of 64 profiles) adds about 1 % to it. A free is recorded exactly when its
//! allocation was, so each site's live count (and so its Little's-law lifetime) is exact for the
//! sampled blocks: a sampled large block remembers its site in its header; a sampled
//! `hak_alloc_at` block is remembered in a small list of tracked blocks (`TRACKED`; when it is
//! full, no more are sampled until some are freed) that `hak_free_at` consults. A small block
//! from `malloc` is freed by `free`, which names no site, so those sites report no lifetime.
//!
//! The exit report names each code address as the object file it lies in and its offset there
//! (`module_of`), which `addr2line` turns into a function and line.

use crate::learn::site::SiteTable;
use crate::lock::Lock;
use crate::text::Text;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// One slow-path event in this many is recorded (a power of two).
pub const PERIOD: u64 = 16;

/// Most `hak_alloc_at` blocks tracked at once.
const TRACKED: usize = 256;

struct State {
    table: SiteTable,
    /// Addresses of sampled `hak_alloc_at` blocks not yet freed.
    tracked: [usize; TRACKED],
    tracked_len: usize,
}

struct Global {
    lock: Lock,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is only touched with `lock` held.
unsafe impl Sync for Global {}

static GLOBAL: Global = Global {
    lock: Lock::new(),
    state: UnsafeCell::new(State {
        table: SiteTable::new(),
        tracked: [0; TRACKED],
        tracked_len: 0,
    }),
};

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Events seen (a racy count: it only spaces the samples out).
static EVENTS: AtomicU64 = AtomicU64::new(0);
static SAMPLES: AtomicU32 = AtomicU32::new(0);
/// Blocks in `State::tracked`, read without the lock so `hak_free_at` skips it when empty.
static TRACKED_LEN: AtomicU32 = AtomicU32::new(0);
/// Ticks and monotonic nanoseconds at `init`, to turn tick lifetimes into microseconds.
static START_TICKS: AtomicU64 = AtomicU64::new(0);
static START_NS: AtomicU64 = AtomicU64::new(0);

/// Turns profiling on if the configuration asks for it. Called once, from `init::ensure_init`.
pub fn init() {
    let c = crate::config::get();
    if c.sites || c.stats != 0 {
        START_TICKS.store(crate::tuning::ticks(), Ordering::Relaxed);
        START_NS.store(crate::os::monotonic_ns(), Ordering::Relaxed);
        ENABLED.store(true, Ordering::Relaxed);
    }
}

#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether this event is one of the sampled 1 in 2^k.
#[inline]
fn sampled() -> bool {
    let n = EVENTS.load(Ordering::Relaxed);
    EVENTS.store(n.wrapping_add(1), Ordering::Relaxed);
    n.is_multiple_of(PERIOD)
}

/// An allocation of `size` bytes from `site` (0: unknown, ignored) on a slow path (small, mid or
/// large blocks alike). Returns whether it was recorded, so that its free can be too.
#[inline]
pub fn alloc(site: usize, size: usize) -> bool {
    if !enabled() || site == 0 {
        return false;
    }
    let hit = sampled();
    if !hit {
        return false;
    }
    record(|st, now| {
        st.table.record_alloc(site, size as u64, now);
        true
    })
}

/// The free of a large block whose allocation was recorded at `site`.
pub fn free(site: usize) {
    if enabled() && site != 0 {
        record_now(|st, now| {
            st.table.record_free(site, now);
        });
    }
}

/// `hak_alloc_at`: samples the allocation of block `p` (`size` bytes) from `site`, tracking `p`
/// so that its `hak_free_at` is recorded too.
pub fn alloc_block(p: usize, site: usize, size: usize) {
    if !enabled() || site == 0 || p == 0 || !sampled() {
        return;
    }
    record(|st, now| {
        if st.tracked_len == TRACKED {
            return false;
        }
        st.tracked[st.tracked_len] = p;
        st.tracked_len += 1;
        TRACKED_LEN.store(st.tracked_len as u32, Ordering::Relaxed);
        st.table.record_alloc(site, size as u64, now);
        true
    });
}

/// `hak_free_at`: records the free of `p` from `site` if its allocation was sampled.
pub fn free_block(p: usize, site: usize) {
    if !enabled() || TRACKED_LEN.load(Ordering::Relaxed) == 0 {
        return;
    }
    record_now(|st, now| {
        if let Some(i) = st.tracked[..st.tracked_len].iter().position(|&x| x == p) {
            st.tracked_len -= 1;
            st.tracked[i] = st.tracked[st.tracked_len];
            TRACKED_LEN.store(st.tracked_len as u32, Ordering::Relaxed);
            st.table.record_free(site, now);
        }
    });
}

/// Records a sampled allocation under the lock if it is free (a busy lock skips the sample).
#[cold]
fn record(f: impl FnOnce(&mut State, u64) -> bool) -> bool {
    if !GLOBAL.lock.try_lock() {
        return false;
    }
    record_locked(f)
}

/// Records a free whose allocation was recorded: it must not be skipped, so it waits.
#[cold]
fn record_now(f: impl FnOnce(&mut State, u64)) {
    GLOBAL.lock.lock();
    record_locked(|st, now| {
        f(st, now);
        true
    });
}

fn record_locked(f: impl FnOnce(&mut State, u64) -> bool) -> bool {
    // SAFETY: the lock is held.
    let done = f(unsafe { &mut *GLOBAL.state.get() }, crate::tuning::ticks());
    SAMPLES.fetch_add(1, Ordering::Relaxed);
    GLOBAL.lock.unlock();
    done
}

/// Most sites a report shows.
const MAX_REPORTED: usize = 16;

/// One site's line in the report, copied out under the lock.
#[derive(Clone, Copy, Default)]
struct Row {
    site: usize,
    allocs: u64,
    frees: u64,
    p50: u64,
    p95: u64,
    lifetime_us: Option<u64>,
}

/// Appends the top `n` sites (at most `MAX_REPORTED`) by sampled allocations: text lines, or a
/// JSON object. Each code address is named as module + offset (`module_of`).
pub fn write(out: &mut Text, json: bool, n: usize) {
    let mut rows = [Row::default(); MAX_REPORTED];
    let (len, period) = top_sites(&mut rows[..n.min(MAX_REPORTED)]);
    let samples = SAMPLES.load(Ordering::Relaxed) as u64;
    let mut exe = [0u8; 4096];
    let exe = exe_path(&mut exe);
    if json {
        out.str("{\"profiled\":")
            .str(if enabled() { "true" } else { "false" });
        out.str(",\"sample_period\":").number(period);
        out.str(",\"samples\":").number(samples);
        out.str(",\"sites\":[");
    } else if !enabled() {
        out.str("hakmem: call sites: not profiled (HAKMEM_SITES=1 or HAKMEM_STATS turn it on)\n");
        return;
    } else {
        out.str("hakmem: call sites: 1 in ")
            .number(period)
            .str(" slow-path events sampled, ");
        out.number(samples)
            .str(" samples; the top ")
            .number(len as u64);
        out.str(" by sampled allocations\n");
        out.str("hakmem:   (allocs, frees: sampled ones; size_p50, size_p95: requested bytes; lifetime_us: mean\n");
        out.str("hakmem:   lifetime of the sampled blocks, - when their frees are not seen (small blocks from\n");
        out.str(
            "hakmem:   malloc); where: the module and offset to give addr2line -e MODULE OFFSET)\n",
        );
        out.str("hakmem:   site");
        for (col, name) in [
            (32, "allocs"),
            (42, "frees"),
            (52, "size_p50"),
            (62, "size_p95"),
            (75, "lifetime_us"),
        ] {
            out.right(col, |t| {
                t.str(name);
            });
        }
        out.str("  where\n");
    }
    for (rank, r) in rows[..len].iter().enumerate() {
        let module = module_of(r.site, exe);
        if json {
            if rank > 0 {
                out.str(",");
            }
            out.str("{\"site\":\"")
                .hex(r.site as u64)
                .str("\",\"module\":");
            match module {
                Some((path, offset)) => {
                    out.json_str(path).str(",\"offset\":\"");
                    out.hex(offset as u64).str("\"")
                }
                None => out.str("null,\"offset\":null"),
            };
            out.str(",\"allocs\":").number(r.allocs);
            out.str(",\"frees\":").number(r.frees);
            out.str(",\"size_p50\":").number(r.p50);
            out.str(",\"size_p95\":").number(r.p95);
            out.str(",\"lifetime_us\":");
            match r.lifetime_us {
                Some(l) => out.number(l),
                None => out.str("null"),
            };
            out.str("}");
        } else {
            out.str("hakmem:   ").hex(r.site as u64);
            for (col, v) in [(32, r.allocs), (42, r.frees), (52, r.p50), (62, r.p95)] {
                out.right(col, |t| {
                    t.number(v);
                });
            }
            out.right(75, |t| match r.lifetime_us {
                Some(l) => {
                    t.number(l);
                }
                None => {
                    t.str("-");
                }
            });
            if let Some((path, offset)) = module {
                out.str("  ").push(path).str("+").hex(offset as u64);
            }
            out.str("\n");
        }
    }
    if json {
        out.str("]}");
    }
}

/// Copies the sites with the most sampled allocations into `rows`, under the lock (and nothing
/// else: `module_of` takes the loader's lock, which must not nest inside ours). Returns how many
/// and the sampling period.
fn top_sites(rows: &mut [Row]) -> (usize, u64) {
    GLOBAL.lock.lock();
    // SAFETY: the lock is held.
    let st = unsafe { &*GLOBAL.state.get() };
    let now = crate::tuning::ticks();
    let ns = crate::os::monotonic_ns().saturating_sub(START_NS.load(Ordering::Relaxed)) as f64;
    let ticks = now
        .saturating_sub(START_TICKS.load(Ordering::Relaxed))
        .max(1) as f64;
    let us_per_tick = ns / ticks / 1000.0;
    let mut refs: [Option<&crate::learn::site::SiteProfile>; crate::learn::site::MAX_SITES] =
        [None; crate::learn::site::MAX_SITES];
    let mut len = 0;
    for p in st.table.iter() {
        refs[len] = Some(p);
        len += 1;
    }
    refs[..len].sort_unstable_by_key(|p| core::cmp::Reverse(p.map_or(0, |p| p.allocs)));
    let len = len.min(rows.len());
    for (row, p) in rows.iter_mut().zip(refs[..len].iter().flatten()) {
        *row = Row {
            site: p.site,
            allocs: p.allocs,
            frees: p.frees,
            p50: p.sizes.p50().unwrap_or(0),
            p95: p.sizes.p95().unwrap_or(0),
            lifetime_us: match p.frees {
                0 => None,
                _ => p.lifetime(now).map(|t| (t as f64 * us_per_tick) as u64),
            },
        };
    }
    let period = PERIOD;
    GLOBAL.lock.unlock();
    (len, period)
}

/// The start of glibc's `struct link_map` (<link.h>), which `dladdr1` hands back.
#[repr(C)]
struct LinkMap {
    /// The difference between the addresses in the object file and in memory.
    l_addr: usize,
    /// The path it was loaded from; empty for the main program.
    l_name: *const libc::c_char,
}

const RTLD_DL_LINKMAP: libc::c_int = 2;

/// Module names longer than this are cut to their last this many bytes in the report.
const MAX_MODULE_NAME: usize = 512;

/// The object file holding code address `addr` (its path; the main program's is `exe`) and
/// `addr`'s offset in it: the address minus the object's load bias, which is what
/// `addr2line -e MODULE OFFSET` wants, for position-independent objects and others alike.
/// None for an address in no loaded object (an id given to `hak_alloc_at`, JIT code).
/// `dladdr1` takes the loader's lock and does not allocate.
fn module_of(addr: usize, exe: &[u8]) -> Option<(&[u8], usize)> {
    // SAFETY: an all-zero Dl_info is valid; dladdr1 fills it and the link map pointer, or fails.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    let mut map: *mut libc::c_void = core::ptr::null_mut();
    // SAFETY: dladdr1 only reads the loader's tables and writes the two outputs we pass.
    let found = unsafe {
        libc::dladdr1(
            addr as *const libc::c_void,
            &mut info,
            &mut map,
            RTLD_DL_LINKMAP,
        )
    };
    if found == 0 || map.is_null() {
        return None;
    }
    // SAFETY: with RTLD_DL_LINKMAP, `map` is the object's link map, which the loader keeps
    // while the object is loaded; its name is NUL-terminated.
    let (bias, name) = unsafe {
        let m = &*(map as *const LinkMap);
        let name = if m.l_name.is_null() {
            &b""[..]
        } else {
            core::ffi::CStr::from_ptr(m.l_name).to_bytes()
        };
        (m.l_addr, name)
    };
    let path = if name.is_empty() { exe } else { name };
    let path = &path[path.len().saturating_sub(MAX_MODULE_NAME)..];
    Some((path, addr.wrapping_sub(bias)))
}

/// The main program's path (/proc/self/exe), or empty.
fn exe_path(buf: &mut [u8]) -> &[u8] {
    // SAFETY: readlink writes at most `buf.len()` bytes into our buffer.
    let n = unsafe {
        libc::readlink(
            c"/proc/self/exe".as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
        )
    };
    if n <= 0 {
        return b"";
    }
    let n = n as usize;
    &buf[..n]
}

/// The lock the fork handlers hold across `fork()` (`fork.rs`).
pub fn lock() -> &'static Lock {
    &GLOBAL.lock
}
