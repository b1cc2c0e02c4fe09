//! The scenarios, grouped in suites, and what one run of a scenario returns.

pub mod extended;
pub mod fastpath;
pub mod larson;
pub mod learn;
pub mod seed;

use crate::alloc::Alloc;
use serde::{Deserialize, Serialize};

pub const PAGE: usize = 4096;
pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;

/// Larson's parameters (see `suites/larson.rs`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LarsonParams {
    pub secs: f64,
    pub min: usize,
    pub max: usize,
    pub chunks: usize,
    pub seed: u64,
    pub threads: usize,
}

/// What a worker needs to run one scenario.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Params {
    /// Work multiplier: 1.0 for the default run, less for `--quick`, more for `--full`.
    pub scale: f64,
    /// Thread count for the "N threads" scenarios (defaults to the core count).
    pub threads: usize,
    /// Larson's parameters for `larson/tput` and `larson/pf` respectively.
    pub larson_tput: LarsonParams,
    pub larson_pf: LarsonParams,
}

impl Params {
    /// `n` scaled by the work multiplier, at least 1.
    pub fn n(&self, n: usize) -> usize {
        ((n as f64 * self.scale).round() as usize).max(1)
    }
}

/// One measured run of a scenario, as the scenario itself sees it.
#[derive(Default)]
pub struct Outcome {
    /// Operations done (cycles for `seed`, alloc/free pairs or replacements elsewhere).
    pub ops: u64,
    /// Wall time of the measured section.
    pub elapsed_ns: u64,
    /// Per-operation times when the scenario times each one (seed): gives median, P95, P99.
    pub per_op_ns: Option<Vec<u64>>,
    /// Whether ops/s is a meaningful figure for this scenario.
    pub throughput: bool,
    /// A value derived from the memory read back, so the work cannot be optimised away.
    pub checksum: u64,
}

/// A scenario's identity and description.
pub struct Scenario {
    pub suite: &'static str,
    pub name: &'static str,
    pub what: &'static str,
}

impl Scenario {
    pub fn id(&self) -> String {
        format!("{}/{}", self.suite, self.name)
    }
}

pub const SUITES: [&str; 5] = ["seed", "fastpath", "larson", "extended", "learn"];

/// Suites that run only when asked for by `--suite` or `--scenario` (not in the default run).
pub const OPT_IN: [&str; 1] = ["learn"];

pub const SCENARIOS: &[Scenario] = &[
    Scenario { suite: "seed", name: "json", what: "64 KiB x 1000: allocate, touch every page, free; ns per cycle" },
    Scenario { suite: "seed", name: "mir", what: "256 KiB x 100: allocate, touch every page, free; ns per cycle" },
    Scenario { suite: "seed", name: "vm", what: "2 MiB x 10: allocate, touch every page, free; ns per cycle" },
    Scenario { suite: "seed", name: "mixed", what: "json, mir and vm cycles interleaved (1000:100:10); ns per cycle" },
    Scenario { suite: "fastpath", name: "lifo-1t", what: "malloc+free pairs 16..1024 B, batches of 64 freed in reverse order, 1 thread" },
    Scenario { suite: "fastpath", name: "random-1t", what: "malloc+free pairs 16..1024 B, batches of 64 freed in random order, 1 thread" },
    Scenario { suite: "fastpath", name: "lifo-nt", what: "as lifo-1t on N threads at once (N = --threads, default: cores)" },
    Scenario { suite: "fastpath", name: "random-nt", what: "as random-1t on N threads at once" },
    Scenario { suite: "fastpath", name: "cross-thread", what: "one thread allocates 16..1024 B in batches of 64, another frees them (remote frees); ns per block" },
    Scenario { suite: "larson", name: "tput", what: "Larson server benchmark, 8..128 B, 1024 blocks per thread; ops/s" },
    Scenario { suite: "larson", name: "pf", what: "Larson server benchmark, 2..32 KiB, 10000 blocks per thread; ops/s" },
    Scenario { suite: "extended", name: "threads", what: "8 threads x 1000 allocs per round, each freed by the next thread" },
    Scenario { suite: "extended", name: "fragmentation", what: "20000 small blocks, free every other one, fill with larger ones, repeat" },
    Scenario { suite: "extended", name: "long-running", what: "10^6 random alloc/free ops over 10000 slots, 16 B..4 KiB and 1 % 64 KiB" },
    Scenario { suite: "extended", name: "web-server", what: "requests of 16 blocks: 80 % < 1 KiB, 15 % 1-64 KiB, 5 % 64-256 KiB" },
    Scenario { suite: "extended", name: "lifetimes", what: "70 % freed at once, 25 % after ~1000 ops, 5 % kept to the end" },
    Scenario { suite: "extended", name: "seq-access", what: "32 x 1 MiB blocks written and read back line by line in order" },
    Scenario { suite: "extended", name: "random-access", what: "32 x 1 MiB blocks written and read back line by line in random order" },
    Scenario { suite: "extended", name: "realloc-heavy", what: "50 % realloc (grow and shrink, contents checked), 50 % alloc/free" },
    Scenario { suite: "extended", name: "edge-cases", what: "1-byte blocks, alloc_zeroed of dirty memory, realloc to 1 B and back, huge request -> null" },
    Scenario { suite: "extended", name: "alignment", what: "blocks aligned to 64 B and 4 KiB, alignment checked, 16 B..8 KiB" },
    Scenario { suite: "learn", name: "vm", what: "hakmem only, per strategy, for 0.75 s per unit: the seed VM cycle (2 MiB, every page touched)" },
    Scenario { suite: "learn", name: "mixed", what: "hakmem only, per strategy, for 0.75 s per unit: the seed MIXED cycle list (64 KiB, 256 KiB, 2 MiB)" },
    Scenario { suite: "learn", name: "pressure", what: "hakmem only, per strategy, for 0.75 s per unit: crests of ~40 MiB of 300 KiB..1 MiB blocks, idle-ish troughs" },
    Scenario { suite: "learn", name: "phase", what: "hakmem only, per strategy, for 0.75 s per unit: small-object churn, then 256 KiB..4 MiB block churn" },
    Scenario { suite: "learn", name: "larson", what: "hakmem only, per strategy, for 0.75 s per unit: Larson's server pattern (8..1000 B, 5000 blocks per thread, cross-thread frees)" },
    Scenario { suite: "learn", name: "warm-start", what: "hakmem, learner (elo) on learn/pressure twice with one HAKMEM_PLAYBOOK file: cold, then warm" },
    Scenario { suite: "learn", name: "cost", what: "hakmem, the 1-thread and N-thread fastpath scenarios with everything off, HAKMEM_LEARN=elo and HAKMEM_SITES=1: difference in CPU time/op" },
];

pub fn find(id: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.id() == id)
}

/// Runs scenario `id` once on allocator `a`.
pub fn run<A: Alloc>(a: &A, id: &str, p: &Params) -> Result<Outcome, String> {
    Ok(match id {
        "seed/json" => seed::json(a, p),
        "seed/mir" => seed::mir(a, p),
        "seed/vm" => seed::vm(a, p),
        "seed/mixed" => seed::mixed(a, p),
        "fastpath/lifo-1t" => fastpath::run(a, p, fastpath::Order::Lifo, 1),
        "fastpath/random-1t" => fastpath::run(a, p, fastpath::Order::Random, 1),
        "fastpath/lifo-nt" => fastpath::run(a, p, fastpath::Order::Lifo, p.threads),
        "fastpath/random-nt" => fastpath::run(a, p, fastpath::Order::Random, p.threads),
        "fastpath/cross-thread" => fastpath::cross_thread(a, p),
        "larson/tput" => larson::run(a, &p.larson_tput),
        "larson/pf" => larson::run(a, &p.larson_pf),
        "extended/threads" => extended::threads(a, p),
        "extended/fragmentation" => extended::fragmentation(a, p),
        "extended/long-running" => extended::long_running(a, p),
        "extended/web-server" => extended::web_server(a, p),
        "extended/lifetimes" => extended::lifetimes(a, p),
        "extended/seq-access" => extended::access(a, p, false),
        "extended/random-access" => extended::access(a, p, true),
        "extended/realloc-heavy" => extended::realloc_heavy(a, p),
        "extended/edge-cases" => extended::edge_cases(a, p),
        "extended/alignment" => extended::alignment(a, p),
        "learn/vm" => learn::vm(a, p),
        "learn/mixed" => learn::mixed(a, p),
        "learn/pressure" => learn::pressure(a, p),
        "learn/phase" => learn::phase(a, p),
        "learn/larson" => learn::larson(a, p),
        _ => return Err(format!("unknown scenario `{id}`")),
    })
}

/// Allocates or aborts the worker with a clear message: a benchmark must not go on with a null block.
#[inline(always)]
pub fn must<T>(p: *mut T, what: &str, size: usize) -> *mut T {
    if p.is_null() {
        oom(what, size)
    }
    p
}

#[cold]
#[inline(never)]
fn oom(what: &str, size: usize) -> ! {
    panic!("allocation failed in {what}: {size} bytes");
}

/// Writes `tag` into the first byte of every page of the block and its last byte.
///
/// # Safety
/// `p` must be valid for writes of `size` (> 0) bytes.
#[inline(always)]
pub unsafe fn touch_pages(p: *mut u8, size: usize, tag: u8) {
    let mut off = 0;
    while off < size {
        // SAFETY: off < size.
        unsafe { p.add(off).write_volatile(tag) };
        off += PAGE;
    }
    // SAFETY: size > 0.
    unsafe { p.add(size - 1).write_volatile(tag) };
}

/// Reads back what [`touch_pages`] wrote; panics (failing the worker) on a mismatch. Returns a sum.
///
/// # Safety
/// `p` must be valid for reads of `size` (> 0) bytes.
#[inline(always)]
pub unsafe fn check_pages(p: *const u8, size: usize, tag: u8) -> u64 {
    let mut sum = 0u64;
    let mut off = 0;
    while off < size {
        // SAFETY: off < size.
        let v = unsafe { p.add(off).read_volatile() };
        sum += v as u64;
        off += PAGE;
    }
    // SAFETY: size > 0.
    let last = unsafe { p.add(size - 1).read_volatile() };
    if last != tag || sum != tag as u64 * size.div_ceil(PAGE) as u64 {
        corrupt(p as usize, size);
    }
    sum
}

/// Marks a small block: its first and last byte get `tag`.
///
/// # Safety
/// `p` must be valid for writes of `size` (> 0) bytes.
#[inline(always)]
pub unsafe fn mark(p: *mut u8, size: usize, tag: u8) {
    // SAFETY: size > 0, so both offsets are in the block.
    unsafe {
        p.write_volatile(tag);
        p.add(size - 1).write_volatile(tag);
    }
}

/// Checks a mark made by [`mark`]; panics on a mismatch.
///
/// # Safety
/// `p` must be valid for reads of `size` (> 0) bytes.
#[inline(always)]
pub unsafe fn check_mark(p: *const u8, size: usize, tag: u8) -> u64 {
    // SAFETY: size > 0, so both offsets are in the block.
    let (a, b) = unsafe { (p.read_volatile(), p.add(size - 1).read_volatile()) };
    if a != tag || b != tag {
        corrupt(p as usize, size);
    }
    a as u64
}

#[cold]
#[inline(never)]
pub fn corrupt(addr: usize, size: usize) -> ! {
    panic!("memory check failed: block {addr:#x} of {size} bytes does not hold what was written");
}

/// A tag byte that varies with `i` and is never 0 (so zeroed memory does not pass a check).
#[inline(always)]
pub fn tag(i: usize) -> u8 {
    (i % 251) as u8 + 1
}

/// A raw block that may be handed to another thread.
#[derive(Clone, Copy)]
pub struct Block {
    pub p: *mut u8,
    pub size: usize,
    pub tag: u8,
}

// SAFETY: a Block is only a pointer and a size; scenarios hand blocks over explicitly and free each once.
unsafe impl Send for Block {}

impl Block {
    pub const EMPTY: Block = Block {
        p: core::ptr::null_mut(),
        size: 0,
        tag: 0,
    };
}
