//! hakmem: a general-purpose memory allocator that tunes itself to the program it runs in.
//!
//! Use it as the global allocator:
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: hakmem::Hakmem = hakmem::Hakmem;
//!
//! fn main() {
//!     let v: Vec<u64> = (0..1000).collect();
//!     assert_eq!(v.iter().sum::<u64>(), 499_500);
//!     // What the allocator did so far, and the report `HAKMEM_STATS=1` prints at exit.
//!     let s = hakmem::stats::snapshot();
//!     assert!(s.superslabs_live >= 1);
//! }
//! ```
//!
//! Its behaviour is set by `HAKMEM_*` environment variables, read once at the first allocation
//! (README.md lists them): `HAKMEM_LEARN=elo` turns the online tuning on, `HAKMEM_PLAYBOOK=FILE`
//! keeps what it learned for the next run, `HAKMEM_STATS=1` prints a report at exit. From Rust,
//! [`stats::snapshot`] reads the counters, [`stats::print`] prints the report now,
//! [`tuning::status`] says what the tuner runs and [`tuning::finish`] saves the playbook now.
//!
//! The C allocation functions (`malloc`, `free`, ...) are exported by the `hakmem-preload` crate as
//! `libhakmem.so`, for `LD_PRELOAD` or linking; the functions of the same names here are the core
//! they call.
//!
//! How it works: a request up to 256 KiB is a size class served from this thread's cache,
//! refilled from slabs on 2 MiB SuperSlabs; larger requests get their own mapping, recycled by
//! BigCache; freed memory goes back to the OS after a purge delay. docs/DESIGN.md in the
//! repository describes the layers; each source file starts with what it holds. The core never
//! allocates through any other allocator: everything comes from mmap and statics.
//!
//! A thread's heap, its bins and its slabs are shared with other threads (see `heap.rs`), so they
//! are only ever reached through raw pointers and shared references, never `&mut`.

#![warn(unsafe_op_in_unsafe_fn)]
// Without std where the core needs nothing of it (the thread-local slots are static TLS there):
// libhakmem.so then links no std, whose panic-time backtrace code alone was 180 KiB of its 356 KiB
// of code, and no libgcc_s.
#![cfg_attr(
    all(
        target_arch = "x86_64",
        target_os = "linux",
        not(test),
        not(miri),
        not(loom)
    ),
    no_std
)]

mod bigcache;
mod check;
mod clock;
mod config;
mod fork;
mod heap;
mod heap_pool;
mod init;
mod knobs;
mod large;
mod learn;
mod list;
mod lock;
mod orphans;
mod os;
mod pagemap;
mod purge;
mod registry;
mod remote;
mod remote_free;
mod sites;
mod size_class;
mod slab;
pub mod stats;
mod superslab;
mod sync;
mod text;
mod thread_cache;
mod thread_heap;
pub mod tuning;
mod vdso;

#[doc(hidden)]
pub mod abi;

/// The strategies the tuner chooses among: a strategy is a vector of knob values (thread-cache
/// depth, refill size, purge delay, BigCache budget, ...); `HAKMEM_STRATEGY` names one of
/// `DEFAULTS` to run fixed.
pub mod strategy {
    pub use crate::learn::strategy::{default_name, Strategy, DEFAULTS};
}

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;
use core::sync::atomic::Ordering;
use registry::Kind;
use remote::Block;
use size_class::{class_of, class_size, MID_MAX, MIN_ALIGN};

/// The hakmem allocator, for `#[global_allocator] static A: hakmem::Hakmem = hakmem::Hakmem;`.
pub struct Hakmem;

/// Allocates `size` bytes aligned to 16. Null with errno ENOMEM when memory is exhausted.
///
/// # Safety
/// Always safe to call; unsafe because it returns raw memory.
#[inline]
pub unsafe fn malloc(size: usize) -> *mut u8 {
    // SAFETY: `malloc_at` has no precondition.
    unsafe { malloc_at(size, 0) }
}

/// `malloc` called from `site` (the caller's return address, or any id; 0: unknown). The site
/// is only looked at on the slow paths, where `sites.rs` may sample it.
///
/// # Safety
/// Always safe to call; unsafe because it returns raw memory.
#[inline]
pub unsafe fn malloc_at(size: usize, site: usize) -> *mut u8 {
    // SAFETY: both are `malloc`s (`malloc_at` has no precondition).
    unsafe {
        malloc_with(
            size,
            |size| malloc_miss_at(size, site),
            |size| malloc_above_table_at(size, site),
        )
    }
}

/// `malloc` whose slow paths are the caller's: `miss` (for a size up to `TABLE_MAX` whose bin is
/// empty) and `above` (larger sizes). `malloc_at` passes `malloc_miss_at` and
/// `malloc_above_table_at` with its site; the C `malloc` passes shims that take the return address
/// on the stack as the call site and go on to them: the fast path reaches them by a jump and has
/// no stack frame, so that address is `malloc`'s caller.
///
/// # Safety
/// `miss` and `above` are `malloc`s (they may be called with any size).
#[inline(always)]
pub unsafe fn malloc_with(
    size: usize,
    miss: impl FnOnce(usize) -> *mut u8,
    above: impl FnOnce(usize) -> *mut u8,
) -> *mut u8 {
    if size <= size_class::TABLE_MAX {
        // SAFETY: `size <= TABLE_MAX`.
        let b = unsafe { pop_table_size(size) };
        if !b.is_null() {
            return b;
        }
        return miss(size);
    }
    above(size)
}

/// A block from this thread's bin for requests of `size` bytes, or null if the bin is empty.
///
/// # Safety
/// `size <= TABLE_MAX`.
#[inline(always)]
unsafe fn pop_table_size(size: usize) -> *mut u8 {
    let heap = thread_cache::current();
    // SAFETY: this thread's heap (or the empty heap, whose bins are empty) is valid;
    // `size <= TABLE_MAX` (the caller's contract).
    let bin = unsafe { thread_cache::small_bin(heap, size) };
    // SAFETY: this thread is the bin's owner, the only one to pop it (shared reference: others
    // may read its head).
    unsafe { (*bin).pop() as *mut u8 }
}

/// `malloc_at` of a size up to `TABLE_MAX` whose bin was empty.
///
/// # Safety
/// As `malloc_at`.
#[inline(never)]
pub unsafe extern "C" fn malloc_miss_at(size: usize, site: usize) -> *mut u8 {
    // SAFETY: the class is that of `size`, which is at most MID_MAX.
    unsafe { alloc_class_slow(size, site, class_of(size)) }
}

/// `malloc_at` of more than `TABLE_MAX` bytes (also what `malloc_with`'s shims go to).
///
/// # Safety
/// As `malloc_at`.
#[inline(never)]
pub unsafe extern "C" fn malloc_above_table_at(size: usize, site: usize) -> *mut u8 {
    if size <= MID_MAX {
        let c = class_of(size);
        let heap = thread_cache::current();
        // SAFETY: this thread's heap (or the empty heap, whose bins are empty) is valid and this
        // thread is its owner, the only one to pop its bins; class_of(size) < NUM_CLASSES.
        let b = unsafe { (*heap).bins.get_unchecked(c).pop() };
        if !b.is_null() {
            return b as *mut u8;
        }
        // SAFETY: `c` is the class of `size`, which is at most MID_MAX.
        return unsafe { alloc_class_slow(size, site, c) };
    }
    // SAFETY: `size` is above MID_MAX.
    unsafe { alloc_large_at(size, site) }
}

/// A large block for `malloc_at`, its site recorded when sampled.
///
/// # Safety
/// Always safe to call; unsafe because it returns raw memory.
#[cold]
unsafe fn alloc_large_at(size: usize, site: usize) -> *mut u8 {
    let p = alloc_large(size, MIN_ALIGN).0;
    if !p.is_null() && sites::enabled() {
        let h = large::header_of(p as usize, Kind::Large);
        // SAFETY: `p` is a large block just allocated with the standard alignment, so `h` is its
        // valid header, and this thread its only user.
        unsafe { (*h).site = if sites::alloc(site, size) { site } else { 0 } };
    }
    p
}

/// Refills this thread's cache for class `c` (creating the thread's heap if needed) and allocates
/// a block for a request of `size` bytes. In safe mode (where the caches stay empty, so every
/// allocation comes here) the block is one class up if needed to hold the canary.
///
/// # Safety
/// `c` is `class_of(size)` and `size <= MID_MAX`.
#[cold]
unsafe fn alloc_class_slow(size: usize, site: usize, c: usize) -> *mut u8 {
    if check::safe_mode() {
        // size <= MID_MAX here (malloc_at), so adding SAFE_EXTRA cannot wrap.
        if size + check::SAFE_EXTRA > MID_MAX {
            return alloc_large(size, MIN_ALIGN).0;
        }
        // SAFETY: the class holds `size` plus the canary, so arming it stays inside the block.
        return unsafe { alloc_checked(class_of(size + check::SAFE_EXTRA), size) };
    }
    if size > knobs::large_threshold() {
        // The strategy maps mid sizes above its threshold individually (and caches them).
        // SAFETY: `alloc_large_at` has no precondition (only its memory is raw).
        return unsafe { alloc_large_at(size, site) };
    }
    sites::alloc(site, size);
    // SAFETY: `c` < NUM_CLASSES (the caller's contract).
    unsafe { alloc_from_class(c) }
}

/// A block of class `c` from this thread's cache, refilled if empty.
///
/// # Safety
/// `c` < NUM_CLASSES.
unsafe fn alloc_from_class(c: usize) -> *mut u8 {
    let heap = thread_heap::current_or_create();
    if heap.is_null() {
        // The thread is exiting (its heap is gone) or there is no memory for a heap.
        let b = thread_heap::alloc_without_heap(c);
        return if b.is_null() {
            out_of_memory()
        } else {
            b as *mut u8
        };
    }
    // SAFETY: `current_or_create` gave this thread's heap, valid, and this thread is its owner
    // (the only one to pop, refill and flush it; all by shared reference).
    let heap = unsafe { &*heap };
    let b = heap.bins[c].pop();
    if !b.is_null() {
        return b as *mut u8;
    }
    if !heap.refill(c) {
        return out_of_memory();
    }
    heap.bins[c].pop() as *mut u8
}

/// Safe mode: a block of class `c` armed for a request of `size` bytes.
///
/// # Safety
/// `c` < NUM_CLASSES, and its blocks hold `size` bytes and the canary.
#[cold]
unsafe fn alloc_checked(c: usize, size: usize) -> *mut u8 {
    // SAFETY: `c` < NUM_CLASSES (the caller's contract).
    let p = unsafe { alloc_from_class(c) };
    if !p.is_null() {
        // SAFETY: `p` is a block of `class_size(c)` bytes this thread just got, room for `size`
        // bytes and the canary.
        unsafe { check::arm(p, size, class_size(c)) };
    }
    p
}

#[cold]
fn alloc_large(size: usize, align: usize) -> (*mut u8, bool) {
    if size > large::MAX_REQUEST {
        // Impossible whatever the caches hold: do not empty them trying.
        return (out_of_memory(), false);
    }
    init::ensure_init();
    purge::purge_if_due();
    let timer = tuning::Timer::start_large();
    let (mut p, mut zeroed) = large::alloc(size, align);
    if p.is_null() {
        release_cached_memory();
        (p, zeroed) = large::alloc(size, align);
        if p.is_null() {
            return (out_of_memory(), false);
        }
    }
    timer.stop(size);
    (p, zeroed)
}

#[cold]
fn out_of_memory() -> *mut u8 {
    os::set_errno(libc::ENOMEM);
    null_mut()
}

/// Frees a block from `malloc` and friends. Null is ignored; a pointer hakmem did not hand out,
/// or one inside a block, or a block just freed, is reported on stderr and the process aborts
/// (see `check.rs`).
///
/// # Safety
/// `p` is null or a live block from this allocator.
#[inline]
pub unsafe fn free(p: *mut u8) {
    // SAFETY: `p` is null or (the caller's contract) a live block of ours; null is ignored there.
    unsafe { free_as::<Free>(p) };
}

/// `free_sized`: `free`, with misuse reported as free_sized's.
///
/// # Safety
/// As `free`.
pub unsafe fn free_sized(p: *mut u8) {
    if !p.is_null() {
        // SAFETY: `p` is not null and (the caller's contract) a live block of ours.
        unsafe { free_as::<FreeSized>(p) };
    }
}

/// `free_aligned_sized`: `free`, with misuse reported as free_aligned_sized's.
///
/// # Safety
/// As `free`.
pub unsafe fn free_aligned_sized(p: *mut u8) {
    if !p.is_null() {
        // SAFETY: `p` is not null and (the caller's contract) a live block of ours.
        unsafe { free_as::<FreeAlignedSized>(p) };
    }
}

/// C++'s `operator delete` (every form but the array ones): `free`, with misuse reported as its.
///
/// # Safety
/// As `free`.
#[inline]
pub unsafe fn operator_delete(p: *mut u8) {
    // SAFETY: as `free`.
    unsafe { free_as::<OperatorDelete>(p) };
}

/// C++'s `operator delete[]` (every form): `free`, with misuse reported as its.
///
/// # Safety
/// As `free`.
#[inline]
pub unsafe fn operator_delete_array(p: *mut u8) {
    // SAFETY: as `free`.
    unsafe { free_as::<OperatorDeleteArray>(p) };
}

/// A function that frees a block, as misuse reports name it: the one the program called.
trait FreeFn {
    const NAME: &'static str;
}

struct Free;
impl FreeFn for Free {
    const NAME: &'static str = "free";
}

struct FreeSized;
impl FreeFn for FreeSized {
    const NAME: &'static str = "free_sized";
}

struct FreeAlignedSized;
impl FreeFn for FreeAlignedSized {
    const NAME: &'static str = "free_aligned_sized";
}

struct OperatorDelete;
impl FreeFn for OperatorDelete {
    const NAME: &'static str = "operator delete";
}

struct OperatorDeleteArray;
impl FreeFn for OperatorDeleteArray {
    const NAME: &'static str = "operator delete[]";
}

struct HakFreeAt;
impl FreeFn for HakFreeAt {
    const NAME: &'static str = "hak_free_at";
}

/// `free` of a pointer known not to be null (GlobalAlloc::dealloc never passes null).
///
/// # Safety
/// As `free_as`.
#[inline]
unsafe fn free_non_null(p: *mut u8) {
    // SAFETY: the caller's contract is `free_as`'s.
    unsafe { free_as::<Free>(p) }
}

/// Frees `p` on behalf of the C function `F` (null is ignored).
///
/// # Safety
/// `p` should be null or a live block of ours; misuse the checks here catch (a pointer not ours,
/// not a block's start, a block just freed) is reported.
#[inline(always)]
unsafe fn free_as<F: FreeFn>(p: *mut u8) {
    // The page map gives the record of `p`'s slab if it is in a SuperSlab, else a record whose
    // token is no thread's; a token that is not this thread's leaves for another thread's slab's
    // path or, for that zero record, the registry's (`free_not_own_from_map`). Every path that
    // leaves this function's fast path is a tail call that can return (the reports are behind
    // them), so the fast path needs no stack frame; each takes `p` first, in the register it
    // arrived in.
    match pagemap::record_of(p as usize) {
        // SAFETY: the map holds records of registered SuperSlabs (valid), and otherwise its own
        // first 256 bytes, mapped and always 0: a valid record of a slab no thread owns.
        Some(record) => unsafe { free_to_slab::<F, true>(record as *mut slab::Slab, p) },
        // SAFETY: the caller's contract is passed on.
        None => unsafe { free_by_registry::<F>(p) },
    }
}

/// `free_as`, where the page map did not lead to a slab (no map, or `p` in no SuperSlab it holds):
/// the registry says what `p`'s chunk holds.
///
/// # Safety
/// As `free_as`.
#[inline(never)]
unsafe fn free_by_registry<F: FreeFn>(p: *mut u8) {
    let addr = p as usize;
    let (kind, chunk) = registry::kind_and_base_of(addr);
    match kind {
        // SAFETY: the registry says `addr`'s chunk is a SuperSlab of 64 KiB slabs, so its header,
        // with the slab record of `addr`, is mapped.
        Kind::SuperSlab => unsafe {
            free_to_slab::<F, false>(superslab::small_slab_of(chunk, addr), p)
        },
        // SAFETY: as above, for a SuperSlab of one slab.
        Kind::MidSuperSlab => unsafe { free_to_slab::<F, false>(superslab::mid_slab_of(chunk), p) },
        // SAFETY: `addr`'s chunk is not a SuperSlab (the caller's contract is passed on). The
        // kind is read again there: passing it makes the compiler test the large kinds first,
        // 4 instructions more on the slab path.
        _ => unsafe { free_not_in_slab::<F>(addr) },
    }
}

/// Frees `p`, which lies in `slab`: onto this thread's bin when this thread owns the slab. Else,
/// with `FROM_MAP` (`slab` came from the page map), through `free_not_own_from_map`; without, as
/// a foreign slab's block.
///
/// # Safety
/// `slab` is a valid slab (its SuperSlab is registered) and `p` lies in its range; with
/// `FROM_MAP`, `slab` may also be a slab record no thread owns, with `p` anywhere.
#[inline(always)]
unsafe fn free_to_slab<F: FreeFn, const FROM_MAP: bool>(slab: *mut slab::Slab, p: *mut u8) {
    // SAFETY: `slab` is valid (the caller's contract); slabs are reached by shared reference.
    let s = unsafe { &*slab };
    // A thread matches the slabs of its own heap, and those of a heap no thread retired whose
    // token it reuses (`Slab::owner_thread`); a thread without a heap only the latter.
    #[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
    // SAFETY: compares the slab's token with the thread pointer at %fs:0 (`thread_token`) and
    // leaves for the foreign path if they differ; no stack, no memory written.
    unsafe {
        core::arch::asm!(
            "cmp {token}, qword ptr fs:[0]",
            "jne {foreign}",
            token = in(reg) s.owner_thread(),
            // SAFETY: the caller's contract is passed on.
            foreign = label { return unsafe { free_not_own::<F, FROM_MAP>(p, slab) } },
            options(nostack, readonly),
        )
    };
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
    if s.owner_thread() != thread_cache::thread_token() {
        // SAFETY: the caller's contract is passed on.
        return unsafe { free_not_own::<F, FROM_MAP>(p, slab) };
    }
    // SAFETY: the token matched, so the bin is this thread's heap's (or that of an abandoned heap
    // whose bins no thread pops: see `Slab::owner_thread`). This thread is the bin's only writer,
    // and reaches it by shared reference because others may read its head.
    let bin = unsafe { &*s.owner_bin() };
    let head = bin.head();
    if !s.is_carved_block_start(p as usize) || head == p as *mut Block {
        // SAFETY: as above.
        return unsafe { free_misused::<F>(p, slab) };
    }
    if bin.take_room() {
        bin.link_before(p as *mut Block, head);
        return;
    }
    // SAFETY: as above; `p` is a carved block of the slab.
    unsafe { free_and_flush::<F>(p, slab) }
}

/// `free_to_slab`'s exit for a slab whose token is not this thread's.
///
/// # Safety
/// As `free_to_slab`.
#[inline(always)]
unsafe fn free_not_own<F: FreeFn, const FROM_MAP: bool>(p: *mut u8, slab: *mut slab::Slab) {
    if FROM_MAP {
        // SAFETY: the caller's contract is `free_as`'s.
        unsafe { free_not_own_from_map::<F>(p) }
    } else {
        // SAFETY: `slab` is valid and `p` lies in it.
        unsafe { free_foreign_slab::<F>(p, slab) }
    }
}

/// A free whose page-map record is not this thread's: another thread's slab, or the map's zero
/// record (not in a SuperSlab), which leaves for the registry's path; `free(NULL)` returns at once
/// (some programs make it as often as any other free). The record is looked up again: passing it
/// makes the fast path compute its address before the branch.
///
/// # Safety
/// As `free_as`.
#[inline(never)]
unsafe fn free_not_own_from_map<F: FreeFn>(p: *mut u8) {
    if p.is_null() {
        return;
    }
    match pagemap::record_of(p as usize) {
        // SAFETY: a record the page map holds for `p`'s granule is its slab's (valid, and `p`
        // lies in it), as the registry's path would compute it.
        Some(record) if !pagemap::is_zero_record(record) => unsafe {
            free_foreign_slab::<F>(p, record as *mut slab::Slab)
        },
        // SAFETY: the caller's contract is passed on.
        _ => unsafe { free_by_registry::<F>(p) },
    }
}

/// A free the fast path found wrong, by the thread whose token the slab holds: not a block's
/// start, or the block at the head of the bin. Reports it (and does not return); frees `p` as
/// usual if the checks pass when made again here.
///
/// # Safety
/// `slab` is valid and `p` lies in it.
#[cold]
#[inline(never)]
unsafe fn free_misused<F: FreeFn>(p: *mut u8, slab: *mut slab::Slab) {
    let heap = thread_cache::current();
    // SAFETY: `slab` is valid (the caller's contract).
    if unsafe { (*slab).owner(Ordering::Relaxed) } != heap {
        // SAFETY: as above (a token an abandoned heap left: see `Slab::owner_thread`).
        return unsafe { free_foreign_slab::<F>(p, slab) };
    }
    // SAFETY: `slab` is valid and formatted (owned).
    unsafe { check_block_start(F::NAME, slab, p as usize) };
    // SAFETY: as above.
    let c = unsafe { (*slab).class.get() } as usize;
    // SAFETY: `heap` is this thread's heap, valid.
    let bin = unsafe { &(*heap).bins[c] };
    if bin.head() == p as *mut Block {
        check::report(F::NAME, "double free", p as usize);
    }
    if !bin.take_room() {
        // SAFETY: `p` is a carved block of `slab`, which this heap owns (checked above).
        return unsafe { free_and_flush::<F>(p, slab) };
    }
    bin.link_before(p as *mut Block, bin.head());
}

/// Frees `p`, not in a SuperSlab: null, a large block, or a pointer not ours (reported).
///
/// # Safety
/// As `free_as`.
#[inline(never)]
unsafe fn free_not_in_slab<F: FreeFn>(addr: usize) {
    match registry::kind_of(addr) {
        // SAFETY: the registry says `addr` lies in a large block's mapping.
        Kind::Large | Kind::LargeAligned if addr != 0 => unsafe { free_large::<F>(addr) },
        _ if addr == 0 => {}
        _ => report_not_ours(F::NAME, addr),
    }
}

/// The owner's bin of `slab`'s class is full (always, in safe mode), and a `take_room` on it said
/// so: flush it, with `p`.
///
/// # Safety
/// `slab` is valid, its token is this thread's, and `p` is the start of one of its carved blocks.
#[cold]
unsafe fn free_and_flush<F: FreeFn>(p: *mut u8, slab: *mut slab::Slab) {
    // SAFETY: `slab` is valid (the caller's contract).
    let s = unsafe { &*slab };
    // SAFETY: the token matched, so this thread is the only writer of the bin (as in the fast path).
    unsafe { (*s.owner_bin()).undo_take_room() };
    let heap = thread_cache::current();
    if s.owner(Ordering::Relaxed) != heap {
        // SAFETY: as above (a token an abandoned heap left: see `Slab::owner_thread`).
        return unsafe { free_foreign_slab::<F>(p, slab) };
    }
    let c = s.class.get() as usize;
    // SAFETY: this thread's heap is valid and this thread its owner (by shared reference).
    let heap = unsafe { &*heap };
    if check::safe_mode() {
        // SAFETY: `p` is a block of `class_size(c)` bytes (the caller's contract).
        unsafe { check::disarm(F::NAME, p, class_size(c)) };
        heap.bins[c].push(p as *mut Block);
        heap.flush(c);
        return;
    }
    heap.flush(c);
    heap.bins[c].push(p as *mut Block);
}

/// Frees a block of a slab this thread does not own: into this thread's outbox inline when it
/// holds blocks of the same slab, else by `free_foreign_slab_slow`.
///
/// # Safety
/// `slab` is a valid slab (its SuperSlab is registered) and `p` lies in it.
#[inline(always)]
unsafe fn free_foreign_slab<F: FreeFn>(p: *mut u8, slab: *mut slab::Slab) {
    // SAFETY: `slab` is valid (the caller's contract).
    unsafe { check_block_start(F::NAME, slab, p as usize) };
    // SAFETY: `p` is the start of a carved block of `slab` (checked above), given up by this free.
    if unsafe { remote_free::append_to_outbox(F::NAME, slab, p as *mut Block) } {
        return;
    }
    // SAFETY: as above.
    unsafe { free_foreign_slab_slow::<F>(p, slab) }
}

/// `free_foreign_slab` when the outbox cannot take the block as it is.
///
/// # Safety
/// `slab` is a valid slab and `p` the start of a carved block of it.
#[cold]
#[inline(never)]
unsafe fn free_foreign_slab_slow<F: FreeFn>(p: *mut u8, slab: *mut slab::Slab) {
    // SAFETY: as above; read by shared reference, as its owner may be using it.
    let s = unsafe { &*slab };
    if check::safe_mode() {
        // SAFETY: `p` is the start of a carved block of `block_size` bytes (checked above).
        unsafe { check::disarm(F::NAME, p, s.block_size.get() as usize) };
    }
    // SAFETY: `p` is the start of a carved block of `slab` (checked above).
    unsafe { remote_free::free_remote(F::NAME, slab, p as *mut Block) };
}

/// Reports `p` unless it is the start of a block of `slab`.
///
/// # Safety
/// `slab` is a valid slab.
#[inline(always)]
unsafe fn check_block_start(op: &str, slab: *mut slab::Slab, p: usize) {
    // SAFETY: `slab` is valid (the caller's contract).
    if !unsafe { (*slab).is_block_start(p) } {
        // SAFETY: `slab` is valid (the caller's contract).
        unsafe { report_not_block_start(op, slab, p) };
    }
}

/// Reports `p`, a pointer into `slab` that is not the start of one of its blocks, given to `op`:
/// an interior pointer if it lies inside a block handed out, else an invalid pointer (the slab's
/// header, the slack after its last block, space never carved). A pointer malloc handed out is
/// never blamed: when this thread's cache of the slab's class is damaged (a write past a block or
/// into a freed one hit a link, or a block freed twice closed a loop), malloc may have handed out
/// a damaged link, and the damage is reported instead.
///
/// # Safety
/// `slab` is a valid slab.
#[cold]
unsafe fn report_not_block_start(op: &str, slab: *mut slab::Slab, p: usize) -> ! {
    // SAFETY: `slab` is valid (the caller's contract), read by shared reference.
    let slab = unsafe { &*slab };
    let class = slab.class.get();
    // SAFETY: a slab's class is NO_CLASS or below NUM_CLASSES.
    if class != slab::NO_CLASS && unsafe { cache_is_damaged(class as usize) } {
        check::report(op, check::CORRUPTED_FREE_LIST, p);
    }
    let what = if slab.holds_carved(p) {
        "interior pointer"
    } else {
        "invalid pointer"
    };
    check::report(op, what, p)
}

/// Whether this thread's bin of class `c` breaks what it keeps: `count` distinct blocks linked from
/// `head`, the last link null, each the start of a carved block of a class `c` slab this thread
/// owns.
///
/// # Safety
/// `c` < NUM_CLASSES.
#[cold]
unsafe fn cache_is_damaged(c: usize) -> bool {
    let heap = thread_cache::current();
    // SAFETY: this thread's heap (or the empty heap) is valid; its bin is read by shared reference.
    let bin = unsafe { &(*heap).bins[c] };
    let mut b = bin.head();
    // Brent's cycle check: a list that comes back to a block meets `mark`, the block last seen at
    // a power-of-two step, within about twice the length of its loop.
    let (mut mark, mut step, mut next_mark) = (null_mut(), 0u32, 1u32);
    for _ in 0..bin.count() {
        let addr = b as usize;
        if b == mark || !registry::kind_of(addr).is_superslab() {
            return true;
        }
        // SAFETY: the registry says `addr`'s chunk is a SuperSlab, so the slab is valid.
        let slab = unsafe { &*superslab::slab_of(addr) };
        if slab.owner(Ordering::Relaxed) != heap
            || slab.class.get() as usize != c
            || !slab.is_block_start(addr)
        {
            return true;
        }
        step += 1;
        if step == next_mark {
            mark = b;
            next_mark = next_mark.saturating_mul(2);
        }
        // SAFETY: `b` is the start of a block of a slab this thread owns.
        b = unsafe { (*b).next };
    }
    !b.is_null()
}

/// Reports `p`, given to `op`, which is not the start of a large block and not in a slab's chunk:
/// an interior pointer if it lies inside a large block (perhaps past the chunk where the block
/// starts), else an invalid pointer (a foreign mapping, even in a chunk one of ours shares).
#[cold]
fn report_not_ours(op: &str, p: usize) -> ! {
    let what = if large::holds(p) {
        "interior pointer"
    } else {
        "invalid pointer"
    };
    check::report(op, what, p)
}

/// The header of the large block at `addr`, given to `op`, or a report: interior or invalid
/// pointer, or `freed` (what giving `op` a freed block is).
fn large_header(op: &str, freed: &str, addr: usize) -> *mut large::LargeHeader {
    let h = large::header_of(addr, registry::kind_of(addr));
    if h.is_null() {
        report_not_ours(op, addr);
    }
    // SAFETY: `header_of` gives null or the valid header of the large block starting at `addr`.
    if unsafe { (*h).cached } {
        check::report(op, freed, addr);
    }
    h
}

/// # Safety
/// `addr` should be a live large block; what `large_header` checks is reported.
#[cold]
unsafe fn free_large<F: FreeFn>(addr: usize) {
    purge::purge_if_due();
    let timer = tuning::Timer::start_large();
    let h = large_header(F::NAME, "double free", addr);
    // SAFETY: `h` is the valid header of a live (not cached) large block this thread frees; the
    // program gives up the block, so no other thread uses it.
    let size = unsafe {
        let size = (*h).map_len;
        if (*h).site != 0 {
            sites::free((*h).site);
            (*h).site = 0;
        }
        large::free(h);
        size
    };
    timer.stop(size);
}

/// A block given to a function that uses it, checked: live, and at a block's start.
enum Live {
    /// A block of a slab: its size, and the bytes the program may use (the request, in safe mode).
    Small {
        block: usize,
        usable: usize,
    },
    Large(*mut large::LargeHeader),
}

/// Checks `p` (not null), given to `op` (realloc, malloc_usable_size), and reports what is wrong:
/// not ours, not a block's start, freed ("use after free"), or (safe mode) overflowed.
///
/// # Safety
/// `p` is not null; it should be a live block of ours, and what is checked here is reported.
unsafe fn live_block(op: &str, p: *mut u8) -> Live {
    let addr = p as usize;
    match registry::kind_of(addr) {
        Kind::SuperSlab | Kind::MidSuperSlab => {
            // SAFETY: the registry says `addr`'s chunk is a SuperSlab, so the slab is valid.
            let slab = unsafe { superslab::slab_of(addr) };
            // SAFETY: `slab` is valid (the registry says its chunk is a SuperSlab).
            unsafe { check_block_start(op, slab, addr) };
            // SAFETY: as above, by shared reference.
            let block = unsafe { (*slab).block_size.get() } as usize;
            if check::safe_mode() {
                // SAFETY: `p` is the start of a carved block of `block` bytes (checked above).
                let usable = unsafe { check::live_requested_size(op, p, block) };
                return Live::Small { block, usable };
            }
            // SAFETY: `slab` is valid (as above).
            if unsafe { just_freed(slab, p) } {
                check::report(op, "use after free", addr);
            }
            Live::Small {
                block,
                usable: block,
            }
        }
        Kind::Large | Kind::LargeAligned => Live::Large(large_header(op, "use after free", addr)),
        Kind::None => report_not_ours(op, addr),
    }
}

/// Whether block `p` of `slab` is one freed last (default mode's view of a freed block): at the
/// head of the slab's remote list, or of its owner's bin when this thread owns it.
///
/// # Safety
/// `slab` is a valid slab.
unsafe fn just_freed(slab: *mut slab::Slab, p: *mut u8) -> bool {
    // SAFETY: `slab` is valid (the caller's contract), read by shared reference.
    let slab = unsafe { &*slab };
    let b = p as *mut Block;
    if slab.remote.0.head() == b {
        return true;
    }
    let heap = thread_cache::current();
    slab.owner(Ordering::Relaxed) == heap
        // SAFETY: this thread's heap is valid and owns the slab, so the class is a valid index.
        && unsafe { (*heap).bins[slab.class.get() as usize].head() } == b
}

/// Allocates `n * size` zeroed bytes; null with ENOMEM if the product overflows.
///
/// # Safety
/// Always safe to call.
pub unsafe fn calloc(n: usize, size: usize) -> *mut u8 {
    let Some(total) = n.checked_mul(size) else {
        return out_of_memory();
    };
    if total <= MID_MAX {
        // SAFETY: `malloc` has no precondition (it is unsafe only for the raw memory it returns).
        let p = unsafe { malloc(total) };
        if !p.is_null() {
            // SAFETY: `p` is a fresh block of at least `total` bytes.
            unsafe { core::ptr::write_bytes(p, 0, total) };
        }
        return p;
    }
    let (p, zeroed) = alloc_large(total, MIN_ALIGN);
    if !p.is_null() && !zeroed {
        // SAFETY: `p` is a fresh block of at least `total` bytes.
        unsafe { core::ptr::write_bytes(p, 0, total) };
    }
    p
}

/// Allocates `size` bytes aligned to `align`, a power of two; null with EINVAL if it is not one.
///
/// # Safety
/// Always safe to call.
pub unsafe fn memalign(align: usize, size: usize) -> *mut u8 {
    if !align.is_power_of_two() {
        os::set_errno(libc::EINVAL);
        return null_mut();
    }
    if align <= MIN_ALIGN {
        // SAFETY: `malloc` has no precondition (it is unsafe only for the raw memory it returns).
        return unsafe { malloc(size) };
    }
    if check::safe_mode() {
        // A size within SAFE_EXTRA of usize::MAX must not wrap around to a small class.
        let with_extra = size.checked_add(check::SAFE_EXTRA);
        if let Some(c) = with_extra.and_then(|n| size_class::class_for_aligned(n, align)) {
            // SAFETY: `class_for_aligned` gives a valid class whose blocks hold `size` plus the
            // canary.
            return unsafe { alloc_checked(c, size) };
        }
        return alloc_large(size, align).0;
    }
    match size_class::class_for_aligned(size, align) {
        // SAFETY: `class_for_aligned` gives a valid class.
        Some(c) => unsafe { alloc_from_class(c) },
        None => alloc_large(size, align).0,
    }
}

/// Resizes a block, moving it if needed; `realloc(null, n)` is `malloc(n)`. `realloc(p, 0)`
/// returns a minimum-size block (`realloc_to_zero` is C's). On failure returns null and leaves `p`
/// untouched.
///
/// # Safety
/// `p` is null or a live block from this allocator.
pub unsafe fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    if p.is_null() {
        // SAFETY: `malloc` has no precondition (it is unsafe only for the raw memory it returns).
        return unsafe { malloc(size) };
    }
    // SAFETY: `p` is not null; misuse is reported.
    let old = match unsafe { live_block("realloc", p) } {
        Live::Small { block, usable } => {
            if !check::safe_mode() && size <= block && (size > block / 2 || block <= 64) {
                return p;
            }
            usable
        }
        Live::Large(h) => {
            if size > MID_MAX {
                // SAFETY: `h` is the header of the live large block `p` (checked above).
                let r = unsafe { large::resize(h, size) };
                if !r.is_null() {
                    return r;
                }
            }
            // SAFETY: `h` is the header of the live large block `p` (checked by `live_block`).
            unsafe { large::usable_size(h) }
        }
    };
    // SAFETY: `malloc` has no precondition (it is unsafe only for the raw memory it returns).
    let q = unsafe { malloc(size) };
    if !q.is_null() {
        // SAFETY: `p` holds `old` usable bytes and `q` at least `size`; distinct live blocks.
        unsafe {
            core::ptr::copy_nonoverlapping(p, q, old.min(size));
            free(p);
        }
    }
    q
}

/// `realloc(p, 0)` as glibc does it for C programs: frees `p` (null is ignored), with misuse
/// reported as realloc's.
///
/// # Safety
/// `p` is null or a live block from this allocator.
pub unsafe fn realloc_to_zero(p: *mut u8) {
    if !p.is_null() {
        // SAFETY: `p` is not null and (the caller's contract) a live block of ours.
        unsafe {
            live_block("realloc", p);
            free(p);
        }
    }
}

/// Bytes usable in the block at `p` (at least what was asked for); 0 for null.
///
/// # Safety
/// `p` is null or a live block from this allocator.
pub unsafe fn usable_size(p: *mut u8) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: `p` is not null; misuse is reported.
    match unsafe { live_block("malloc_usable_size", p) } {
        Live::Small { usable, .. } => usable,
        // SAFETY: `h` is the header of the live large block `p` (checked by `live_block`).
        Live::Large(h) => unsafe { large::usable_size(h) },
    }
}

/// `malloc` on behalf of call site `site` (any nonzero id), for `hak_alloc_at`: the site's
/// profile (`sites.rs`) samples every call, fast path or not.
///
/// # Safety
/// Always safe to call; unsafe because it returns raw memory.
pub unsafe fn alloc_at(size: usize, site: usize) -> *mut u8 {
    // SAFETY: `malloc` has no precondition (it is unsafe only for the raw memory it returns).
    let p = unsafe { malloc(size) };
    sites::alloc_block(p as usize, site, size);
    p
}

/// `free` of a block from `alloc_at(_, site)`, for `hak_free_at`.
///
/// # Safety
/// As `free`.
pub unsafe fn free_at(p: *mut u8, site: usize) {
    if !p.is_null() {
        sites::free_block(p as usize, site);
        // SAFETY: `p` is not null and (the caller's contract) a live block of ours.
        unsafe { free_as::<HakFreeAt>(p) };
    }
}

/// Process-wide set-up (thread-exit hook, fork handlers). Runs by itself on first use; a library
/// constructor may call it early so that the fork handlers exist before any allocation.
pub fn init() {
    init::ensure_init();
}

/// Returns every cached region to the OS: BigCache's large blocks and the empty SuperSlabs, after
/// sending the blocks this thread freed into other threads' slabs and still holds (its outbox).
/// Called when a mapping fails, and available to programs (`malloc_trim`).
pub fn release_cached_memory() {
    let me = thread_cache::current();
    if !thread_cache::is_empty_heap(me) {
        // SAFETY: this thread's heap is valid while it runs; only it touches the outbox.
        unsafe { (*me).outbox.flush() };
    }
    purge::release_all();
}

// SAFETY: blocks are aligned to MIN_ALIGN or, above it, by `memalign`; a block stays valid and
// untouched by the allocator until it is freed; `realloc` keeps the contents up to the smaller
// size.
unsafe impl GlobalAlloc for Hakmem {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: `malloc` and `memalign` have no precondition.
        unsafe {
            if layout.align() <= MIN_ALIGN {
                malloc(layout.size())
            } else {
                memalign(layout.align(), layout.size())
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, _layout: Layout) {
        // SAFETY: GlobalAlloc's contract: `p` is a live block of ours, never null.
        unsafe { free_non_null(p) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MIN_ALIGN {
            // SAFETY: `calloc` has no precondition (only its memory is raw).
            return unsafe { calloc(1, layout.size()) };
        }
        if size_class::class_for_aligned(layout.size(), layout.align()).is_none() {
            let (p, zeroed) = alloc_large(layout.size(), layout.align());
            if !p.is_null() && !zeroed {
                // SAFETY: `p` is a fresh block of at least `layout.size()` bytes.
                unsafe { core::ptr::write_bytes(p, 0, layout.size()) };
            }
            return p;
        }
        // SAFETY: `memalign` has no precondition (it is unsafe only for the raw memory it returns).
        let p = unsafe { memalign(layout.align(), layout.size()) };
        if !p.is_null() {
            // SAFETY: `p` is a fresh block of at least `layout.size()` bytes.
            unsafe { core::ptr::write_bytes(p, 0, layout.size()) };
        }
        p
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MIN_ALIGN {
            // SAFETY: GlobalAlloc's contract: `p` is a live block of ours.
            return unsafe { realloc(p, new_size) };
        }
        // SAFETY: `memalign` has no precondition (it is unsafe only for the raw memory it returns).
        let q = unsafe { memalign(layout.align(), new_size) };
        if !q.is_null() {
            // SAFETY: `p` is a live block of `layout.size()` bytes (GlobalAlloc's contract) and
            // `q` a fresh one of at least `new_size`; `p` is freed once copied.
            unsafe {
                core::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                free(p);
            }
        }
        q
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Tests that count or empty shared allocator state (SuperSlabs, BigCache) run one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());
    pub(crate) fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A heap from the pool, set up for the calling thread's use: the pointer to give back with
    /// `pool_put`, and a reference to it.
    fn pooled_heap() -> (*mut heap::Heap, &'static heap::Heap) {
        let hp = heap_pool::pool_take();
        assert!(!hp.is_null());
        // SAFETY: a heap from the pool is ours alone; `init` readies it; heaps are never unmapped.
        let h = unsafe {
            (*hp).init();
            &*hp
        };
        (hp, h)
    }

    /// Runs `test` on a new thread with a heap from the pool (`pooled_heap`) that holds the
    /// thread's token, so the thread's frees into its slabs count as the owner's; the heap goes
    /// back to the pool afterwards (`test` retires it).
    fn on_pooled_heap(test: impl FnOnce(&'static heap::Heap) + Send + 'static) {
        std::thread::spawn(|| {
            let (hp, h) = pooled_heap();
            h.thread.set(thread_cache::thread_token());
            test(h);
            heap_pool::pool_put(hp);
        })
        .join()
        .unwrap();
    }

    /// A test running alone (`serial`) under a strategy's knobs; the default strategy is put back
    /// when it is dropped, before the next test may run.
    pub(crate) struct Knobs(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

    impl Knobs {
        pub(crate) fn set(s: &crate::learn::Strategy) -> Knobs {
            let serial = serial();
            crate::knobs::apply(s);
            Knobs(serial)
        }
    }

    impl Drop for Knobs {
        fn drop(&mut self) {
            crate::knobs::apply(&crate::learn::strategy::DEFAULT);
        }
    }

    fn fill(p: *mut u8, n: usize) {
        for i in 0..n {
            // SAFETY: `p` is a live block of at least `n` bytes (the tests' blocks).
            unsafe { *p.add(i) = (p as usize).wrapping_add(i) as u8 };
        }
    }
    fn check(p: *mut u8, n: usize) {
        for i in 0..n {
            assert_eq!(
                // SAFETY: as in `fill`.
                unsafe { *p.add(i) },
                (p as usize).wrapping_add(i) as u8,
                "byte {i} of {p:?}"
            );
        }
    }

    /// A heap no thread retired, whose token this thread has (what a fork, or a heap made in the
    /// last round of key destructors, can leave: `Slab::owner_thread`): this thread's frees of its
    /// blocks fill that heap's bin, then go to the foreign path; none lands in this thread's heap
    /// or in the shared empty heap, and every block keeps its contents until it is freed.
    /// A program that takes 1,600 blocks of a class and gives them all back, round after round:
    /// the bin flushes and is refilled at first, its cap grows until a round fits in it (no
    /// refill in the last round), and once the class idles it shrinks again. Every block keeps its
    /// contents while the program holds it.
    #[test]
    #[cfg_attr(miri, ignore = "mmap, which Miri does not model")]
    fn a_bin_that_flushes_and_refills_grows_and_an_idle_one_shrinks() {
        let _serial = serial();
        std::thread::spawn(|| {
            let (_, h) = pooled_heap();
            let c = class_of(64);
            let bin = &h.bins[c];
            let base = bin.cap();
            assert!(base < 1600);
            let mut blocks = Vec::with_capacity(1600);
            let mut last_round_refills = 0;
            for _ in 0..8 {
                let before = h.counters.refills[c].load(Ordering::Relaxed);
                while blocks.len() < 1600 {
                    let b = bin.pop();
                    if b.is_null() {
                        assert!(h.refill(c));
                        continue;
                    }
                    fill(b as *mut u8, 64);
                    blocks.push(b);
                }
                for b in blocks.drain(..) {
                    check(b as *mut u8, 64);
                    if bin.take_room() {
                        bin.link_before(b, bin.head());
                    } else {
                        bin.undo_take_room();
                        h.flush(c);
                        bin.push(b);
                    }
                }
                last_round_refills = h.counters.refills[c].load(Ordering::Relaxed) - before;
            }
            assert!(bin.cap() >= 1600, "cap {} after the rounds", bin.cap());
            assert_eq!(last_round_refills, 0, "a round fits in the grown bin");
            // The first decay only notes that the class was refilled; the next ones halve the cap.
            h.decay_caps();
            let grown = bin.cap();
            h.decay_caps();
            assert_eq!(bin.cap(), grown / 2);
            for _ in 0..4 {
                h.decay_caps();
            }
            assert_eq!(bin.cap(), base);
        })
        .join()
        .unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, which Miri does not model")]
    fn frees_with_an_abandoned_heaps_token_stay_out_of_this_threads_heaps() {
        let _serial = serial();
        on_pooled_heap(|h| {
            // Unit tests allocate through the system allocator: this thread has no heap of its
            // own (the pooled one is not installed as the thread's).
            assert!(thread_cache::is_empty_heap(thread_cache::current()));
            let c = class_of(64);
            let mut blocks = Vec::new();
            while blocks.len() < 600 {
                let b = h.bins[c].pop();
                if b.is_null() {
                    assert!(h.refill(c));
                    continue;
                }
                fill(b as *mut u8, 64);
                blocks.push(b as *mut u8);
            }
            let room = h.bins[c].cap() - h.bins[c].count();
            assert!(room < 600);
            for &b in &blocks {
                check(b, 64);
                // SAFETY: a live block of a slab `h` owns, freed once.
                unsafe { free(b) };
            }
            assert_eq!(
                h.bins[c].count(),
                h.bins[c].cap(),
                "the abandoned heap's bin is full"
            );
            // SAFETY: the empty heap is a valid static, read by shared reference.
            let empty = unsafe { &*thread_cache::empty_heap() };
            assert!(
                empty.bins.iter().all(|b| b.head().is_null()),
                "the empty heap got a block"
            );
            let mine = thread_cache::current();
            if !thread_cache::is_empty_heap(mine) {
                // SAFETY: this thread's heap, read by its owner.
                assert!(
                    unsafe { (*mine).bins[c].head() }.is_null(),
                    "a block in this thread's bin"
                );
            }
            h.retire();
        });
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, which Miri does not model")]
    fn a_retired_heap_gives_back_the_blocks_and_slabs_of_every_class_it_used() {
        let _serial = serial();
        on_pooled_heap(|h| {
            let last = size_class::NUM_CLASSES - 1;
            let classes = [0, class_of(1024), size_class::NUM_SMALL_CLASSES, last];
            // One block of each class stays in use, so its slab outlives the heap.
            let mut kept = Vec::new();
            for c in classes {
                assert!(h.refill(c));
                let b = h.bins[c].pop() as *mut u8;
                assert!(!b.is_null());
                fill(b, class_size(c));
                kept.push((c, b));
            }
            h.retire();
            for (c, b) in kept {
                assert!(
                    h.bins[c].head().is_null() && h.bins[c].count() == 0,
                    "class {c}"
                );
                // SAFETY: `b` is a live block, so its slab record is valid.
                let slab = unsafe { &*superslab::slab_of(b as usize) };
                assert!(
                    slab.owner(core::sync::atomic::Ordering::Relaxed).is_null(),
                    "class {c}: the slab of a block in use is orphaned"
                );
                check(b, class_size(c));
                // SAFETY: a live block, freed once (into its orphaned slab).
                unsafe { free(b) };
            }
            orphans::reap();
        });
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap and madvise, which Miri does not model")]
    fn an_idle_round_keeps_the_first_block_of_mid_bins_up_to_64_kib() {
        let _serial = serial();
        on_pooled_heap(|h| {
            let small_mid = size_class::NUM_SMALL_CLASSES;
            let big_mid = class_of(128 << 10);
            assert!(class_size(small_mid) <= 64 << 10 && class_size(big_mid) > 64 << 10);
            // From here on rounds run only when the test says: none inside the refills below.
            h.run_mid_round();
            for c in [small_mid, big_mid] {
                for _ in 0..8 {
                    if h.bins[c].count() >= 2 {
                        break;
                    }
                    assert!(h.refill(c));
                }
                assert!(h.bins[c].count() >= 2, "class {c}");
            }
            // The kept block is the bin's first; its bytes past the link are written and must
            // survive the rounds (a purge would zero its pages past the first).
            let top = h.bins[small_mid].head() as *mut u8;
            let size = class_size(small_mid);
            let link = core::mem::size_of::<usize>();
            // SAFETY: `top` is a free block of `size` bytes in this heap's bin; only its first
            // word, the bin's link, is in use.
            let rest = unsafe { top.add(link) };
            fill(rest, size - link);
            // A round right after the refills finds both classes busy: their bins stay whole.
            h.run_mid_round();
            assert!(h.bins[small_mid].count() >= 2 && h.bins[big_mid].count() >= 2);
            // The next finds them idle.
            h.run_mid_round();
            assert_eq!(h.bins[small_mid].count(), 1);
            assert_eq!(
                h.bins[small_mid].head() as *mut u8,
                top,
                "the first block stays"
            );
            assert_eq!(h.bins[big_mid].count(), 0);
            assert!(h.bins[big_mid].head().is_null());
            h.run_mid_round();
            check(rest, size - link);
            // Both classes' blocks serve again, the kept one first, and hold what is written.
            for c in [small_mid, big_mid] {
                if h.bins[c].count() == 0 {
                    assert!(h.refill(c));
                }
                let b = h.bins[c].pop() as *mut u8;
                assert!(!b.is_null());
                fill(b, class_size(c));
                check(b, class_size(c));
                h.bins[c].push(b as *mut Block);
            }
            h.retire();
        });
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn every_class_and_some_large_sizes_hold_their_contents() {
        let _serial = serial();
        let mut sizes: Vec<usize> = (0..size_class::NUM_CLASSES).map(class_size).collect();
        sizes.extend([0, 1, 15, 17, 1000, MID_MAX + 1, 1 << 20, 3 << 20, 40 << 20]);
        let mut blocks = Vec::new();
        for round in 0..3 {
            for &s in &sizes {
                // SAFETY: `malloc` has no precondition.
                let p = unsafe { malloc(s) };
                assert!(!p.is_null());
                assert_eq!(p as usize % MIN_ALIGN, 0);
                // SAFETY: `p` is a live block just allocated.
                let u = unsafe { usable_size(p) };
                assert!(u >= s, "usable {u} < {s}");
                fill(p, u);
                blocks.push((p, u));
            }
            if round == 1 {
                for &(p, u) in &blocks {
                    check(p, u);
                    // SAFETY: each block is live and freed once.
                    unsafe { free(p) };
                }
                blocks.clear();
            }
        }
        for &(p, u) in &blocks {
            check(p, u);
            // SAFETY: each block is live and freed once.
            unsafe { free(p) };
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn many_small_blocks_are_distinct_and_recycled() {
        let _serial = serial();
        for &s in &[16usize, 48, 100, 1024, 8192, 20000, 200_000] {
            let n = (8 << 20) / s;
            // SAFETY: `malloc` has no precondition.
            let v: Vec<*mut u8> = (0..n).map(|_| unsafe { malloc(s) }).collect();
            for &p in &v {
                // SAFETY: each block holds at least `s` >= 8 bytes, aligned to 16.
                unsafe { (p as *mut usize).write(p as usize) };
            }
            let mut sorted: Vec<usize> = v.iter().map(|&p| p as usize).collect();
            sorted.sort();
            for w in sorted.windows(2) {
                assert!(w[1] - w[0] >= s, "overlap at size {s}");
            }
            for &p in &v {
                // SAFETY: as above; the block is freed once, after this read.
                assert_eq!(unsafe { (p as *mut usize).read() }, p as usize);
                // SAFETY: each block is live and freed once.
                unsafe { free(p) };
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn cross_thread_frees_come_back() {
        let _serial = serial();
        let mut after_first = 0;
        for round in 0..5 {
            let blocks: Vec<usize> = (0..200_000)
                // SAFETY: `malloc` has no precondition.
                .map(|i| unsafe { malloc(16 + i % 500) } as usize)
                .collect();
            for &p in &blocks {
                fill(p as *mut u8, 16);
            }
            std::thread::spawn(move || {
                for &p in &blocks {
                    check(p as *mut u8, 16);
                    // SAFETY: each block is live and freed once, by this thread (a remote free).
                    unsafe { free(p as *mut u8) };
                }
            })
            .join()
            .unwrap();
            if round == 0 {
                after_first = superslab::mapped_count();
            }
        }
        // Allocating again collects what other threads freed instead of mapping more.
        // SAFETY: `malloc` has no precondition; the block is freed once.
        let p = unsafe { malloc(64) };
        // SAFETY: `p` is live and freed once.
        unsafe { free(p) };
        let now = superslab::mapped_count();
        assert!(
            now <= after_first + 4,
            "SuperSlabs grew from {after_first} to {now}"
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn aligned_allocations_are_aligned() {
        let _serial = serial();
        for shift in 4..=24 {
            let align = 1usize << shift;
            for &s in &[0usize, 1, 100, 4096, 300_000] {
                // SAFETY: `memalign` has no precondition.
                let p = unsafe { memalign(align, s) };
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "align {align} size {s}");
                // SAFETY: `p` is a live block just allocated.
                let u = unsafe { usable_size(p) };
                assert!(u >= s);
                fill(p, u);
                check(p, u);
                // SAFETY: `p` is live and freed once.
                unsafe { free(p) };
            }
        }
        // SAFETY: `memalign` has no precondition.
        assert!(unsafe { memalign(24, 10) }.is_null());
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn realloc_keeps_contents_across_tiers() {
        let _serial = serial();
        // SAFETY: `malloc` has no precondition.
        let mut p = unsafe { malloc(10) };
        fill(p, 10);
        let mut len = 10;
        for &s in &[
            100usize,
            5000,
            100_000,
            1 << 20,
            64 << 20,
            2 << 20,
            3000,
            5,
            0,
        ] {
            // SAFETY: `p` is the live block the last step returned.
            let q = unsafe { realloc(p, s) };
            assert!(!q.is_null());
            let keep = len.min(s);
            for i in 0..keep {
                assert_eq!(
                    // SAFETY: `q` holds at least `keep` bytes.
                    unsafe { *q.add(i) },
                    (p as usize).wrapping_add(i) as u8,
                    "size {s} byte {i}"
                );
            }
            // Re-fill with the new address's pattern.
            fill(q, s);
            p = q;
            len = s;
        }
        // SAFETY: `p` is the live block the last step returned.
        unsafe { free(p) };
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn a_damaged_thread_cache_is_told_from_a_sound_one() {
        let c = class_of(48);
        let blocks: Vec<*mut Block> = (0..4)
            // SAFETY: `malloc` has no precondition.
            .map(|_| unsafe { malloc(48) } as *mut Block)
            .collect();
        for &b in blocks.iter().rev() {
            // SAFETY: each block is live and freed once.
            unsafe { free(b as *mut u8) };
        }
        // The bin now starts blocks[0] -> blocks[1] -> ...
        let (first, second) = (blocks[0], blocks[1]);
        // SAFETY: the blocks sit free in this thread's bin, whose links the test damages and
        // restores, and the bin is only read through shared references; the four mallocs take them
        // back.
        unsafe {
            assert!(!cache_is_damaged(c));
            let keep = (*second).next;
            // A link with its low byte overwritten points into a block (or nowhere).
            (*second).next = (keep as usize & !0xff | 0x41) as *mut Block;
            assert!(cache_is_damaged(c));
            // A link back to an earlier block closes a loop, found without walking `count` steps
            // (which a bin popped past its end has wrapped around to about 2^32).
            (*second).next = first;
            let bin = &(*thread_cache::current()).bins[c];
            let count = bin.count();
            bin.force_count(u32::MAX);
            assert!(cache_is_damaged(c));
            bin.force_count(count);
            (*second).next = keep;
            assert!(!cache_is_damaged(c));
            for _ in 0..4 {
                malloc(48);
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn calloc_zeroes_and_checks_overflow() {
        let _serial = serial();
        for &s in &[1usize, 100, 5000, 300_000, 3 << 20] {
            for _ in 0..3 {
                // SAFETY: `calloc` has no precondition; `p` holds `s` bytes and is freed once.
                let p = unsafe { calloc(1, s) };
                // SAFETY: `p` holds `s` bytes.
                assert!((0..s).all(|i| unsafe { *p.add(i) } == 0));
                // SAFETY: `p` holds `s` bytes, and is not freed until the next line.
                unsafe { core::ptr::write_bytes(p, 0xAB, s) };
                // SAFETY: `p` is live and freed once.
                unsafe { free(p) };
            }
        }
        // SAFETY: `calloc` and `malloc` have no precondition.
        assert!(unsafe { calloc(usize::MAX / 2, 3) }.is_null());
        // SAFETY: `malloc` has no precondition.
        assert!(unsafe { malloc(usize::MAX - 100) }.is_null());
    }
}
