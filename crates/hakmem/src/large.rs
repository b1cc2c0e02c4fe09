//! Large blocks (above `MID_MAX`, or aligned beyond 64 KiB): each on its own mapping (or its own
//! part of one) with a header page in front, kept warm in BigCache when freed, and resized with
//! mremap so the kernel moves pages instead of copying them.
//!
//! Layouts (the mapping is `map_start .. map_start + map_len`):
//! - standard (alignment up to a page): the mapping starts 2 MiB-aligned, the header is its first
//!   page and the block starts one page in; the chunk is registered `Kind::Large`. A block from
//!   BigCache may be up to 25 % longer than asked for; a longer one is split (`shorten`: the
//!   rest, a block of its own from a 2 MiB boundary, stays in the same kernel mapping), and
//!   several shorter ones are moved into one new mapping (`gather`: a *spliced* block, on
//!   several kernel mappings side by side, which mremap cannot move again); `usable_size` is
//!   the whole rest of the mapping.
//! - aligned below 2 MiB: the same, with the block at `map_start + align`.
//! - aligned to 2 MiB or more: the block starts on a chunk boundary registered
//!   `Kind::LargeAligned`, and the header is the page just below it.

use crate::bigcache;
use crate::os::{self, PAGE};
use crate::registry::{self, Kind, CHUNK};
use core::ptr::null_mut;

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
    /// Whether the block may lie on several kernel mappings side by side (`gather`, or a part of
    /// such a block): mremap cannot move or grow it, so it is never moved.
    pub spliced: bool,
    /// When it was cached (ms, `clock::now_ms`).
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
/// would fault 4 KiB at a time (a block of 1.8 MiB: 470 faults instead of one). Mappings over
/// `HUGE_MAX_LEN`, which take no huge pages, are rounded all the same: in whole 2 MiB sizes more
/// cached blocks fit later requests (malloc-large on 5f31774, 4 runs each: 450-454 MB peak and
/// 183,000-188,000 faults, against 460 MB and 198,000 when only mappings up to the bound were
/// rounded).
fn huge_rounded(len: usize) -> usize {
    let up = os::align_up(len, CHUNK);
    if up - len <= up / 8 && crate::config::get().thp {
        up
    } else {
        len
    }
}

/// Mappings up to this length take huge pages: blocks up to 4 MiB. Bigger ones keep 4 KiB pages.
/// A big block is likely an array touched in part (barnes: 60 MB touched of 494 MiB mapped,
/// 7.5 MB more resident as huge pages), and a program that churns big blocks writes them whole,
/// where on a virtual machine that hands freed memory back to its host a huge page faulted in
/// anew costs more than its 512 small pages (malloc-large on e1fc732: 1.30 s against 1.86 s,
/// medians of 5). A block advised when it was mapped keeps its advice when it grows past the
/// bound: by realloc, by BigCache serving a bigger request with it, or moved with other blocks
/// into one mapping (`gather`), which is then advised whole.
const HUGE_MAX_LEN: usize = (4 << 20) + PAGE;

/// Whether a large mapping of `len` bytes can hold a huge page at all, and huge pages are on:
/// its first 2 MiB (the header's) is the one BigCache's purge withdraws the advice from.
pub fn may_be_huge(len: usize) -> bool {
    len >= CHUNK && crate::config::get().thp
}

/// Whether a large mapping of `len` bytes mapped or reused now is advised huge pages.
fn huge_backed(len: usize) -> bool {
    may_be_huge(len) && len <= HUGE_MAX_LEN
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
        let taken = bigcache::take(len);
        // SAFETY: BigCache hands out valid, registered, unused standard blocks.
        return unsafe {
            match taken.n {
                0 => fresh(len),
                1 => reuse(taken.pieces[0], taken.depth[0], len),
                n => gather(&taken.pieces[..n], &taken.depth[..n], len),
            }
        };
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

/// Serves a request for a mapping of `len` bytes with one block BigCache handed out, `depth`
/// deep (`bigcache::Taken`): a much longer one is shortened, a shorter one grown (a spliced one
/// is gathered, as mremap cannot grow it).
///
/// # Safety
/// `h` is the header of a standard block BigCache handed out, which nothing else uses.
unsafe fn reuse(h: *mut LargeHeader, depth: usize, len: usize) -> (*mut u8, bool) {
    // SAFETY: `h` is valid and ours (the caller's contract); its tail past `len` is unused too.
    unsafe {
        if (*h).map_len < len && (*h).spliced {
            return gather(&[h], &[depth], len);
        }
        if !(*h).purged {
            bigcache::note_reuse((*h).cached_ms, depth, (*h).map_len.min(len));
        }
        crate::stats::add(&crate::stats::BIGCACHE_HITS, 1);
        crate::stats::large_taken((*h).map_len, true);
        if (*h).map_len > len + len / 4 {
            shorten(h, len);
        }
        // Advice before a grow below, which keeps it (mremap moves it with the pages): a purged
        // block gets back the advice the purge withdrew from its first 2 MiB (`bigcache.rs`),
        // which its header page keeps from faulting in as one.
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
            crate::stats::large_given_back((*h).map_len, (*h).standard);
            unmap(h);
            return fresh(len);
        }
        ((*h).user as *mut u8, (*h).purged)
    }
}

/// Serves a request for a mapping of `len` bytes with warm blocks BigCache handed out, each
/// shorter than `len`: they are moved with their pages (mremap) into one new mapping, each on a
/// 2 MiB boundary so that its huge pages move whole (the gaps are fresh pages), until they cover
/// `len`. Of the last one, only the end it needs moves when the rest is worth keeping
/// (`MIN_REST`): from a 2 MiB boundary, while its start stays cached. Pieces not needed go back
/// to BigCache; when one piece that is one kernel mapping is enough, `reuse` grows it instead. A
/// piece that does not move (a spliced one, on several kernel mappings, before Linux 6.17) goes
/// back too, and fresh pages take its place. The bytes moved are noted as reuses (`depths`, as
/// `bigcache::Taken`'s).
///
/// # Safety
/// `pieces` are the headers of warm standard blocks BigCache handed out, which nothing else uses.
unsafe fn gather(pieces: &[*mut LargeHeader], depths: &[usize], len: usize) -> (*mut u8, bool) {
    // SAFETY: the pieces are valid and ours (the caller's contract); a piece moved whole is
    // unregistered before it moves, as another thread may map and register its old range once
    // mremap returns; the new header is written in the mapping the moves made, then registered.
    unsafe {
        let mut offset = [0usize; bigcache::MAX_PIECES];
        let mut used = 0;
        let mut end = 0;
        while used < pieces.len() && end < len {
            offset[used] = end;
            end = os::align_up(end + (*pieces[used]).map_len, CHUNK);
            used += 1;
        }
        for &p in &pieces[used..] {
            bigcache::put_back(p);
        }
        let last = pieces[used - 1];
        if used == 1 && !(*last).spliced {
            return reuse(last, depths[0], len);
        }
        let last_len = (*last).map_len;
        let need = len - offset[used - 1];
        // What the last piece keeps: its start, up to a 2 MiB boundary.
        let mut keep = (last_len - need.min(last_len)) & !(CHUNK - 1);
        if keep < MIN_REST {
            keep = 0;
        }
        let map_len = len.max(offset[used - 1] + last_len - keep);
        let target = os::map_aligned(map_len, CHUNK, 0);
        if target.is_null() || !registry::in_range(target as usize + map_len) {
            if !target.is_null() {
                os::unmap(target, map_len);
            }
            for &p in &pieces[..used] {
                bigcache::put_back(p);
            }
            return fresh(len);
        }
        let mut huge = huge_backed(map_len);
        let mut kept_last = false;
        for (i, &p) in pieces[..used].iter().enumerate() {
            // Read before the move, which takes the header along.
            let (start, plen, piece_huge) = ((*p).map_start, (*p).map_len, (*p).huge);
            let (warm, cached_ms) = (!(*p).purged, (*p).cached_ms);
            let to = target.add(offset[i]);
            let tail = i + 1 == used && keep > 0;
            let (from, from_len) = if tail {
                (start + keep, plen - keep)
            } else {
                (start, plen)
            };
            if !tail {
                registry::set(start, Kind::None);
            }
            if os::move_to(from as *mut u8, from_len, from_len, to) {
                if warm {
                    bigcache::note_reuse(cached_ms, depths[i], from_len);
                }
                huge |= piece_huge;
                kept_last = tail;
                continue;
            }
            if !tail {
                registry::set(start, Kind::Large);
            }
            bigcache::put_back(p);
            if !os::map_fixed(to, from_len) {
                // The new mapping has a hole (or never had the pages): given up.
                os::unmap(target, map_len);
                for &q in &pieces[i + 1..used] {
                    bigcache::put_back(q);
                }
                return fresh(len);
            }
        }
        if kept_last {
            (*last).map_len = keep;
            if keep < CHUNK {
                (*last).huge = false;
            }
            bigcache::put_back(last);
        }
        if huge {
            os::advise_huge(target, map_len);
        }
        crate::stats::add(&crate::stats::BIGCACHE_HITS, 1);
        let user = target as usize + PAGE;
        let h = write_header(target, map_len, user, Kind::Large, true, huge);
        (*h).spliced = true;
        registry::set(target as usize, Kind::Large);
        crate::stats::large_taken(map_len, true);
        (user as *mut u8, false)
    }
}

/// Shortens a block BigCache handed out for a mapping of `len` bytes: the rest from the first
/// 2 MiB boundary past `len` becomes a block of its own (its header on the boundary, in the same
/// kernel mapping), kept in BigCache as it was (warm or purged). The pages between `len` and the
/// boundary stay with the block when they are at most a quarter more than asked for, else they
/// are unmapped. A rest under `MIN_REST` is unmapped with them.
///
/// # Safety
/// `h` is the header of a standard block taken from BigCache whose bytes past `len` nobody uses.
unsafe fn shorten(h: *mut LargeHeader, len: usize) {
    // SAFETY: the block and its tail are ours (the caller's contract); the rest's header is
    // written on its first page, a 2 MiB boundary of our mapping, before it is registered.
    unsafe {
        let map_len = (*h).map_len;
        let cut = os::align_up(len, CHUNK);
        if cut + MIN_REST > map_len {
            trim(h, len);
            return;
        }
        let start = (*h).map_start + cut;
        let rest_len = map_len - cut;
        if (*h).purged && may_be_huge(rest_len) {
            // The header's write must not fault a whole huge page in (as `bigcache.rs` purges).
            os::advise_no_huge(start as *mut u8, CHUNK);
        }
        let rest = write_header(
            start as *mut u8,
            rest_len,
            start + PAGE,
            Kind::Large,
            true,
            (*h).huge && rest_len >= CHUNK,
        );
        (*rest).purged = (*h).purged;
        (*rest).spliced = (*h).spliced;
        registry::set(start, Kind::Large);
        crate::stats::large_resized(map_len, cut);
        (*h).map_len = cut;
        bigcache::put_back(rest);
        if cut - len > len / 4 {
            trim(h, len);
        }
    }
}

/// The shortest rest `shorten` keeps as a block of its own: large blocks start above this.
const MIN_REST: usize = 256 << 10;

/// Writes the header of a large block at `user` on the mapping `start .. start + len` where
/// `kind` puts it (`header_location`), and returns it.
///
/// # Safety
/// The mapping is ours and the header's page in it holds no data.
unsafe fn write_header(
    start: *mut u8,
    len: usize,
    user: usize,
    kind: Kind,
    standard: bool,
    huge: bool,
) -> *mut LargeHeader {
    let h = header_location(user, kind);
    // SAFETY: the page is ours and unused (the caller's contract).
    unsafe {
        h.write(LargeHeader {
            magic: MAGIC,
            map_start: start as usize,
            map_len: len,
            user,
            standard,
            purged: false,
            huge,
            spliced: false,
            cached_ms: 0,
            cached: false,
            site: 0,
            links: crate::list::Links::new(),
        });
    }
    h
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
    // SAFETY: the header page is the start of (or inside) our fresh mapping.
    unsafe { write_header(start, len, user, kind, standard, huge) };
    registry::set(user & !(CHUNK - 1), kind);
    crate::stats::large_taken(len, standard);
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
        crate::stats::large_given_back((*h).map_len, (*h).standard);
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
        if (*h).spliced {
            return null_mut();
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
    use core::sync::atomic::Ordering;

    #[test]
    fn standard_lengths_are_page_rounded() {
        assert_eq!(standard_len(256 * 1024 + 1), 256 * 1024 + 2 * PAGE);
        assert_eq!(standard_len(2 << 20), (2 << 20) + PAGE);
    }

    /// A block of `size` bytes filled with `tag`, as the program sees it.
    fn filled(size: usize, tag: u8) -> *mut u8 {
        let (p, _) = alloc(size, 16);
        assert!(!p.is_null());
        // SAFETY: `p` is a fresh block of `size` bytes.
        unsafe { core::ptr::write_bytes(p, tag, size) };
        p
    }

    fn release(p: *mut u8) {
        let h = header_of(p as usize, Kind::Large);
        assert!(!h.is_null());
        // SAFETY: `h` is the header of the live block `p`, freed once.
        unsafe { free(h) };
    }

    /// Whether every byte of `p .. p + n` is `tag`.
    fn holds_tag(p: *mut u8, n: usize, tag: u8) -> bool {
        // SAFETY: the caller passes a range of a live block.
        unsafe { core::slice::from_raw_parts(p, n).iter().all(|&b| b == tag) }
    }

    /// Held by a test of BigCache's reuse: serializes it, empties BigCache and keeps freed blocks
    /// warm (a purge delay no test's pause reaches); when dropped, even by a failing test, it
    /// empties BigCache and puts the default strategy back.
    struct WarmCache(#[allow(dead_code)] crate::tests::Knobs);

    impl WarmCache {
        fn new() -> WarmCache {
            let knobs = crate::tests::Knobs::set(&crate::learn::Strategy {
                purge_delay_ms: 600_000,
                ..crate::learn::strategy::DEFAULT
            });
            bigcache::clear();
            WarmCache(knobs)
        }
    }

    impl Drop for WarmCache {
        // The knobs go back to the default after this, with the lock still held.
        fn drop(&mut self) {
            os::injected::MOVE_FAILURES.set(0);
            os::injected::MAP_FIXED_FAILURES.set(0);
            bigcache::clear();
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn warm_blocks_shorter_than_asked_are_moved_together_with_their_pages() {
        let _cache = WarmCache::new();
        let mib = 1 << 20;
        cache_two_tagged_blocks();
        let hits = crate::stats::BIGCACHE_HITS.load(Ordering::Relaxed);
        let p = filled_not(10 * mib);
        assert_eq!(
            crate::stats::BIGCACHE_HITS.load(Ordering::Relaxed),
            hits + 1
        );
        // The first block moved whole; the second gave the end the request needed, from a 2 MiB
        // boundary of its own (2 MiB and a page), and keeps its first 4 MiB cached.
        assert_eq!(bigcache::stats(), (1, 4 * mib));
        // Their pages were moved, not faulted in again: the contents are there. The first block
        // starts the new one; the second one's end lands on its next 2 MiB boundary (8 MiB in
        // the mapping, a page less in the block), and the pages between are fresh.
        let first = [0xA1, 0xB2].into_iter().find(|&t| holds_tag(p, 6 * mib, t));
        assert!(first.is_some());
        let second = if first == Some(0xA1) { 0xB2 } else { 0xA1 };
        // SAFETY: the block is at least 10 MiB long.
        assert!(holds_tag(unsafe { p.add(6 * mib) }, 2 * mib - PAGE, 0));
        // SAFETY: as above.
        assert!(holds_tag(
            unsafe { p.add(8 * mib - PAGE) },
            2 * mib + PAGE,
            second
        ));
        // SAFETY: as above.
        unsafe { core::ptr::write_bytes(p, 0x5C, 10 * mib) };
        assert!(holds_tag(p, 10 * mib, 0x5C));
        release(p);
    }

    /// Frees two warm 6 MiB blocks tagged 0xA1 and 0xB2 and asks for 10 MiB, which gathers them,
    /// with the first `moves` moves and `fixes` fresh mappings failing; returns the block and
    /// the tags of the piece gathered first and of the second.
    fn gather_failing(moves: usize, fixes: usize) -> (*mut u8, u8, u8) {
        let mib = 1 << 20;
        cache_two_tagged_blocks();
        // The piece BigCache hands out first (its most recent block) is the first one moved.
        let (first, second) = (0xB2, 0xA1);
        os::injected::MOVE_FAILURES.set(moves);
        os::injected::MAP_FIXED_FAILURES.set(fixes);
        let p = filled_or_fresh(10 * mib);
        assert_eq!(os::injected::MOVE_FAILURES.get(), 0);
        assert_eq!(os::injected::MAP_FIXED_FAILURES.get(), 0);
        (p, first, second)
    }

    /// A block of `size` bytes, from BigCache or fresh.
    fn filled_or_fresh(size: usize) -> *mut u8 {
        let (p, _) = alloc(size, 16);
        assert!(!p.is_null());
        p
    }

    /// Writes all of `p .. p + n` and checks it; takes a 6 MiB block from BigCache for each of
    /// `tags` and checks that their pages are all there with the tags, in some order.
    fn usable_and_cached(p: *mut u8, n: usize, tags: &[u8]) {
        let mib = 1 << 20;
        // SAFETY: the caller passes a live block of at least `n` bytes.
        unsafe { core::ptr::write_bytes(p, 0x5C, n) };
        assert!(holds_tag(p, n, 0x5C));
        let cached: Vec<*mut u8> = tags.iter().map(|_| filled_not(6 * mib)).collect();
        for &t in tags {
            assert!(cached.iter().any(|&q| holds_tag(q, 6 * mib, t)), "{t:#x}");
        }
        for q in cached {
            // SAFETY: `q` is a live block of 6 MiB.
            unsafe { core::ptr::write_bytes(q, 0x3A, 6 * mib) };
            release(q);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn a_piece_that_does_not_move_goes_back_and_fresh_pages_take_its_place() {
        let _cache = WarmCache::new();
        let mib = 1 << 20;
        let (p, first, second) = gather_failing(1, 0);
        // The first piece stayed where it was, back in BigCache; fresh pages fill its place in
        // the new block; the second piece moved (its end, as in the test above).
        let h = header_of(p as usize, Kind::Large);
        // SAFETY: `h` is the header of the live block `p`.
        assert!(unsafe { (*h).spliced });
        assert!(holds_tag(p, 6 * mib, 0));
        // SAFETY: the block is at least 10 MiB long.
        assert!(holds_tag(
            unsafe { p.add(8 * mib - PAGE) },
            2 * mib + PAGE,
            second
        ));
        assert_eq!(bigcache::stats().0, 2);
        usable_and_cached(p, 10 * mib, &[first]);
        release(p);
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn a_gather_that_cannot_fill_its_hole_gives_up_and_keeps_the_pieces() {
        let _cache = WarmCache::new();
        let (p, first, second) = gather_failing(1, 1);
        // Neither piece was moved: both are back in BigCache, whole, and the request was served
        // by a fresh mapping.
        let h = header_of(p as usize, Kind::Large);
        // SAFETY: `h` is the header of the live block `p`.
        assert!(!unsafe { (*h).spliced });
        assert_eq!(bigcache::stats().0, 2);
        usable_and_cached(p, 10 << 20, &[first, second]);
        release(p);
    }

    std::thread_local! {
        /// Bytes `count_reuse` was told of on this thread (reuses are noted by the thread that
        /// allocates, so tests running beside this one do not add to it).
        static OBSERVED: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
    }

    fn count_reuse(_age_ms: u64, _depth: u64, bytes: usize) {
        OBSERVED.set(OBSERVED.get() + bytes);
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn the_reuse_observer_counts_the_bytes_a_request_uses() {
        let _cache = WarmCache::new();
        let mib = 1 << 20;
        let before = bigcache::observe_reuses(Some(count_reuse));
        // Split: of a 20 MiB block, the 5 MiB the request uses; its rest stays cached.
        release(filled(20 * mib, 0x7E));
        OBSERVED.set(0);
        let small = filled_not(5 * mib);
        let split = OBSERVED.replace(0);
        release(small);
        bigcache::clear();
        // Gathered: of two 6 MiB blocks, the whole first and the end of the second from its
        // 4 MiB boundary (as in the tests above); its first 4 MiB stay cached, and count when a
        // request takes them.
        cache_two_tagged_blocks();
        let gathered = filled_not(10 * mib);
        let moved = OBSERVED.replace(0);
        let start = filled_not(4 * mib - PAGE);
        let rest = OBSERVED.replace(0);
        release(gathered);
        release(start);
        bigcache::observe_reuses(before);
        assert_eq!(split, standard_len(5 * mib));
        assert_eq!(moved, 2 * standard_len(6 * mib) - 4 * mib);
        assert_eq!(rest, 4 * mib);
    }

    /// Caches two warm blocks of 6 MiB, one all 0xA1, then one all 0xB2.
    fn cache_two_tagged_blocks() {
        let (a, b) = (filled(6 << 20, 0xA1), filled(6 << 20, 0xB2));
        release(a);
        release(b);
    }

    /// A block of `size` bytes from BigCache, its contents left as they are.
    fn filled_not(size: usize) -> *mut u8 {
        let (p, zeroed) = alloc(size, 16);
        assert!(!p.is_null() && !zeroed);
        p
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn a_much_longer_warm_block_is_split_and_its_rest_kept_warm() {
        let _cache = WarmCache::new();
        let mib = 1 << 20;
        let big = filled(20 * mib, 0x7E);
        release(big);
        // The request takes the block's start; the rest, from the next 2 MiB boundary, stays
        // cached with its pages.
        let small = filled_not(5 * mib);
        assert_eq!(small, big);
        let (blocks, warm) = bigcache::stats();
        assert_eq!(blocks, 1);
        assert!(warm >= 14 * mib, "{warm}");
        // The rest serves the next request, its contents still there (a page for its header).
        let rest = filled_not(12 * mib);
        // SAFETY: both are blocks carved from the one mapping at `big`.
        assert_eq!(rest, unsafe { big.add(6 * mib) });
        assert!(holds_tag(rest, 12 * mib, 0x7E));
        // SAFETY: `small` is a live block of 5 MiB.
        assert!(holds_tag(small, 5 * mib, 0x7E));
        // SAFETY: as above.
        unsafe { core::ptr::write_bytes(small, 0x11, 5 * mib) };
        assert!(holds_tag(rest, 12 * mib, 0x7E));
        for p in [small, rest] {
            assert!(holds(p as usize));
            release(p);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn a_split_far_from_a_2_mib_boundary_unmaps_the_pages_up_to_it() {
        let _cache = WarmCache::new();
        let mib = 1 << 20;
        let big = filled(20 * mib, 0x3C);
        release(big);
        // 4.5 MiB: the next 2 MiB boundary (6 MiB) would leave the block a third more than it
        // asked for, so the pages up to it are unmapped; the rest stays cached from there.
        let small = filled_not(4 * mib + mib / 2);
        assert_eq!(small, big);
        let h = header_of(small as usize, Kind::Large);
        // SAFETY: `h` is the header of the live block `small`.
        assert!(unsafe { usable_size(h) } < 5 * mib);
        let (blocks, warm) = bigcache::stats();
        assert_eq!(blocks, 1);
        assert!(warm >= 14 * mib, "{warm}");
        let rest = filled_not(14 * mib);
        // SAFETY: both are blocks carved from the one mapping at `big`.
        assert_eq!(rest, unsafe { big.add(6 * mib) });
        assert!(holds_tag(rest, 14 * mib, 0x3C));
        assert!(holds_tag(small, 4 * mib + mib / 2, 0x3C));
        // SAFETY: a byte inside the unmapped gap's neighbour, the end of `small`, is ours.
        assert!(holds(unsafe { small.add(4 * mib) } as usize));
        for p in [small, rest] {
            release(p);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn a_gathered_block_grows_by_copy_and_is_gathered_again() {
        let _cache = WarmCache::new();
        let mib = 1 << 20;
        cache_two_tagged_blocks();
        let g = filled_not(10 * mib);
        let h = header_of(g as usize, Kind::Large);
        // SAFETY: `h` is the header of the live block `g`.
        assert!(unsafe { (*h).spliced });
        // SAFETY: `g` is at least 10 MiB long.
        unsafe { core::ptr::write_bytes(g, 0x6D, 10 * mib) };
        // Every byte of it is ours, past the header page of the second piece too.
        // SAFETY: offsets inside the block.
        assert!([0, 6 * mib, 10 * mib - 1]
            .iter()
            .all(|&o| holds(unsafe { g.add(o) } as usize)));
        // Growing it by mremap would fail across its mappings: the caller copies.
        // SAFETY: `h` is the header of the live block `g`.
        assert!(unsafe { resize(h, 30 * mib) }.is_null());
        assert!(holds_tag(g, 10 * mib, 0x6D));
        release(g);
        // Freed, it is gathered into a longer request like any other block: moved whole where
        // the kernel moves several mappings at once (Linux 6.17 on), else replaced by fresh pages.
        let x = filled_not(20 * mib);
        assert!(holds_tag(x, 10 * mib, 0x6D) || holds_tag(x, 10 * mib, 0));
        // SAFETY: `x` is a live block of 20 MiB.
        unsafe { core::ptr::write_bytes(x, 0x2B, 20 * mib) };
        assert!(holds_tag(x, 20 * mib, 0x2B));
        // SAFETY: offsets inside the block.
        assert!([0, 12 * mib, 20 * mib - 1]
            .iter()
            .all(|&o| holds(unsafe { x.add(o) } as usize)));
        release(x);
    }
}
