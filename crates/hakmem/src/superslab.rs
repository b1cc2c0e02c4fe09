//! SuperSlabs: 2 MiB-aligned regions cut into slabs, and the global manager that hands slabs out.
//!
//! A small SuperSlab holds 31 slabs of 64 KiB (the first 64 KiB holds this header; only its first
//! pages are ever touched). A mid SuperSlab is one slab of 1984 KiB for a class above 8 KiB. A
//! slab's data starts 64 KiB-aligned, or for blocks of up to 256 bytes a "colour" of 256-1,152
//! bytes past that (`small_slab_colour`), a multiple of the largest power of two dividing the block
//! size; either way blocks of a class whose size is a multiple of an alignment up to 64 KiB are
//! aligned to it.
//!
//! The manager (one lock, slow path only) keeps small SuperSlabs that have free slabs, a cache
//! of empty SuperSlabs (a mid class gets back, when it can, the one it emptied last:
//! `warm_of_class`), and address space mapped ahead for new ones (`fresh_superslab`: 16 at a
//! time). Freed memory keeps its pages for `HAKMEM_PURGE_DELAY_MS`, so a program
//! that frees and allocates again does not fault its pages back in; after that (or past
//! `HAKMEM_SS_WARM` empty SuperSlabs) the pages go back with MADV_DONTNEED: an empty SuperSlab
//! keeps only its address space, a free slab in a SuperSlab still in use loses its pages. Past
//! `HAKMEM_SS_COLD` empty SuperSlabs, they are unmapped. Within a mid slab in use, its owner gives
//! back the pages of idle free blocks (`Heap::purge_idle_mid_blocks`; for orphaned slabs, the
//! purge: `orphans::purge_idle_mid_blocks`).

use crate::clock;
use crate::knobs;
use crate::list::{Linked, Links, List};
use crate::lock::Lock;
use crate::os;
use crate::pagemap;
use crate::registry::{self, Kind, CHUNK};
use crate::size_class;
use crate::slab::{Owner, Slab, NO_CLASS};
use core::cell::UnsafeCell;
use core::ptr::null_mut;

pub const SS_SIZE: usize = CHUNK;
/// Bytes at the start of a SuperSlab reserved for its header.
pub const HEADER_SIZE: usize = 64 * 1024;
const SMALL_SLAB_SHIFT: u32 = 16;
const MID_SLAB_SHIFT: u32 = 21;
const MAX_SLABS: usize = SS_SIZE >> SMALL_SLAB_SHIFT;
const MAGIC: u64 = 0x6861_6b6d_656d_5353; // "hakmemSS"
/// Slab 0 of a small SuperSlab is the header; slabs 1..32 are free when it is fresh.
const ALL_SMALL_SLABS: u32 = !1;
/// Partial SuperSlabs looked at per purge for free slabs whose pages can go back.
const PURGE_SCAN: usize = 64;
/// Empty SuperSlabs unmapped per purge (the rest wait for the next one).
const UNMAP_BATCH: usize = 8;
/// Mid classes at least this big get transparent huge pages: a slab holds at most 31 of their
/// blocks, each of which touches 16 pages or more, so the SuperSlab is used densely and one fault
/// maps it whole. Smaller classes keep 4 KiB pages (a huge page would make a thread's slab of each
/// class 2 MiB resident at once). Slabs belong to one thread, so the rule is per heap: a heap's
/// SuperSlab of a class gets them only when the heap already filled `HUGE_AFTER_FULL` of that
/// class. A heap with one or two SuperSlabs of a class may hold a few blocks in the last (a
/// thread holding one buffer, a buffer growing by realloc through every class, libstdc++'s 73 KiB
/// emergency exception pool), and a huge page makes 2 MiB resident for them: mstressN's peak RSS
/// was 17.2-18.5 MB with huge pages for a heap's first SuperSlab of a class and from its second,
/// 13.3-14.0 MB with this rule, its time and the seed scenarios' faults unchanged.
const HUGE_MID_MIN: usize = 64 * 1024;
const HUGE_AFTER_FULL: u32 = 2;

/// Where a SuperSlab's slab records start: 256-byte records, one per slab, `RECORDS` bytes past
/// the SuperSlab's base plus a colour of 0 to `RECORD_COLOURS - 1` cache lines, chosen by the
/// SuperSlab's address (`records_of`). At one offset the records of every SuperSlab, all
/// 2 MiB-aligned, would share their cache sets, and the line `free` reads (a record's first) of
/// each would compete for the same 32 sets of the second-level cache; the colours spread them over
/// 4 to 6 times as many. Header and records stay within the SuperSlab's first three pages.
const RECORDS: usize = 256;
const RECORDS_LEN: usize = MAX_SLABS * core::mem::size_of::<Slab>();
const RECORD_COLOURS: usize = (3 * 4096 - RECORDS - RECORDS_LEN) / 64 + 1;
const _: () = assert!(core::mem::size_of::<SuperSlab>() <= RECORDS && RECORD_COLOURS > 1);

/// The address of the first slab record of the SuperSlab at `ss` (2 MiB-aligned).
#[inline(always)]
fn records_of(ss: usize) -> usize {
    ss + RECORDS + ((ss / SS_SIZE) % RECORD_COLOURS) * 64
}

/// The header at a SuperSlab's base; its slab records follow it (`records_of`).
#[repr(C)]
pub struct SuperSlab {
    magic: u64,
    /// log2 of the slab size: 16 (small) or 21 (mid, one slab).
    pub slab_shift: u32,
    /// Bit i set: slab i is free (small SuperSlabs only).
    free_mask: u32,
    /// Bit i set: slab i has touched pages (it was used since the SuperSlab was fresh or purged).
    dirty_mask: u32,
    used_slabs: u32,
    purged: bool,
    /// Whether the range is advised for transparent huge pages (see `set_huge`).
    huge: bool,
    /// Whether free's page map has this SuperSlab's entries (`register`).
    in_map: bool,
    /// The class its one slab last held while it was mid, `NO_CLASS` otherwise: `take_empty`
    /// gives an empty SuperSlab back to the class that used it, whose pages that class touched.
    mid_class: u8,
    /// When a slab of it was last released (ms, `clock::now_ms`).
    released_ms: u64,
    links: Links<SuperSlab>,
}

// The manager fits in its 512-byte alignment, so it never straddles a page.
const _: () = assert!(core::mem::size_of::<Global>() <= 512);

impl Linked for SuperSlab {
    unsafe fn links(this: *mut Self) -> *const Links<Self> {
        // SAFETY: `this` is valid (the caller's contract); no reference to the record is made.
        unsafe { &raw const (*this).links }
    }
}

struct Manager {
    /// Small SuperSlabs with at least one free slab.
    partial: List<SuperSlab>,
    /// Empty SuperSlabs with their pages, most recently emptied first.
    warm: List<SuperSlab>,
    /// Empty SuperSlabs whose pages were returned.
    cold: List<SuperSlab>,
    mapped: usize,
    /// Address space mapped ahead for new SuperSlabs: `fresh` up to `fresh_end` (`fresh_superslab`).
    fresh: usize,
    fresh_end: usize,
    /// Earliest time the next scan of partial SuperSlabs' free slabs is worth doing.
    next_scan_ms: u64,
}

/// Aligned so that it never straddles a page: the lock's write is then the first touch of the
/// page holding the manager, where a first read of a field on a second, untouched page would map
/// the zero page and fault again on the first write.
#[repr(C, align(512))]
struct Global {
    lock: Lock,
    m: UnsafeCell<Manager>,
}
// SAFETY: `m` is only accessed with `lock` held.
unsafe impl Sync for Global {}

static GLOBAL: Global = Global {
    lock: Lock::new(),
    m: UnsafeCell::new(Manager {
        partial: List::new(),
        warm: List::new(),
        cold: List::new(),
        mapped: 0,
        fresh: 0,
        fresh_end: 0,
        next_scan_ms: 0,
    }),
};

/// The slab holding `p`, whose chunk the registry says is a SuperSlab.
///
/// # Safety
/// `p`'s chunk is registered as `Kind::SuperSlab`.
#[inline(always)]
pub unsafe fn slab_of(p: usize) -> *mut Slab {
    let ss = (p & !(SS_SIZE - 1)) as *mut SuperSlab;
    // SAFETY: the chunk is a mapped SuperSlab (the caller's contract) whose header holds
    // `slab_shift`, so the index is below MAX_SLABS; no reference to the slabs is made (other
    // threads use them).
    unsafe {
        let idx = (p & (SS_SIZE - 1)) >> (*ss).slab_shift;
        (records_of(ss as usize) as *mut Slab).add(idx)
    }
}

/// The slab holding `p`, whose chunk (at `ss`) the registry says is a SuperSlab of 64 KiB slabs:
/// a mask and a shift from its records, which are 256 bytes each.
///
/// # Safety
/// `p`'s chunk, at `ss`, is registered as `Kind::SuperSlab`.
#[inline(always)]
pub unsafe fn small_slab_of(ss: usize, p: usize) -> *mut Slab {
    const _: () = assert!(core::mem::size_of::<Slab>() << 8 == 1 << SMALL_SLAB_SHIFT);
    debug_assert_eq!(ss, p & !(SS_SIZE - 1));
    let record = (p >> 8) & ((MAX_SLABS - 1) << 8);
    (records_of(ss) + record) as *mut Slab
}

/// The slab of the SuperSlab at `ss`, registered as `Kind::MidSuperSlab`.
#[inline(always)]
pub fn mid_slab_of(ss: usize) -> *mut Slab {
    records_of(ss) as *mut Slab
}

/// Records what the chunk of `ss` holds: in the registry, and its slab records in the free fast
/// path's page map (removed first when the chunk stops being a SuperSlab).
///
/// # Safety
/// `ss` is a mapped SuperSlab, with the manager's lock held.
unsafe fn register(ss: *mut SuperSlab, kind: Kind) {
    let chunk = ss as usize;
    let records = records_of(chunk);
    // SAFETY: `ss` is mapped and the lock held (the caller's contract): its header is ours.
    let in_map = unsafe { &mut (*ss).in_map };
    let stride = match kind {
        Kind::SuperSlab => core::mem::size_of::<Slab>(),
        Kind::MidSuperSlab => 0,
        _ => {
            if *in_map {
                pagemap::remove_chunk(chunk);
                *in_map = false;
            }
            registry::set(chunk, kind);
            return;
        }
    };
    registry::set(chunk, kind);
    if *in_map {
        pagemap::set_chunk(chunk, records, stride);
    } else {
        *in_map = pagemap::add_chunk(chunk, records, stride);
    }
}

fn super_slab_of(slab: *mut Slab) -> *mut SuperSlab {
    (slab as usize & !(SS_SIZE - 1)) as *mut SuperSlab
}

/// Gets a slab for `class`, formatted and owned by `owner`; null when the OS has no memory.
/// `owner_full` is how many full slabs of the class the owner holds (from `HUGE_AFTER_FULL`, a
/// mid class gets huge pages, see `HUGE_MID_MIN`).
pub fn acquire_slab(class: usize, owner: Owner, owner_full: u32) -> *mut Slab {
    GLOBAL.lock.lock();
    // SAFETY: the lock is held.
    let slab = unsafe { acquire_locked(&mut *GLOBAL.m.get(), class, owner, owner_full) };
    GLOBAL.lock.unlock();
    slab
}

/// Bytes a small slab's first block lies past the slab's 64 KiB boundary, for blocks of up to
/// 256 bytes: 256 to 1,152 by slab and class, rounded down to the largest power of two dividing
/// the block size (so an aligned class stays aligned). Without it the first blocks of every slab,
/// and the page-aligned arrays a program keeps next to them, share their address's low 12 bits,
/// and the CPU takes the loads of one for the stores of the other (4K aliasing): a loop that fills
/// 25 blocks of 32 or 48 bytes through a page-aligned array of their pointers ran 3 to 7 times
/// slower. It costs at most 1,152 bytes of the slab's capacity, 4.5 blocks of 256 bytes; larger
/// blocks get none, as a slab one block short made a program that holds exactly a slab's worth
/// (64 blocks of 1 KiB) take and give back a second slab in every round.
fn small_slab_colour(class: usize, idx: usize) -> usize {
    let size = size_class::class_size(class);
    if size > 256 {
        return 0;
    }
    let unit = size & size.wrapping_neg();
    let colour = 256 + ((idx * 5 + class * 3) % 8) * 128;
    colour & !(unit - 1)
}

/// # Safety
/// The manager's lock is held and `m` is its manager.
unsafe fn acquire_locked(
    m: &mut Manager,
    class: usize,
    owner: Owner,
    owner_full: u32,
) -> *mut Slab {
    // SAFETY: the lock is held (the caller's contract), so the manager's SuperSlabs and their free
    // slabs are ours; a slab is formatted by shared reference, as stale frees may read it.
    unsafe {
        let size = size_class::class_size(class);
        if size_class::is_small(class) {
            let mut ss = m.partial.head;
            if ss.is_null() {
                ss = take_empty(m, false, NO_CLASS);
                if ss.is_null() {
                    return null_mut();
                }
                (*ss).slab_shift = SMALL_SLAB_SHIFT;
                // Every slab of an empty SuperSlab is free; a fresh one or one that was mid has
                // records 1-31 never marked (`take_empty`).
                let records = records_of(ss as usize) as *const Slab;
                for i in 1..MAX_SLABS {
                    (*records.add(i)).class.set(NO_CLASS);
                }
                register(ss, Kind::SuperSlab);
                (*ss).free_mask = ALL_SMALL_SLABS;
                m.partial.push_front(ss);
            }
            // Prefer a slab whose pages are still there.
            let dirty_free = (*ss).free_mask & (*ss).dirty_mask;
            let pick = if dirty_free != 0 {
                dirty_free
            } else {
                (*ss).free_mask
            };
            let idx = pick.trailing_zeros() as usize;
            (*ss).free_mask &= !(1 << idx);
            (*ss).dirty_mask |= 1 << idx;
            (*ss).used_slabs += 1;
            if (*ss).free_mask == 0 {
                m.partial.remove(ss);
            }
            crate::stats::add(&crate::stats::SLABS_ACQUIRED, 1);
            let slab = (records_of(ss as usize) as *mut Slab).add(idx);
            let colour = small_slab_colour(class, idx);
            let start = ss as usize + (idx << SMALL_SLAB_SHIFT) + colour;
            let capacity = ((1 << SMALL_SLAB_SHIFT) - colour) / size;
            (*slab).format(class, start, capacity as u32, owner);
            slab
        } else {
            let huge =
                crate::config::get().thp && size >= HUGE_MID_MIN && owner_full >= HUGE_AFTER_FULL;
            let ss = take_empty(m, huge, class as u8);
            if ss.is_null() {
                return null_mut();
            }
            (*ss).slab_shift = MID_SLAB_SHIFT;
            register(ss, Kind::MidSuperSlab);
            (*ss).free_mask = 0;
            (*ss).used_slabs = 1;
            crate::stats::add(&crate::stats::SLABS_ACQUIRED, 1);
            let slab = records_of(ss as usize) as *mut Slab;
            let start = ss as usize + HEADER_SIZE;
            (*slab).format(class, start, ((SS_SIZE - HEADER_SIZE) / size) as u32, owner);
            slab
        }
    }
}

/// Stops advising huge pages for the SuperSlab of the mid slab `slab`, whose owner returns pages
/// inside it to the OS: khugepaged would otherwise fill the range back in.
///
/// # Safety
/// `slab` is a mid slab held by the caller (the manager touches only empty SuperSlabs' `huge`).
pub unsafe fn stop_huge_pages(slab: *const Slab) {
    // SAFETY: the SuperSlab of a mid slab the caller holds, whose `huge` the manager does not
    // touch while it is in use (the caller's contract).
    unsafe { set_huge(super_slab_of(slab as *mut Slab), false) }
}

/// Advises (or stops advising) huge pages for an empty SuperSlab about to be used. The advice
/// takes effect on a range with no pages yet; on a cached one it only lets khugepaged merge them.
///
/// # Safety
/// `ss` is a mapped SuperSlab nobody else is setting up, with the manager's lock held; or one whose
/// mid slab the caller holds (`stop_huge_pages`).
unsafe fn set_huge(ss: *mut SuperSlab, huge: bool) {
    // SAFETY: `ss` is a mapped SuperSlab whose header only this thread touches now (the
    // caller's contract).
    unsafe {
        if (*ss).huge != huge {
            (*ss).huge = huge;
            if huge {
                os::advise_huge(ss as *mut u8, SS_SIZE);
            } else {
                os::advise_no_huge(ss as *mut u8, SS_SIZE);
            }
        }
    }
}

/// An empty SuperSlab from the cache (for a mid class other than `NO_CLASS`, the one it emptied
/// last if `warm_of_class` finds it), or a new one from the OS, advised for huge pages or not, and
/// marked as holding `mid_class` (`NO_CLASS` for a small SuperSlab); null when the OS refuses.
///
/// # Safety
/// The manager's lock is held and `m` is its manager.
unsafe fn take_empty(m: &mut Manager, huge: bool, mid_class: u8) -> *mut SuperSlab {
    // SAFETY: the lock is held (the caller's contract): cached SuperSlabs are the manager's, and a
    // new mapping is ours alone until it is registered.
    unsafe {
        let mut ss = warm_of_class(m, mid_class);
        if ss.is_null() {
            ss = m.warm.pop_front();
        }
        if !ss.is_null() {
            // Its pages are still there: every slab may be dirty.
            (*ss).dirty_mask = !0;
        } else {
            ss = m.cold.pop_front();
            if !ss.is_null() {
                (*ss).dirty_mask = 0;
            }
        }
        if ss.is_null() {
            let p = fresh_superslab(m);
            if p.is_null() {
                return null_mut();
            }
            if huge {
                // Before the first write, or the range already has 4 KiB pages.
                os::advise_huge(p, SS_SIZE);
            }
            ss = p as *mut SuperSlab;
            (*ss).magic = MAGIC;
            (*ss).huge = huge;
            // Slab 0's record only: the later records reach a page that a mid SuperSlab (slab 0
            // alone) would otherwise touch for nothing; a small one marks 1-31 when it is set up.
            (*(records_of(ss as usize) as *const Slab))
                .class
                .set(NO_CLASS);
            m.mapped += 1;
            crate::stats::add(&crate::stats::SUPERSLABS_MAPPED, 1);
            register(ss, Kind::SuperSlab);
        } else {
            set_huge(ss, huge);
        }
        (*ss).purged = false;
        (*ss).used_slabs = 0;
        (*ss).mid_class = mid_class;
        ss
    }
}

/// Warm SuperSlabs `warm_of_class` looks at, most recently emptied first.
const WARM_MATCH_SCAN: usize = 16;

/// A warm SuperSlab whose mid slab last held `class` (not `NO_CLASS`), taken off the warm list, or
/// null. A thread that exits leaves its mid SuperSlabs empty, one per class it used, each touched
/// as far as that class carved it; the threads that follow take one per class again. Handed out
/// in the order they were emptied, a class that carves far got the SuperSlab of one that carved
/// little and faulted in pages while others lay untouched: on rptestN, whose second pair of
/// threads faulted in 0.8-5 MiB more than the first had left.
///
/// # Safety
/// The manager's lock is held and `m` is its manager.
unsafe fn warm_of_class(m: &mut Manager, class: u8) -> *mut SuperSlab {
    if class == NO_CLASS {
        return null_mut();
    }
    // SAFETY: the lock is held (the caller's contract), so the warm list and its SuperSlabs are
    // the manager's.
    unsafe {
        let mut ss = m.warm.head;
        for _ in 0..WARM_MATCH_SCAN {
            if ss.is_null() {
                break;
            }
            if (*ss).mid_class == class {
                m.warm.remove(ss);
                return ss;
            }
            ss = (*ss).links.next.get();
        }
        null_mut()
    }
}

/// SuperSlabs mapped at once (`fresh_superslab`): 32 MiB of address space, whose pages stay
/// untouched until a SuperSlab of it is used.
const FRESH_BATCH: usize = 16;

/// Address space for a new SuperSlab, never used, or null when the OS refuses.
///
/// SuperSlabs are mapped `FRESH_BATCH` at a time, so a growing heap makes one mmap (and the two
/// munmaps that align it) per 32 MiB instead of per 2 MiB. Each of those calls takes the process's
/// memory-map lock for writing, and an mmap next to the SuperSlab another thread is faulting in
/// grows that mapping: it waits for the fault, and the faulting thread's wake-up of it, like a
/// wake-up through the manager's lock, may move the waiter onto the waker's core. On rptestN (two
/// threads faulting in fresh slabs at once) both threads then shared one core, in 4 ms turns, for
/// a whole burst, and one thread's allocations for the other piled up while it waited.
///
/// Where the address space is limited (`RLIMIT_AS`), or the batch cannot be had, one SuperSlab is
/// mapped at a time, as that limit is the program's to spend. Under transparent huge pages by
/// default, the batch is advised against them at once (`take_empty` advises the SuperSlabs that
/// want them).
///
/// # Safety
/// The manager's lock is held and `m` is its manager.
unsafe fn fresh_superslab(m: &mut Manager) -> *mut u8 {
    if m.fresh == m.fresh_end {
        let mut len = FRESH_BATCH * SS_SIZE;
        let mut p = if os::address_space_is_limited() {
            null_mut()
        } else {
            os::map_aligned_ahead(len, SS_SIZE)
        };
        if p.is_null() {
            len = SS_SIZE;
            p = os::map_aligned_ahead(len, SS_SIZE);
        }
        if p.is_null() {
            return null_mut();
        }
        if !registry::in_range(p as usize + len - 1) {
            os::unmap_ahead(p, len);
            return null_mut();
        }
        if os::huge_pages_by_default() {
            // Before the first write, or the kernel would back a SuperSlab with a huge page at
            // once (2 MiB resident for a header and a slab).
            os::advise_no_huge(p, len);
        }
        m.fresh = p as usize;
        m.fresh_end = p as usize + len;
    }
    let p = m.fresh;
    m.fresh += SS_SIZE;
    os::count_mapped(SS_SIZE);
    p as *mut u8
}

/// Returns an empty slab (`used == 0`, in no list) to its SuperSlab.
///
/// # Safety
/// The caller owns `slab` and nothing references its blocks.
pub unsafe fn release_slab(slab: *mut Slab) {
    // SAFETY: the caller's contract is `release_slab_freed_at`'s.
    unsafe {
        // Freed now: `release_slab_freed_at` takes the earlier of this and its clock reading.
        release_slab_freed_at(slab, u64::MAX);
    }
}

/// `release_slab` of a slab whose blocks were all free by `freed_ms` (`clock::now_ms`), which is
/// when its purge delay starts (if it is not later than now).
///
/// # Safety
/// As `release_slab`.
pub unsafe fn release_slab_freed_at(slab: *mut Slab, freed_ms: u64) {
    // SAFETY: the caller holds `slab` (empty, in no list); its SuperSlab's header is only written
    // with the lock held, which it is from `lock()` on.
    unsafe {
        (*slab).clear();
        let ss = super_slab_of(slab);
        let now = clock::now_ms();
        let mut unmap = UnmapBatch::new();
        GLOBAL.lock.lock();
        {
            let m = &mut *GLOBAL.m.get();
            crate::stats::add(&crate::stats::SLABS_RELEASED, 1);
            (*ss).used_slabs -= 1;
            (*ss).released_ms = (*ss).released_ms.max(freed_ms.min(now));
            if (*ss).slab_shift == SMALL_SLAB_SHIFT {
                let idx = (slab as usize - records_of(ss as usize)) / core::mem::size_of::<Slab>();
                let was_partial = (*ss).free_mask != 0;
                (*ss).free_mask |= 1 << idx;
                if (*ss).used_slabs == 0 {
                    if was_partial {
                        m.partial.remove(ss);
                    }
                } else if !was_partial {
                    m.partial.push_front(ss);
                }
            }
            if (*ss).used_slabs == 0 {
                m.warm.push_front(ss);
            }
            purge_locked(m, now, &mut unmap);
        }
        GLOBAL.lock.unlock();
        unmap.run();
    }
}

/// Returns the pages of memory freed more than the purge delay ago (see the module header).
/// Cheap when there is nothing to do; called from the heaps' slow paths.
pub fn purge_expired() {
    let now = clock::now_ms();
    let mut unmap = UnmapBatch::new();
    GLOBAL.lock.lock();
    // SAFETY: the lock is held.
    unsafe { purge_locked(&mut *GLOBAL.m.get(), now, &mut unmap) };
    GLOBAL.lock.unlock();
    unmap.run();
}

/// # Safety
/// The manager's lock is held and `m` is its manager.
unsafe fn purge_locked(m: &mut Manager, now: u64, unmap: &mut UnmapBatch) {
    // SAFETY: the lock is held (the caller's contract), so the listed SuperSlabs are the manager's,
    // and none in `warm`/`cold` or free slabs has live blocks.
    unsafe {
        let cfg = crate::config::get();
        let delay = knobs::purge_delay_ms();
        let warm_max = knobs::warm_superslabs();
        // Expired SuperSlabs go only while more than the batch is warm; the count bound always holds.
        let batch = knobs::madvise_batch() / SS_SIZE;
        loop {
            let old = m.warm.tail;
            if old.is_null() {
                break;
            }
            let expired = (*old).released_ms + delay <= now && m.warm.len > batch;
            if !expired && m.warm.len <= warm_max {
                break;
            }
            m.warm.remove(old);
            os::discard((old as *mut u8).add(HEADER_SIZE), SS_SIZE - HEADER_SIZE);
            // Without the advice, khugepaged would fill the range around the header's pages into a
            // whole huge page again (2 MiB resident for an empty SuperSlab).
            set_huge(old, false);
            crate::stats::add(&crate::stats::PURGED_BYTES, (SS_SIZE - HEADER_SIZE) as u64);
            (*old).purged = true;
            m.cold.push_front(old);
        }
        while m.cold.len > cfg.ss_cold_max && !unmap.is_full() {
            let old = m.cold.pop_back();
            m.mapped -= 1;
            register(old, Kind::None);
            unmap.push(old);
        }
        if now >= m.next_scan_ms {
            m.next_scan_ms = now + delay / 2;
            let mut ss = m.partial.head;
            let mut n = 0;
            while !ss.is_null() && n < PURGE_SCAN {
                if (*ss).released_ms + delay <= now {
                    discard_free_slabs(ss);
                }
                ss = (*ss).links.next.get();
                n += 1;
            }
        }
    }
}

/// Returns the pages of every free slab of `ss` that still has them.
///
/// # Safety
/// `ss` is a small SuperSlab of the manager, whose lock is held.
unsafe fn discard_free_slabs(ss: *mut SuperSlab) {
    // SAFETY: `ss` is a partial SuperSlab of the manager, whose lock is held (the caller's
    // contract); its free slabs hold no blocks.
    unsafe {
        let mut dirty_free = (*ss).free_mask & (*ss).dirty_mask;
        (*ss).dirty_mask &= !dirty_free;
        while dirty_free != 0 {
            // One madvise per run of adjacent slabs.
            let first = dirty_free.trailing_zeros();
            let run = (dirty_free >> first).trailing_ones();
            let start = ss as usize + ((first as usize) << SMALL_SLAB_SHIFT);
            os::discard(start as *mut u8, (run as usize) << SMALL_SLAB_SHIFT);
            crate::stats::add(
                &crate::stats::PURGED_BYTES,
                (run as u64) << SMALL_SLAB_SHIFT,
            );
            dirty_free &= !(((1u64 << run) - 1) << first) as u32;
        }
    }
}

/// SuperSlabs to unmap once the manager's lock is released.
struct UnmapBatch {
    items: [*mut SuperSlab; UNMAP_BATCH],
    len: usize,
}

impl UnmapBatch {
    fn new() -> Self {
        UnmapBatch {
            items: [null_mut(); UNMAP_BATCH],
            len: 0,
        }
    }
    fn is_full(&self) -> bool {
        self.len == UNMAP_BATCH
    }
    fn push(&mut self, ss: *mut SuperSlab) {
        self.items[self.len] = ss;
        self.len += 1;
    }
    fn run(&self) {
        crate::stats::add(&crate::stats::SUPERSLABS_UNMAPPED, self.len as u64);
        for &ss in &self.items[..self.len] {
            os::unmap(ss as *mut u8, SS_SIZE);
        }
    }
}

/// Unmaps every empty SuperSlab in the cache, and the address space mapped ahead for SuperSlabs
/// and not yet used.
pub fn release_empty() {
    // The address space mapped ahead and not yet used goes back too (committed memory, under the
    // kernel's strict overcommit policy, and part of an address-space limit).
    // SAFETY: the lock is held while the manager is changed; the range was never handed out.
    let (fresh, fresh_end) = GLOBAL.lock.with(|| unsafe {
        let m = &mut *GLOBAL.m.get();
        let range = (m.fresh, m.fresh_end);
        m.fresh = 0;
        m.fresh_end = 0;
        range
    });
    os::unmap_ahead(fresh as *mut u8, fresh_end - fresh);
    loop {
        GLOBAL.lock.lock();
        // SAFETY: the lock is held.
        let ss = unsafe {
            let m = &mut *GLOBAL.m.get();
            let mut ss = m.cold.pop_back();
            if ss.is_null() {
                ss = m.warm.pop_back();
            }
            if !ss.is_null() {
                m.mapped -= 1;
                register(ss, Kind::None);
            }
            ss
        };
        GLOBAL.lock.unlock();
        if ss.is_null() {
            return;
        }
        crate::stats::add(&crate::stats::SUPERSLABS_UNMAPPED, 1);
        os::unmap(ss as *mut u8, SS_SIZE);
    }
}

/// Number of SuperSlabs mapped from the OS now (in use or cached).
pub fn mapped_count() -> usize {
    // SAFETY: the lock is held while the manager is read.
    GLOBAL.lock.with(|| unsafe { (*GLOBAL.m.get()).mapped })
}

/// The lock the fork handlers hold across `fork()` (`fork.rs`).
pub fn lock() -> &'static Lock {
    &GLOBAL.lock
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size_class::{class_of, NUM_SMALL_CLASSES};

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn slabs_are_carved_from_registered_super_slabs_and_come_back() {
        let _serial = crate::tests::serial();
        let small = class_of(64);
        let mid = NUM_SMALL_CLASSES + 2;
        let mut slabs = Vec::new();
        for i in 0..70 {
            let c = if i % 10 == 0 { mid } else { small };
            let s = acquire_slab(c, Owner::NONE, 0);
            assert!(!s.is_null());
            // SAFETY: `s` is a slab just acquired (formatted, ours), and its first page is in its
            // SuperSlab.
            unsafe {
                let start = (*s).start.get();
                let size = (*s).block_size.get() as usize;
                let lowest_bit = size & size.wrapping_neg();
                assert_eq!(
                    start % lowest_bit.min(64 * 1024),
                    0,
                    "blocks aligned as their size"
                );
                assert!(
                    start % (64 * 1024) <= 1152,
                    "the colour is at most 1,152 bytes"
                );
                let end = start + (*s).capacity.get() as usize * (*s).block_size.get() as usize - 1;
                for p in [start, end] {
                    assert_eq!(slab_of(p), s);
                    let (kind, chunk) = registry::kind_and_base_of(p);
                    assert_eq!(chunk, p & !(SS_SIZE - 1));
                    let fast = match kind {
                        Kind::SuperSlab => small_slab_of(chunk, p),
                        Kind::MidSuperSlab => mid_slab_of(chunk),
                        k => panic!("{k:?}"),
                    };
                    assert_eq!(fast, s, "free's lookup finds the same slab");
                }
                assert_eq!(registry::kind_of(start) == Kind::MidSuperSlab, c == mid);
                assert_eq!((*s).class.get() as usize, c);
                core::ptr::write_bytes(start as *mut u8, 1, 4096);
            }
            slabs.push(s);
        }
        // SAFETY: the slabs are valid and ours until released.
        let mut starts: Vec<usize> = slabs.iter().map(|&s| unsafe { (*s).start.get() }).collect();
        starts.sort();
        starts.dedup();
        assert_eq!(starts.len(), slabs.len(), "no slab handed out twice");
        for s in slabs {
            // SAFETY: each slab is empty, ours, and released once.
            unsafe { release_slab(s) };
        }
        // Empty SuperSlabs are cached up to the configured bounds, not kept without limit.
        let cfg = crate::config::get();
        let m = GLOBAL
            .lock
            // SAFETY: the lock is held while the manager is read.
            .with(|| unsafe { ((*GLOBAL.m.get()).warm.len, (*GLOBAL.m.get()).cold.len) });
        assert!(m.0 <= knobs::warm_superslabs() && m.1 <= cfg.ss_cold_max);
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn an_empty_mid_superslab_goes_back_to_the_class_that_used_it() {
        // Empty SuperSlabs stay warm: a purge delay no pause of the test reaches, the default
        // bound on warm SuperSlabs.
        let _warm = crate::tests::Knobs::set(&crate::learn::Strategy {
            purge_delay_ms: 600_000,
            ..crate::learn::strategy::DEFAULT
        });
        let (a, b) = (NUM_SMALL_CLASSES + 5, NUM_SMALL_CLASSES + 7);
        let first = [a, b].map(|c| acquire_slab(c, Owner::NONE, 0));
        assert!(first.iter().all(|s| !s.is_null()));
        let bases = first.map(|s| super_slab_of(s) as usize);
        for s in first {
            // SAFETY: each slab was just acquired, is empty and ours, and is released once.
            unsafe { release_slab(s) };
        }
        // `b`'s SuperSlab was emptied last, so it heads the warm list; `a` asks first and still
        // gets its own.
        let again = [a, b].map(|c| acquire_slab(c, Owner::NONE, 0));
        assert!(again.iter().all(|s| !s.is_null()));
        assert_eq!(again.map(|s| super_slab_of(s) as usize), bases);
        for s in again {
            // SAFETY: as above.
            unsafe { release_slab(s) };
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn superslabs_from_several_batches_keep_their_contents() {
        let _serial = crate::tests::serial();
        let mid = NUM_SMALL_CLASSES + 2;
        // One mid slab per SuperSlab: more SuperSlabs than two batches mapped ahead hold.
        let slabs: Vec<*mut Slab> = (0..2 * FRESH_BATCH + 3)
            .map(|_| acquire_slab(mid, Owner::NONE, 0))
            .collect();
        assert!(slabs.iter().all(|s| !s.is_null()));
        // SAFETY: each slab was just acquired: valid, and its record ours to read.
        let spans: Vec<(usize, usize)> = slabs
            .iter()
            .map(|&s| unsafe {
                let len = (*s).capacity.get() as usize * (*s).block_size.get() as usize;
                ((*s).start.get(), len)
            })
            .collect();
        for (i, (&s, &(start, len))) in slabs.iter().zip(&spans).enumerate() {
            assert_eq!(start & !(SS_SIZE - 1), super_slab_of(s) as usize);
            assert_eq!(registry::kind_of(start), Kind::MidSuperSlab);
            assert_eq!(registry::kind_of(start + len - 1), Kind::MidSuperSlab);
            // SAFETY: the slab's blocks, first to last, are ours.
            unsafe {
                core::ptr::write_bytes(start as *mut u8, i as u8 + 1, 4096);
                core::ptr::write_bytes((start + len - 4096) as *mut u8, i as u8 + 1, 4096);
            }
        }
        let mut bases: Vec<usize> = slabs.iter().map(|&s| super_slab_of(s) as usize).collect();
        bases.sort();
        bases.dedup();
        assert_eq!(
            bases.len(),
            slabs.len(),
            "one SuperSlab each, none handed out twice"
        );
        for (i, (&s, &(start, len))) in slabs.iter().zip(&spans).enumerate() {
            for p in [start, start + 4095, start + len - 4096, start + len - 1] {
                // SAFETY: as above, until the slab is released below.
                assert_eq!(
                    unsafe { *(p as *const u8) },
                    i as u8 + 1,
                    "slab {i} at {p:#x}"
                );
            }
            // SAFETY: the slab is empty and ours, released once.
            unsafe { release_slab(s) };
        }
        // `malloc_trim`'s release gives back the unused rest of the batch too; the next SuperSlab
        // comes from a new one.
        release_empty();
        // SAFETY: the lock is held while the manager is read.
        let left = GLOBAL.lock.with(|| unsafe {
            let m = &*GLOBAL.m.get();
            m.fresh_end - m.fresh
        });
        assert_eq!(left, 0);
        let s = acquire_slab(mid, Owner::NONE, 0);
        assert!(!s.is_null());
        // SAFETY: `s` is a mid slab just acquired, whose first page is ours; released once.
        unsafe {
            let start = (*s).start.get() as *mut u8;
            core::ptr::write_bytes(start, 7, 4096);
            assert_eq!(*start.add(4095), 7);
            release_slab(s);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn freed_memory_keeps_its_pages_until_the_purge_delay_is_over() {
        let _serial = crate::tests::serial();
        let delay = knobs::purge_delay_ms();
        let small = class_of(64);
        // Two slabs of one SuperSlab: one stays in use, one is freed.
        let a = acquire_slab(small, Owner::NONE, 0);
        let b = acquire_slab(small, Owner::NONE, 0);
        let ss = super_slab_of(b);
        // SAFETY: `b`'s first page is ours; the manager and SuperSlab header are read and purged
        // with the lock held.
        unsafe {
            core::ptr::write_bytes((*b).start.get() as *mut u8, 1, 4096);
            let bit = 1u32 << (((*b).start.get() - ss as usize) >> SMALL_SLAB_SHIFT);
            release_slab(b);
            let now = clock::now_ms();
            let m = || &mut *GLOBAL.m.get();
            // Read under the lock, assert after unlocking: a failed assertion must not leave
            // the lock held (every later thread exit would wait on it forever).
            GLOBAL.lock.lock();
            let same = super_slab_of(a) == ss;
            let dirty_at_first = (*ss).dirty_mask & bit;
            m().next_scan_ms = 0;
            purge_locked(m(), now + delay + 1, &mut UnmapBatch::new());
            let dirty_after = (*ss).dirty_mask & bit;
            // Tests running at the same time may have taken the freed slab again.
            let still_free = (*ss).free_mask & bit != 0;
            GLOBAL.lock.unlock();
            if same && still_free {
                assert_ne!(dirty_at_first, 0, "freed slab keeps its pages at first");
                assert_eq!(dirty_after, 0, "and loses them after the delay");
            }
            // An empty SuperSlab stays warm until the delay is over, then goes cold.
            release_slab(a);
            GLOBAL.lock.lock();
            // Empty unless a test running at the same time holds another of its slabs.
            let emptied = (*ss).free_mask == ALL_SMALL_SLABS;
            let warm_before = m().warm.len;
            purge_locked(m(), clock::now_ms() + delay + 1, &mut UnmapBatch::new());
            let (warm_after, cold_after) = (m().warm.len, m().cold.len);
            GLOBAL.lock.unlock();
            if emptied {
                assert!(warm_before >= 1);
                assert_eq!(warm_after, 0);
                assert!(cold_after >= 1);
            }
        }
    }
}
