//! The free fast path's map from each 64 KiB of address space to the slab record that holds it.
//!
//! One word per 64 KiB granule of the 47-bit user address space: 2^31 words, 16 GiB of address
//! space reserved once (MAP_NORESERVE, no huge pages), when the first SuperSlab is registered. The
//! kernel backs only the pages written: one 4 KiB page of the map per 32 MiB of SuperSlabs. The
//! granules of a registered SuperSlab hold the address of their slab's record, stored as its
//! offset from the map's own start, so that a word never written (0) leads to the map's first
//! word: the entry of the lowest 64 KiB of address space, which the kernel never maps, so it stays
//! 0 and reads as the token of no thread. `free` thus finds a record, or a token that cannot be its
//! own, in three loads and no test of what the chunk holds.
//!
//! `registry.rs` stays the authority on what a chunk holds; this map only serves the fast path, and
//! a miss (a large block, a pointer not ours, another thread's slab) goes there. If the reservation
//! is refused (an address-space limit, strict overcommit), the map stays empty and every `free`
//! takes the registry's path.

use crate::registry::CHUNK_SHIFT;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

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

/// The address of the slab record that the map holds for `addr`'s granule: the record itself if
/// `addr` lies in a registered SuperSlab, else the map's first word (a token of 0). None if the map
/// is not there or `addr` is above the user address space.
#[inline(always)]
pub fn record_of(addr: usize) -> Option<usize> {
    let i = addr >> GRANULE_SHIFT;
    #[cfg(all(target_arch = "x86_64", not(miri)))]
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
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
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
pub fn set_chunk(chunk: usize, first: usize, stride: usize) {
    debug_assert!(chunk != 0 && chunk & ((1 << CHUNK_SHIFT) - 1) == 0);
    if !reserved() {
        return;
    }
    let map = MAP.load(Ordering::Relaxed);
    let i = chunk >> GRANULE_SHIFT;
    for g in 0..PER_CHUNK {
        let offset = (first + g * stride).wrapping_sub(map as usize);
        // SAFETY: `chunk` is below 2^47 (registered chunks are), so `i + g < ENTRIES`.
        unsafe { (*map.add(i + g)).store(offset, Ordering::Release) };
    }
}

/// Records that the chunk at `chunk` holds no slab records (before it is unmapped or reused).
pub fn clear_chunk(chunk: usize) {
    if LEN.load(Ordering::Acquire) == 0 {
        return;
    }
    let map = MAP.load(Ordering::Relaxed);
    let i = chunk >> GRANULE_SHIFT;
    for g in 0..PER_CHUNK {
        // SAFETY: as in `set_chunk`.
        unsafe { (*map.add(i + g)).store(0, Ordering::Release) };
    }
}

/// Whether the map is there: reserves it on the first call.
fn reserved() -> bool {
    if LEN.load(Ordering::Acquire) != 0 {
        return true;
    }
    if TRIED.swap(true, Ordering::AcqRel) {
        return false;
    }
    let map = crate::os::reserve(ENTRIES * core::mem::size_of::<usize>());
    if map.is_null() {
        return false;
    }
    // A huge page would make 2 MiB of the map resident for the first write.
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
        // SAFETY: the map's first word, read as the fast path reads a token.
        assert_eq!(unsafe { *(first as *const usize) }, 0);
        assert_eq!(record_of(1 << 47), None);
        assert_eq!(record_of(usize::MAX), None);
    }
}
