//! The only code that talks to the kernel about memory: mmap, munmap, madvise, mremap, and the
//! files the kernel reports through (`read_file`, the huge-page mode).
//!
//! Every function returns a null pointer or `false` on failure and never panics or allocates, so the
//! callers can turn an exhausted address space into `NULL` + `ENOMEM`. What is mapped is counted
//! here (`stats::MAPPED`).

use core::ptr::null_mut;
use core::sync::atomic::{AtomicU8, Ordering};

/// Base page size. x86_64 Linux always uses 4 KiB base pages.
pub const PAGE: usize = 4096;

#[inline]
pub const fn align_up(x: usize, align: usize) -> usize {
    (x + align - 1) & !(align - 1)
}

/// Maps `len` bytes of fresh zeroed read-write memory anywhere, committed under the kernel's
/// overcommit policy (no MAP_NORESERVE): a size the machine cannot back fails here, with ENOMEM,
/// as it does under glibc, rather than succeeding and getting the program OOM-killed later.
pub fn map(len: usize) -> *mut u8 {
    counted(map_with(len, 0), len)
}

/// `p`, a mapping of `len` bytes or null, counted in `stats::MAPPED`.
fn counted(p: *mut u8, len: usize) -> *mut u8 {
    if !p.is_null() {
        crate::stats::MAPPED.add(len as u64);
    }
    p
}

/// mmap itself (not counted).
fn map_with(len: usize, extra_flags: libc::c_int) -> *mut u8 {
    if crate::config::get().fail_mmap_after.is_some() && injected_failure() {
        crate::stats::add(&crate::stats::MMAP_FAILURES, 1);
        return null_mut();
    }
    // SAFETY: anonymous private mapping with no address hint; no existing memory is affected.
    let p = unsafe {
        libc::mmap(
            null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        crate::stats::add(&crate::stats::MMAP_FAILURES, 1);
        null_mut()
    } else {
        p as *mut u8
    }
}

/// Test hook (`HAKMEM_FAIL_MMAP_AFTER=N`, `HAKMEM_FAIL_MMAP_TIMES=M`): mappings number N+1 to
/// N+M made by hakmem fail, as if the address space were exhausted.
#[cold]
fn injected_failure() -> bool {
    use core::sync::atomic::{AtomicU64, Ordering};
    static MAPS: AtomicU64 = AtomicU64::new(0);
    let cfg = crate::config::get();
    let n = MAPS.fetch_add(1, Ordering::Relaxed) + 1;
    let after = cfg.fail_mmap_after.unwrap_or(u64::MAX);
    n > after && n - after <= cfg.fail_mmap_times
}

/// Unmaps a range this module mapped.
pub fn unmap(p: *mut u8, len: usize) {
    if unmap_uncounted(p, len) {
        crate::stats::MAPPED.sub(len as u64);
    }
}

/// munmap itself: whether it worked.
fn unmap_uncounted(p: *mut u8, len: usize) -> bool {
    // SAFETY: the caller passes a range it owns and no longer uses.
    len > 0 && unsafe { libc::munmap(p as *mut libc::c_void, len) } == 0
}

/// Maps `len` bytes whose address `+ offset` is a multiple of `align` (a power of two >= PAGE).
/// Returns the start of the mapping (so `start + offset` is aligned), or null.
pub fn map_aligned(len: usize, align: usize, offset: usize) -> *mut u8 {
    map_aligned_with(len, align, offset, 0)
}

/// `map_aligned` for address space that is only reserved, never handed to the program as it is
/// (the target of `move_to`, whose pages come from the moved mapping): MAP_NORESERVE, not counted
/// as committed by the kernel.
pub fn reserve_aligned(len: usize, align: usize) -> *mut u8 {
    map_aligned_with(len, align, 0, libc::MAP_NORESERVE)
}

/// Reserves `len` bytes of address space, readable as zeros and not yet writable (a read-only
/// private mapping is neither charged to the kernel's commit limit nor counted as data): pages
/// become writable one at a time with `make_writable`. Left out of core dumps. Not counted as
/// hakmem's memory, and not subject to the failure hook. Null when the OS refuses.
pub fn reserve_read_only(len: usize) -> *mut u8 {
    // SAFETY: anonymous private mapping with no address hint; no existing memory is affected.
    let p = unsafe {
        libc::mmap(
            null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return null_mut();
    }
    // SAFETY: advice only, on the mapping just made.
    unsafe { libc::madvise(p, len, libc::MADV_DONTDUMP) };
    p as *mut u8
}

/// Makes pages of a `reserve_read_only` range writable. False when the OS refuses (the commit
/// limit, or the process's count of mappings).
pub fn make_writable(p: *mut u8, len: usize) -> bool {
    // SAFETY: changes the protection of a range of ours that holds no program data.
    unsafe {
        libc::mprotect(
            p as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
        ) == 0
    }
}

/// Whether the process has a finite address-space limit (`RLIMIT_AS`, `ulimit -v`).
pub fn address_space_is_limited() -> bool {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) == 0 && r.rlim_cur != libc::RLIM_INFINITY }
}

/// Maps `len + align` bytes and trims both ends; only the `len` kept are counted.
fn map_aligned_with(len: usize, align: usize, offset: usize, flags: libc::c_int) -> *mut u8 {
    counted(map_aligned_uncounted(len, align, offset, flags), len)
}

/// `map_aligned` for address space handed out piece by piece later: not counted in
/// `stats::MAPPED` until `count_mapped` says a piece is in use.
pub fn map_aligned_ahead(len: usize, align: usize) -> *mut u8 {
    map_aligned_uncounted(len, align, 0, 0)
}

/// Counts `len` bytes of a `map_aligned_ahead` range, now in use, in `stats::MAPPED` (`unmap`
/// takes them off again).
pub fn count_mapped(len: usize) {
    crate::stats::MAPPED.add(len as u64);
}

/// Unmaps a `map_aligned_ahead` range none of which was counted.
pub fn unmap_ahead(p: *mut u8, len: usize) {
    unmap_uncounted(p, len);
}

/// `map_aligned_with` without counting.
fn map_aligned_uncounted(len: usize, align: usize, offset: usize, flags: libc::c_int) -> *mut u8 {
    let Some(reserve) = len.checked_add(align) else {
        return null_mut();
    };
    let raw = map_with(reserve, flags);
    if raw.is_null() {
        return null_mut();
    }
    let raw_addr = raw as usize;
    let start = align_up(raw_addr + offset, align) - offset;
    unmap_uncounted(raw, start - raw_addr);
    let end = start + len;
    unmap_uncounted(end as *mut u8, raw_addr + reserve - end);
    start as *mut u8
}

/// Tells the kernel the pages in the range may be dropped; they read as zero afterwards.
pub fn discard(p: *mut u8, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: the range is ours and holds no live data.
    unsafe { libc::madvise(p as *mut libc::c_void, len, libc::MADV_DONTNEED) };
}

/// Asks for transparent huge pages on a range (2 MiB-aligned for any effect): one page fault
/// per 2 MiB instead of 512. Harmless where THP is off.
pub fn advise_huge(p: *mut u8, len: usize) {
    // SAFETY: advice only; the range is ours.
    unsafe { libc::madvise(p as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
}

/// Maps a range advised for huge pages (2 MiB-aligned, whole huge pages) as huge pages now.
/// Discarding all but the first page of a huge page (a large block's or a SuperSlab's header
/// stays) splits it, and touching the rest again would fault 4 KiB at a time; collapsing makes
/// it one huge page again, as a fresh mapping's first touch would. Harmless where the kernel
/// lacks MADV_COLLAPSE (Linux 6.1) or has no huge page to spare.
pub fn collapse_huge(p: *mut u8, len: usize) {
    // SAFETY: advice only; the range is ours and its contents are kept.
    unsafe { libc::madvise(p as *mut libc::c_void, len, MADV_COLLAPSE) };
}

const MADV_COLLAPSE: libc::c_int = 25;

/// Reads the start of file `path` into `buf`; returns the bytes read (0 if it cannot be read).
/// Raw system calls, errno kept: safe under the allocator's locks, as no library can interpose
/// them (and allocate) and no thread cancellation can act on them.
pub fn read_file(path: &core::ffi::CStr, buf: &mut [u8]) -> usize {
    let saved_errno = errno();
    // SAFETY: openat/read/close with a NUL-terminated path and our own buffer.
    let len = unsafe {
        let fd = libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        let mut len = 0;
        if fd >= 0 {
            while len < buf.len() {
                let n = libc::syscall(libc::SYS_read, fd, buf[len..].as_mut_ptr(), buf.len() - len);
                if n <= 0 {
                    break;
                }
                len += n as usize;
            }
            libc::syscall(libc::SYS_close, fd);
        }
        len
    };
    set_errno(saved_errno);
    len
}

/// Whether the kernel backs every anonymous mapping with transparent huge pages unless advised
/// otherwise (its mode is `always`, not `madvise` or `never`), for every size or (kernels with
/// per-size modes, 6.8 on) for 2 MiB pages; read once.
pub fn huge_pages_by_default() -> bool {
    // 0: not read yet; 1: no; 2: yes.
    static MODE: AtomicU8 = AtomicU8::new(0);
    match MODE.load(Ordering::Relaxed) {
        0 => {
            let mut buf = [0u8; 64];
            let n = read_file(c"/sys/kernel/mm/transparent_hugepage/enabled", &mut buf);
            let mut always = thp_mode_is_always(&buf[..n]);
            if !always {
                let n = read_file(
                    c"/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled",
                    &mut buf,
                );
                always = thp_mode_is_always(&buf[..n]);
            }
            MODE.store(1 + always as u8, Ordering::Relaxed);
            always
        }
        m => m == 2,
    }
}

/// Whether the text of a THP mode file selects `always` (the selected mode is the one in
/// brackets: `[always] madvise never`, or per size `[always] inherit madvise never`).
fn thp_mode_is_always(text: &[u8]) -> bool {
    text.starts_with(b"[always]")
}

/// Withdraws `advise_huge` from a range, so later faults take 4 KiB pages again.
pub fn advise_no_huge(p: *mut u8, len: usize) {
    // SAFETY: advice only; the range is ours.
    unsafe { libc::madvise(p as *mut libc::c_void, len, libc::MADV_NOHUGEPAGE) };
}

/// Resizes a mapping without moving it. Returns false when the pages after it are taken.
pub fn resize_in_place(p: *mut u8, old_len: usize, new_len: usize) -> bool {
    // SAFETY: flags 0 never moves the mapping; the range is ours.
    let r = unsafe { libc::mremap(p as *mut libc::c_void, old_len, new_len, 0) };
    if r == libc::MAP_FAILED {
        return false;
    }
    if new_len > old_len {
        crate::stats::MAPPED.add((new_len - old_len) as u64);
    } else {
        crate::stats::MAPPED.sub((old_len - new_len) as u64);
    }
    true
}

/// Maps fresh anonymous memory over `len` bytes at `p`, a range of ours, replacing whatever is
/// there (a failed `move_to` may have unmapped its target first, on kernels before 6.17). False
/// when the OS refuses.
pub fn map_fixed(p: *mut u8, len: usize) -> bool {
    #[cfg(test)]
    if injected::take(&injected::MAP_FIXED_FAILURES) {
        return false;
    }
    // SAFETY: MAP_FIXED replaces only the caller's own range, which holds no data.
    let r = unsafe {
        libc::mmap(
            p as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    r != libc::MAP_FAILED
}

/// Moves a mapping to `target` (which the caller reserved, `new_len` bytes) with its pages,
/// without copying. Returns false on failure, in which case the old mapping is untouched.
pub fn move_to(p: *mut u8, old_len: usize, new_len: usize, target: *mut u8) -> bool {
    #[cfg(test)]
    if injected::take(&injected::MOVE_FAILURES) {
        // As the kernel may fail before Linux 6.17: the target unmapped, the old range left.
        // SAFETY: the target is the caller's reservation, which holds nothing yet.
        unsafe { libc::munmap(target as *mut libc::c_void, new_len) };
        return false;
    }
    // SAFETY: MREMAP_FIXED replaces the caller's reservation at `target`, which nothing else uses.
    let r = unsafe {
        libc::mremap(
            p as *mut libc::c_void,
            old_len,
            new_len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            target as *mut libc::c_void,
        )
    };
    if r == libc::MAP_FAILED {
        return false;
    }
    // The reservation at `target` (counted when it was mapped) now holds the pages; the old
    // range is gone.
    crate::stats::MAPPED.sub(old_len as u64);
    true
}

/// Failures this crate's unit tests inject where the kernel of this machine may never fail: the
/// next N calls of `move_to` or `map_fixed` on the calling thread fail (per thread, so that tests
/// running beside it keep a kernel that works).
#[cfg(test)]
pub mod injected {
    use core::cell::Cell;
    use std::thread::LocalKey;

    std::thread_local! {
        pub static MOVE_FAILURES: Cell<usize> = const { Cell::new(0) };
        pub static MAP_FIXED_FAILURES: Cell<usize> = const { Cell::new(0) };
    }

    /// Whether this call fails: true while `left` is above zero, which it counts down.
    pub fn take(left: &'static LocalKey<Cell<usize>>) -> bool {
        left.with(|n| {
            let fail = n.get() > 0;
            n.set(n.get().saturating_sub(1));
            fail
        })
    }
}

/// Milliseconds of a monotonic clock (coarse: a few ms resolution, a few ns to read).
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    crate::vdso::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts);
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Nanoseconds of the monotonic clock (precise: for measuring, not for the hot paths).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    crate::vdso::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The calling thread's errno.
pub fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's errno.
pub fn set_errno(e: i32) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_huge_page_mode_is_the_bracketed_word() {
        assert!(thp_mode_is_always(b"[always] madvise never\n"));
        assert!(!thp_mode_is_always(b"always [madvise] never\n"));
        assert!(!thp_mode_is_always(b"always madvise [never]\n"));
        assert!(!thp_mode_is_always(b""));
        assert!(thp_mode_is_always(b"[always] inherit madvise never\n"));
        assert!(!thp_mode_is_always(b"always [inherit] madvise never\n"));
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads a file")]
    fn the_huge_page_mode_is_read_from_the_kernel() {
        let dir = "/sys/kernel/mm/transparent_hugepage";
        let read = |f: &str| std::fs::read(format!("{dir}/{f}")).unwrap_or_default();
        let always = thp_mode_is_always(&read("enabled"))
            || thp_mode_is_always(&read("hugepages-2048kB/enabled"));
        assert_eq!(huge_pages_by_default(), always);
        assert_eq!(huge_pages_by_default(), always);
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn aligned_mappings_are_aligned_and_usable() {
        for (align, offset) in [
            (1usize << 21, 0usize),
            (1 << 21, PAGE),
            (1 << 24, PAGE),
            (1 << 16, 0),
        ] {
            let len = 3 * PAGE + 100;
            let p = map_aligned(len, align, offset);
            assert!(!p.is_null());
            assert_eq!((p as usize + offset) % align, 0);
            // SAFETY: `p` is a fresh mapping of `len` bytes.
            unsafe { core::ptr::write_bytes(p, 0x5a, len) };
            unmap(p, len);
        }
        assert!(map_aligned(usize::MAX - 10, 1 << 21, 0).is_null());
        assert!(map(1 << 62).is_null());
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn discarded_pages_read_as_zero() {
        let p = map(4 * PAGE);
        // SAFETY: `p` is a fresh mapping of 4 pages.
        unsafe {
            core::ptr::write_bytes(p, 7, 4 * PAGE);
            discard(p.add(PAGE), 2 * PAGE);
            assert_eq!(*p, 7);
            assert_eq!(*p.add(PAGE), 0);
            assert_eq!(*p.add(3 * PAGE - 1), 0);
            assert_eq!(*p.add(3 * PAGE), 7);
        }
        unmap(p, 4 * PAGE);
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn mappings_move_and_grow_with_their_contents() {
        let p = map(2 * PAGE);
        // SAFETY: `p` is a fresh mapping of 2 pages.
        unsafe { core::ptr::write_bytes(p, 9, 2 * PAGE) };
        let target = map(8 * PAGE);
        assert!(move_to(p, 2 * PAGE, 8 * PAGE, target));
        // SAFETY: `target` is the 8-page mapping the move filled.
        unsafe {
            assert_eq!(*target.add(2 * PAGE - 1), 9);
            assert_eq!(*target.add(2 * PAGE), 0);
        }
        // The pages right after are free only by chance; either answer must leave the data intact.
        let grown = resize_in_place(target, 8 * PAGE, 16 * PAGE);
        unmap(target, if grown { 16 } else { 8 } * PAGE);
    }
}
