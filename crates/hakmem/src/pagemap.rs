//! The free fast path's map from each 64 KiB of address space to the slab record that holds it.
//!
//! One word per 64 KiB granule of the 47-bit user address space: 2^31 words, 16 GiB of address
//! space reserved read-only once, when the first SuperSlab is registered (not charged as committed
//! memory, left out of core dumps). The 4 KiB page of the map that holds a SuperSlab's entries (the
//! granules of 32 MiB) is made writable when the SuperSlab is first registered (its header
//! remembers that it is in the map), so the map costs a page per 32 MiB of SuperSlabs. The granules of a registered SuperSlab hold the address of their slab's record,
//! stored as its offset from the map's own start, so that a word never written (0) leads to the
//! map's first words: the entries of the lowest 2 MiB of address space, where no SuperSlab is ever
//! registered (mmap never returns address 0, and SuperSlabs are 2 MiB-aligned), so they stay 0: a
//! slab record with the token of no thread. `free` thus finds a record, or a token that cannot be
//! its own, in three loads and no test of what the chunk holds.
//!
//! `registry.rs` stays the authority on what a chunk holds; this map serves `free`: a record of
//! another thread's slab goes to the remote free, and the zero record (a large block, a pointer not
//! ours, null) to the registry. Under an address-space limit (`ulimit -v`), where the map would
//! take 16 GiB of it, or where the OS refuses it, there is no map and every `free` takes the
//! registry's path.

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

const PAGE: usize = 4096;
/// Chunks whose entries the map holds (for the exit report).
static CHUNKS: AtomicUsize = AtomicUsize::new(0);

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

/// Whether `record`, from `record_of`, is the map's zero record (the word of a granule that holds
/// no slab), not a slab's.
#[inline(always)]
pub fn is_zero_record(record: usize) -> bool {
    record == MAP.load(Ordering::Relaxed) as usize
}

/// Puts a chunk that holds slab records from `first`, one per granule `stride` bytes apart (0: one
/// slab covers the chunk), in the map: makes the map's page of its entries writable (the first
/// time, for a page; `mprotect` again otherwise, once per chunk) and writes them. False if there is
/// no map or the page cannot be made writable: the chunk's frees then take the registry's path.
/// Called with the SuperSlab manager's lock held.
pub fn add_chunk(chunk: usize, first: usize, stride: usize) -> bool {
    debug_assert!(chunk != 0 && chunk & ((1 << CHUNK_SHIFT) - 1) == 0);
    if !reserved() {
        return false;
    }
    let map = MAP.load(Ordering::Relaxed);
    // SAFETY: `chunk` is below 2^47 (registered chunks are), so its entries are in the map.
    let entries = unsafe { map.add(chunk >> GRANULE_SHIFT) } as usize;
    if !crate::os::make_writable((entries & !(PAGE - 1)) as *mut u8, PAGE) {
        return false;
    }
    CHUNKS.fetch_add(1, Ordering::Relaxed);
    set_chunk(chunk, first, stride);
    true
}

/// Rewrites the entries of a chunk in the map (`add_chunk` returned true for it): its slab records
/// start at `first`, `stride` bytes apart. Called with the SuperSlab manager's lock held.
pub fn set_chunk(chunk: usize, first: usize, stride: usize) {
    let map = MAP.load(Ordering::Relaxed);
    let i = chunk >> GRANULE_SHIFT;
    for g in 0..PER_CHUNK {
        let offset = (first + g * stride).wrapping_sub(map as usize);
        // SAFETY: the chunk is in the map (the caller's contract): its entries share one page
        // (they are 256-byte aligned), made writable by `add_chunk`.
        unsafe { (*map.add(i + g)).store(offset, Ordering::Release) };
    }
}

/// Takes a chunk out of the map (`add_chunk` returned true for it), before it is unmapped.
/// Called with the SuperSlab manager's lock held.
pub fn remove_chunk(chunk: usize) {
    let map = MAP.load(Ordering::Relaxed);
    let i = chunk >> GRANULE_SHIFT;
    for g in 0..PER_CHUNK {
        // SAFETY: as in `set_chunk`.
        unsafe { (*map.add(i + g)).store(0, Ordering::Release) };
    }
    CHUNKS.fetch_sub(1, Ordering::Relaxed);
}

/// Bytes of the map's entries that lead to slab records now (256 per SuperSlab): 0 without a map.
pub fn entry_bytes() -> u64 {
    (CHUNKS.load(Ordering::Relaxed) * PER_CHUNK * core::mem::size_of::<usize>()) as u64
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
        if crate::os::address_space_is_limited() {
            eprintln!("skipped: no page map under an address-space limit");
            return;
        }
        // The map is process-wide and another test's SuperSlab may be reserving it right now.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !reserved() {
            assert!(std::time::Instant::now() < deadline, "no page map");
            std::thread::yield_now();
        }
        // A chunk of address space this test owns, so no SuperSlab can be there.
        let chunk = crate::os::reserve_aligned(1 << CHUNK_SHIFT, 1 << CHUNK_SHIFT) as usize;
        assert!(chunk != 0);
        let first = MAP.load(Ordering::Relaxed) as usize;
        assert_eq!(record_of(chunk + 5), Some(first));
        assert!(add_chunk(chunk, 0x1000, 256));
        assert!(entry_bytes() >= 256);
        assert_eq!(record_of(chunk), Some(0x1000));
        assert_eq!(record_of(chunk + (3 << 16) + 7), Some(0x1000 + 3 * 256));
        assert_eq!(
            record_of(chunk + (1 << CHUNK_SHIFT) - 1),
            Some(0x1000 + 31 * 256)
        );
        set_chunk(chunk, 0x2000, 0);
        assert_eq!(record_of(chunk + (17 << 16)), Some(0x2000));
        assert!(!is_zero_record(0x2000));
        remove_chunk(chunk);
        assert_eq!(record_of(chunk + (17 << 16)), Some(first));
        assert!(is_zero_record(first));
        // SAFETY: the map's first words, read as the fast path reads a record's token.
        assert_eq!(unsafe { *(first as *const usize) }, 0);
        assert_eq!(record_of(1 << 47), None);
        assert_eq!(record_of(usize::MAX), None);
        crate::os::unmap(chunk as *mut u8, 1 << CHUNK_SHIFT);
    }
}
