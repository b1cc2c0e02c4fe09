//! Large blocks (above `MID_MAX`, or aligned beyond 64 KiB): each on its own mapping with a header
//! page in front, kept warm in BigCache when freed, and resized with mremap so the kernel moves
//! pages instead of copying them.
//!
//! Layouts (the mapping is `map_start .. map_start + map_len`):
//! - standard (alignment up to a page): the mapping starts 2 MiB-aligned, the header is its first
//!   page and the block starts one page in; the chunk is registered `Kind::Large`. BigCache may
//!   hand back a mapping up to 25 % longer than asked for (it trims a longer one and grows a
//!   shorter one); `usable_size` is the whole rest of the mapping.
//! - aligned below 2 MiB: the same, with the block at `map_start + align`.
//! - aligned to 2 MiB or more: the block starts on a chunk boundary registered
//!   `Kind::LargeAligned`, and the header is the page just below it.

use crate::bigcache;
use crate::os::{self, PAGE};
use crate::registry::{self, Kind, CHUNK};
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, Ordering};

const MAGIC: u64 = 0x6861_6b6d_656d_4c47; // "hakmemLG"
/// Largest mapping BigCache keeps; bigger ones are unmapped on free.
pub const MAX_CACHED_LEN: usize = 256 << 20;
/// Requests above this cannot be satisfied (they would overflow the size arithmetic).
pub const MAX_REQUEST: usize = isize::MAX as usize - 2 * (MAX_CACHED_LEN + CHUNK);

#[repr(C)]
pub struct LargeHeader {
    magic: u64,
    pub map_start: usize,
    pub map_len: usize,
    pub user: usize,
    /// Whether the block uses the standard layout (and so may be cached and moved).
    pub standard: bool,
    /// Set while cached: its pages were returned to the OS, so it reads as zeros.
    pub purged: bool,
    /// Whether the mapping is advised huge pages (`huge_backed` when mapped or reused).
    pub huge: bool,
    /// When it was cached (ms, `os::now_ms`).
    pub cached_ms: u64,
    /// Set while the block sits in BigCache (freed): a second free is a double free.
    pub cached: bool,
    /// The call site of its allocation when `sites` recorded it, else 0.
    pub site: usize,
    pub links: crate::list::Links<LargeHeader>,
}

impl crate::list::Linked for LargeHeader {
    unsafe fn links(this: *mut Self) -> *const crate::list::Links<Self> {
        // SAFETY: `this` is valid (the caller's contract); no reference to the record is made.
        unsafe { &raw const (*this).links }
    }
}

/// Mapping length for a standard block of `size` bytes: header page plus size, page-rounded.
pub fn standard_len(size: usize) -> usize {
    os::align_up(size + PAGE, PAGE)
}

/// `len` rounded up to whole huge pages when that wastes at most an eighth of the mapping and
/// huge pages are on: the last, partial 2 MiB of a mapping can never be a huge page, so it
/// would fault 4 KiB at a time (a block of 1.8 MiB: 470 faults instead of one).
fn huge_rounded(len: usize) -> usize {
    let up = os::align_up(len, CHUNK);
    if up - len <= up / 8 && crate::config::get().thp {
        up
    } else {
        len
    }
}

/// Mappings up to this length take huge pages from the start: blocks up to 4 MiB.
const EAGER_HUGE_LEN: usize = (4 << 20) + PAGE;

/// Set once a mapping longer than `EAGER_HUGE_LEN` has been freed: the program churns big
/// blocks, so their huge pages save faults. Until then a big block is more likely an array
/// touched in part (barnes: 60 MB touched of 494 MiB mapped, 7.5 MB more resident as huge pages,
/// for no time won), which 4 KiB pages keep smaller. A block advised when it was mapped keeps
/// its advice when realloc grows it past the bound.
static BIG_BLOCKS_FREED: AtomicBool = AtomicBool::new(false);

/// Whether a large mapping of `len` bytes can hold a huge page at all, and huge pages are on:
/// its first 2 MiB (the header's) is the one BigCache's purge withdraws the advice from.
pub fn may_be_huge(len: usize) -> bool {
    len >= CHUNK && crate::config::get().thp
}

/// Whether a large mapping of `len` bytes mapped or reused now is advised huge pages.
fn huge_backed(len: usize) -> bool {
    may_be_huge(len) && (len <= EAGER_HUGE_LEN || BIG_BLOCKS_FREED.load(Ordering::Relaxed))
}

/// A large block of at least `size` bytes aligned to `align` (a power of two). Returns the block
/// and whether its memory is known to be zero, or null when the OS has no memory.
pub fn alloc(size: usize, align: usize) -> (*mut u8, bool) {
    if size > MAX_REQUEST || align > MAX_REQUEST {
        return (null_mut(), false);
    }
    crate::stats::add(&crate::stats::LARGE_ALLOCS, 1);
    if align <= PAGE {
        let len = huge_rounded(standard_len(size));
        let h = bigcache::take(len);
        if !h.is_null() {
            crate::stats::add(&crate::stats::BIGCACHE_HITS, 1);
            // SAFETY: BigCache hands out a valid, registered, unused standard block; its tail past
            // `len` is unused too.
            unsafe {
                crate::stats::large_taken((*h).map_len);
                if (*h).map_len > len + len / 4 {
                    trim(h, len);
                }
                // Advice before a grow below, which keeps it (mremap moves it with the pages):
                // a block mapped before big blocks were freed takes huge pages from now on, and a
                // purged one gets back the advice the purge withdrew from its first 2 MiB
                // (`bigcache.rs`), which its header page keeps from faulting in as one.
                if (*h).huge || huge_backed(len.max((*h).map_len)) {
                    if !(*h).huge || (*h).purged {
                        os::advise_huge((*h).map_start as *mut u8, (*h).map_len);
                    }
                    if (*h).purged {
                        os::collapse_huge((*h).map_start as *mut u8, CHUNK);
                    }
                    (*h).huge = true;
                }
                if (*h).map_len < len {
                    // A warm block shorter than asked: moved and grown, only the rest faults.
                    let p = resize(h, len - PAGE);
                    if !p.is_null() {
                        return (p, false);
                    }
                    crate::stats::large_given_back((*h).map_len);
                    unmap(h);
                    return fresh(len);
                }
                return ((*h).user as *mut u8, (*h).purged);
            }
        }
        return fresh(len);
    }
    if align < CHUNK {
        let len = os::align_up(align + size, PAGE);
        let start = os::map_aligned(len, CHUNK, 0);
        return (
            register(start, len, start as usize + align, Kind::Large, false),
            true,
        );
    }
    let len = os::align_up(PAGE + size, PAGE);
    if len
        .checked_add(align)
        .is_none_or(|total| total > MAX_REQUEST)
    {
        return (null_mut(), false);
    }
    let start = os::map_aligned(len, align, PAGE);
    (
        register(start, len, start as usize + PAGE, Kind::LargeAligned, false),
        true,
    )
}

/// A new standard block on a mapping of `len` bytes (zeroed), or null.
fn fresh(len: usize) -> (*mut u8, bool) {
    let start = os::map_aligned(len, CHUNK, 0);
    (
        register(start, len, start as usize + PAGE, Kind::Large, true),
        true,
    )
}

fn register(start: *mut u8, len: usize, user: usize, kind: Kind, standard: bool) -> *mut u8 {
    if start.is_null() {
        return null_mut();
    }
    if !registry::in_range(user + len) {
        os::unmap(start, len);
        return null_mut();
    }
    let huge = huge_backed(len);
    if huge {
        os::advise_huge(start, len);
    }
    let h = header_location(user, kind);
    // SAFETY: the header page is the start of (or inside) our fresh mapping.
    unsafe {
        h.write(LargeHeader {
            magic: MAGIC,
            map_start: start as usize,
            map_len: len,
            user,
            standard,
            purged: false,
            huge,
            cached_ms: 0,
            cached: false,
            site: 0,
            links: crate::list::Links::new(),
        });
    }
    registry::set(user & !(CHUNK - 1), kind);
    crate::stats::large_taken(len);
    user as *mut u8
}

fn header_location(user: usize, kind: Kind) -> *mut LargeHeader {
    match kind {
        Kind::LargeAligned => (user - PAGE) as *mut LargeHeader,
        _ => (user & !(CHUNK - 1)) as *mut LargeHeader,
    }
}

/// The header of the large block starting at `p`, or null if `p` is not such a block's start.
pub fn header_of(p: usize, kind: Kind) -> *mut LargeHeader {
    if kind == Kind::LargeAligned && p & (CHUNK - 1) != 0 {
        return null_mut();
    }
    let h = header_location(p, kind);
    // SAFETY: the registry says this chunk holds a large block, so its header page is mapped.
    unsafe {
        if (*h).magic != MAGIC || (*h).user != p {
            return null_mut();
        }
    }
    h
}

/// Whether `p` lies inside one of our large blocks (from its start to the end of its mapping,
/// freed or not), for misuse reports. A block registers only its first chunk, and no mapping of
/// ours starts between that chunk and the block's end, so the nearest registered chunk at or
/// below `p` is the only one to look at.
pub fn holds(p: usize) -> bool {
    if !registry::in_range(p) {
        return false;
    }
    let mut base = p & !(CHUNK - 1);
    loop {
        match registry::kind_of(base) {
            Kind::None => {}
            Kind::SuperSlab | Kind::MidSuperSlab => return false,
            kind => {
                let h = header_location(base, kind);
                // SAFETY: the registry says this chunk holds a large block, so its header is
                // mapped.
                return unsafe {
                    (*h).magic == MAGIC && (*h).user <= p && p < (*h).map_start + (*h).map_len
                };
            }
        }
        if base == 0 {
            return false;
        }
        base -= CHUNK;
    }
}

/// Frees a large block: into BigCache, or back to the OS.
///
/// # Safety
/// `h` is the header of a live large block that nothing uses any more.
pub unsafe fn free(h: *mut LargeHeader) {
    // SAFETY: `h` is a live block's valid header that nothing uses any more (the caller's
    // contract).
    unsafe {
        crate::stats::add(&crate::stats::LARGE_FREES, 1);
        crate::stats::large_given_back((*h).map_len);
        if (*h).map_len > EAGER_HUGE_LEN && !BIG_BLOCKS_FREED.load(Ordering::Relaxed) {
            BIG_BLOCKS_FREED.store(true, Ordering::Relaxed);
        }
        if (*h).standard && bigcache::put(h) {
            return;
        }
        unmap(h);
    }
}

/// Unregisters and unmaps a large block.
///
/// # Safety
/// `h` is the header of a large block that nothing uses any more.
pub unsafe fn unmap(h: *mut LargeHeader) {
    // SAFETY: `h` is a valid header of a block nothing uses (the caller's contract), read before
    // its mapping goes.
    unsafe {
        let (start, len, user) = ((*h).map_start, (*h).map_len, (*h).user);
        registry::set(user & !(CHUNK - 1), Kind::None);
        os::unmap(start as *mut u8, len);
    }
}

/// Bytes usable from the block's start to the end of its mapping.
///
/// # Safety
/// `h` is a valid header.
pub unsafe fn usable_size(h: *mut LargeHeader) -> usize {
    // SAFETY: `h` is a valid header (the caller's contract).
    unsafe { (*h).map_start + (*h).map_len - (*h).user }
}

/// Shortens a standard block's mapping to `len` bytes (page-aligned, shorter than now): its
/// tail goes back to the OS.
///
/// # Safety
/// `h` is the header of a standard large block whose bytes past `len` nobody uses.
unsafe fn trim(h: *mut LargeHeader, len: usize) {
    // SAFETY: the mapping past `len` is the block's own and unused (the caller's contract).
    unsafe {
        os::unmap(((*h).map_start + len) as *mut u8, (*h).map_len - len);
        crate::stats::large_resized((*h).map_len, len);
        (*h).map_len = len;
        if len < CHUNK {
            // No huge page fits any more; the purge and reuse advise whole 2 MiB from the start.
            (*h).huge = false;
        }
    }
}

/// Resizes a large block to `new_size` without copying if it can: in place, or by moving its
/// pages with mremap. Returns the (possibly moved) block, or null if the caller must copy.
///
/// # Safety
/// `h` is the header of a live large block.
pub unsafe fn resize(h: *mut LargeHeader, new_size: usize) -> *mut u8 {
    // SAFETY: `h` is the valid header of a live block (the caller's contract) that only the calling
    // thread resizes; the new header is written in the mapping the move just made, before it is
    // registered.
    unsafe {
        if new_size > MAX_REQUEST {
            return null_mut();
        }
        let usable = usable_size(h);
        if !(*h).standard {
            return if new_size <= usable {
                (*h).user as *mut u8
            } else {
                null_mut()
            };
        }
        let start = (*h).map_start as *mut u8;
        let old_len = (*h).map_len;
        let new_len = standard_len(new_size);
        if new_size <= usable && new_len > old_len / 2 {
            return (*h).user as *mut u8;
        }
        if new_len < old_len {
            trim(h, new_len);
            return (*h).user as *mut u8;
        }
        if os::resize_in_place(start, old_len, new_len) {
            crate::stats::large_resized(old_len, new_len);
            (*h).map_len = new_len;
            return (*h).user as *mut u8;
        }
        let target = os::reserve_aligned(new_len, CHUNK);
        if target.is_null() {
            return null_mut();
        }
        if !registry::in_range(target as usize + new_len) {
            os::unmap(target, new_len);
            return null_mut();
        }
        // Unregister before the move: once mremap returns, the old range may be mapped (and
        // registered) by another thread at any moment.
        registry::set(start as usize, Kind::None);
        if !os::move_to(start, old_len, new_len, target) {
            registry::set(start as usize, Kind::Large);
            os::unmap(target, new_len);
            return null_mut();
        }
        crate::stats::large_resized(old_len, new_len);
        let nh = target as *mut LargeHeader;
        (*nh).map_start = target as usize;
        (*nh).map_len = new_len;
        (*nh).user = target as usize + PAGE;
        registry::set(target as usize, Kind::Large);
        (*nh).user as *mut u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_lengths_are_page_rounded() {
        assert_eq!(standard_len(256 * 1024 + 1), 256 * 1024 + 2 * PAGE);
        assert_eq!(standard_len(2 << 20), (2 << 20) + PAGE);
    }
}
