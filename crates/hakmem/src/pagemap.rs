//! The free fast path's map from each 64 KiB of address space to the slab record that holds it.
//!
//! One word per 64 KiB granule of the 47-bit user address space: 2^31 words, 16 GiB of address
//! space reserved read-only once, when the first SuperSlab is registered (not charged as committed
//! memory, left out of core dumps). A 4 KiB page of the map (the granules of 32 MiB) is made
//! writable when a SuperSlab in its range is first registered, so the map costs a page per 32 MiB
//! of SuperSlabs. The granules of a registered SuperSlab hold the address of their slab's record,
//! stored as its offset from the map's own start, so that a word never written (0) leads to the
//! map's first words: the entries of the lowest 2 MiB of address space, where no SuperSlab is ever
//! registered (mmap never returns address 0, and SuperSlabs are 2 MiB-aligned), so they stay 0: a
//! slab record with the token of no thread. `free` thus finds a record, or a token that cannot be
//! its own, in three loads and no test of what the chunk holds.
//!
//! `registry.rs` stays the authority on what a chunk holds; this map only serves the fast path, and
//! a miss (a large block, a pointer not ours, another thread's slab) goes there. Under an
//! address-space limit (`ulimit -v`), where the map would take 16 GiB of it, or where the OS
//! refuses it, there is no map and every `free` takes the registry's path.

use crate::registry::CHUNK_SHIFT;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

const GRANULE_SHIFT: u32 = 16;
const ADDRESS_BITS: u32 = 47;
const ENTRIES: usize = 1 << (ADDRESS_BITS - GRANULE_SHIFT);
const PER_CHUNK: usize = 1 << (CHUNK_SHIFT - GRANULE_SHIFT);

/// The map, once reserved.
static MAP: AtomicPtr<AtomicUsize> = AtomicPtr::new(null_mut());
/// How many entries of `MAP` can be read: 0 until it is reserved, then `ENTRIES`.
static LEN: AtomicUsize = AtomicUsize::new(0);
/// Whether the reservation was tried (it is tried once).
static TRIED: AtomicBool = AtomicBool::new(false);

const PAGE: usize = 4096;
const ENTRIES_PER_PAGE: usize = PAGE / core::mem::size_of::<usize>();
const PAGES: usize = ENTRIES / ENTRIES_PER_PAGE;
/// Bit p: page p of the map is writable. Touched only with the SuperSlab manager's lock held.
static WRITABLE: [AtomicU64; PAGES / 64] = [const { AtomicU64::new(0) }; PAGES / 64];
/// Pages of the map made writable (for the exit report).
static WRITABLE_PAGES: AtomicUsize = AtomicUsize::new(0);

/// The address of the slab record that the map holds for `addr`'s granule: the record itself if
/// `addr` lies in a registered SuperSlab, else the map's first word (a token of 0). None if the map
/// is not there or `addr` is above the user address space.
#[inline(always)]
pub fn record_of(addr: usize) -> Option<usize> {
    let i = addr >> GRANULE_SHIFT;
    #[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
    // SAFETY: compares `i` with `LEN` in memory (one instruction where a load of an atomic takes
    // two) and leaves if it is not below. Not `readonly`: the compiler must not read `MAP` before
    // it (as the acquire load below ensures elsewhere).
    unsafe {
        core::arch::asm!(
            "cmp {i}, qword ptr [rip + {len}]",
            "jae {none}",
            i = in(reg) i,
            len = sym LEN,
            none = label { return None },
            options(nostack),
        )
    };
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
    // Acquire: `MAP` is read after `LEN`.
    if i >= LEN.load(Ordering::Acquire) {
        return None;
    }
    let map = MAP.load(Ordering::Relaxed);
    // SAFETY: `i < LEN`, and a map of `LEN` entries is mapped for the rest of the process.
    let offset = unsafe { (*map.add(i)).load(Ordering::Relaxed) };
    Some((map as usize).wrapping_add(offset))
}

/// Records that the chunk at `chunk` holds slab records from `first`, one per granule `stride`
/// bytes apart (0: one slab covers the chunk). Called with the SuperSlab manager's lock held.
/// Without the map, or if its page cannot be made writable, the chunk's frees take the registry's
/// path.
pub fn set_chunk(chunk: usize, first: usize, stride: usize) {
    debug_assert!(chunk != 0 && chunk & ((1 << CHUNK_SHIFT) - 1) == 0);
    if !reserved() {
        return;
    }
    let map = MAP.load(Ordering::Relaxed);
    let i = chunk >> GRANULE_SHIFT;
    if !page_writable(map, i) {
        return;
    }
    for g in 0..PER_CHUNK {
        let offset = (first + g * stride).wrapping_sub(map as usize);
        // SAFETY: `chunk` is below 2^47 (registered chunks are), so `i + g < ENTRIES`; the
        // chunk's entries share one page (they are 256-byte aligned), made writable above.
        unsafe { (*map.add(i + g)).store(offset, Ordering::Release) };
    }
}

/// Records that the chunk at `chunk` holds no slab records (before it is unmapped or reused).
/// Called with the SuperSlab manager's lock held.
pub fn clear_chunk(chunk: usize) {
    if LEN.load(Ordering::Acquire) == 0 {
        return;
    }
    let map = MAP.load(Ordering::Relaxed);
    let i = chunk >> GRANULE_SHIFT;
    let page = i / ENTRIES_PER_PAGE;
    if WRITABLE[page / 64].load(Ordering::Relaxed) & (1 << (page % 64)) == 0 {
        // Never written: its entries are 0.
        return;
    }
    for g in 0..PER_CHUNK {
        // SAFETY: as in `set_chunk`; the page is writable (checked above).
        unsafe { (*map.add(i + g)).store(0, Ordering::Release) };
    }
}

/// Bytes of the map made writable: 0 without a map.
pub fn written_bytes() -> u64 {
    (WRITABLE_PAGES.load(Ordering::Relaxed) * PAGE) as u64
}

/// Whether the map's page that holds entry `i` is writable: makes it so if it is not yet.
fn page_writable(map: *mut AtomicUsize, i: usize) -> bool {
    let page = i / ENTRIES_PER_PAGE;
    let (word, bit) = (&WRITABLE[page / 64], 1u64 << (page % 64));
    if word.load(Ordering::Relaxed) & bit != 0 {
        return true;
    }
    // SAFETY: `page < PAGES`, a page of the map.
    let start = unsafe { map.add(page * ENTRIES_PER_PAGE) } as *mut u8;
    if !crate::os::make_writable(start, PAGE) {
        return false;
    }
    word.fetch_or(bit, Ordering::Relaxed);
    WRITABLE_PAGES.fetch_add(1, Ordering::Relaxed);
    true
}

/// Whether the map is there: reserves it on the first call, unless the address space is limited.
fn reserved() -> bool {
    if LEN.load(Ordering::Acquire) != 0 {
        return true;
    }
    if TRIED.swap(true, Ordering::AcqRel) || crate::os::address_space_is_limited() {
        return false;
    }
    let map = crate::os::reserve_read_only(ENTRIES * core::mem::size_of::<usize>());
    if map.is_null() {
        return false;
    }
    // A huge page would make 2 MiB of the map resident for one written page.
    crate::os::advise_no_huge(map, ENTRIES * core::mem::size_of::<usize>());
    MAP.store(map as *mut AtomicUsize, Ordering::Relaxed);
    LEN.store(ENTRIES, Ordering::Release);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no mmap")]
    fn set_find_and_clear() {
        // A chunk no test maps (the map is process-wide); its records need not exist here.
        let chunk = 0x6000_0000_0000usize;
        assert!(reserved());
        assert_eq!(
            record_of(chunk + 5),
            Some(MAP.load(Ordering::Relaxed) as usize)
        );
        set_chunk(chunk, 0x1000, 256);
        assert!(written_bytes() >= PAGE as u64);
        assert_eq!(record_of(chunk), Some(0x1000));
        assert_eq!(record_of(chunk + (3 << 16) + 7), Some(0x1000 + 3 * 256));
        assert_eq!(
            record_of(chunk + (1 << CHUNK_SHIFT) - 1),
            Some(0x1000 + 31 * 256)
        );
        set_chunk(chunk, 0x2000, 0);
        assert_eq!(record_of(chunk + (17 << 16)), Some(0x2000));
        clear_chunk(chunk);
        let first = MAP.load(Ordering::Relaxed) as usize;
        assert_eq!(record_of(chunk + (17 << 16)), Some(first));
        // SAFETY: the map's first words, read as the fast path reads a record's token.
        assert_eq!(unsafe { *(first as *const usize) }, 0);
        // A chunk in a page of the map never written reads 0 too.
        assert_eq!(record_of(0x5000_0000_0000), Some(first));
        assert_eq!(record_of(1 << 47), None);
        assert_eq!(record_of(usize::MAX), None);
    }
}
