//! Misuse detection: what hakmem checks when a program frees what it should not, and how it reports.
//!
//! Always on (cheap): a pointer where no block of ours is, in a 2 MiB chunk that is not ours or in
//! one that is ("invalid pointer"), a pointer inside a block rather than at its start ("interior
//! pointer"), a block freed twice in a row or a large block freed twice ("double free"), a block
//! freed last given to realloc or malloc_usable_size ("use after free"). The fast path pays a
//! multiply and two compares for this; what a bad pointer is gets worked out once it is found.
//! Before blaming a pointer that is not a block's start, the thread's cache of free blocks of its
//! class is checked: malloc hands out whatever a damaged link there says ("corrupted free list").
//!
//! `HAKMEM_SAFE_FREE=1` adds full checks; every allocation and free then takes the slow path:
//! - a freed small block carries a cookie (a keyed hash of its address) in its second word, which
//!   allocation clears: freeing a block that carries its cookie is a double free, however long ago;
//! - each small block gets room for a canary of 8 bytes right after the requested size and the
//!   requested size (keyed) in its last 4 bytes: a damaged canary at free is a buffer overflow;
//! - links in slab free lists are stored encoded with a secret, and a freed block's bytes after
//!   the cookie (up to `FREED_FILL_MAX`) are filled with a pattern: a write into a freed block is
//!   found when the block is handed out again (or its slab drained), reported as use after free.
//!
//! A finding is one line on stderr, `hakmem: <op>(): <what> 0x<address>`, then `abort()`; `<op>` is
//! the function the program gave the pointer to (or, for damage found later, `malloc` or `free`).

use core::sync::atomic::{AtomicU64, Ordering};

/// What a damaged thread cache of free blocks is reported as. Default mode finds it only when a
/// damaged link was handed out and then given back; the damage comes from a write past the end of a
/// block or into a freed one, or from a block freed twice (not in a row), which cannot be told
/// apart by then.
pub const CORRUPTED_FREE_LIST: &str = "corrupted free list";

/// Bytes a block needs beyond the request in safe mode: the canary and the recorded size.
pub const SAFE_EXTRA: usize = 12;
const CANARY_LEN: usize = 8;
/// Bytes of a freed block (from offset 16) filled with `FREED_FILL` and checked at reuse.
pub const FREED_FILL_MAX: usize = 4096;
const FREED_FILL: u8 = 0xdf;

static SECRET: AtomicU64 = AtomicU64::new(0);

/// Whether full checks are on (`HAKMEM_SAFE_FREE=1`).
#[inline]
pub fn safe_mode() -> bool {
    crate::config::get().safe_free
}

/// A per-process random key (from the kernel's AT_RANDOM bytes), never zero.
pub fn secret() -> u64 {
    let s = SECRET.load(Ordering::Relaxed);
    if s != 0 {
        return s;
    }
    // SAFETY: AT_RANDOM points at 16 random bytes the kernel put on the initial stack.
    let r = unsafe {
        let at = libc::getauxval(libc::AT_RANDOM) as *const u64;
        if at.is_null() {
            0x9e37_79b9_7f4a_7c15
        } else {
            at.read_unaligned() ^ at.add(1).read_unaligned().rotate_left(32)
        }
    };
    let r = r | 1;
    SECRET.store(r, Ordering::Relaxed);
    r
}

/// The cookie a freed block at `p` carries in its second word.
#[inline]
pub fn cookie(p: usize) -> u64 {
    ((p as u64) ^ secret()).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

/// The 8 canary bytes written right after a request of block `p` (never equal to its cookie, so
/// a canary that happens to sit where the cookie goes cannot pass for one).
#[inline]
fn canary(p: usize) -> [u8; CANARY_LEN] {
    (cookie(p) ^ 0xa5a5_5a5a_c3c3_3c3c).to_le_bytes()
}

/// A free-list link as stored in safe mode (and back: the operation is its own inverse).
#[inline]
pub fn encode_link(at: usize, link: usize) -> usize {
    link ^ (secret() as usize) ^ (at >> 4)
}

/// Reports a misuse and aborts.
#[cold]
pub fn report(op: &str, what: &str, p: usize) -> ! {
    let mut buf = [0u8; 128];
    let mut n = 0;
    for &b in b"hakmem: "
        .iter()
        .chain(op.as_bytes())
        .chain(b"(): ")
        .chain(what.as_bytes())
        .chain(b" 0x")
    {
        if n < buf.len() - 18 {
            buf[n] = b;
            n += 1;
        }
    }
    for i in (0..16).rev() {
        buf[n] = b"0123456789abcdef"[(p >> (i * 4)) & 15];
        n += 1;
    }
    buf[n] = b'\n';
    n += 1;
    // SAFETY: writing our own buffer to stderr, then aborting.
    unsafe {
        libc::write(2, buf.as_ptr() as *const libc::c_void, n);
        libc::abort();
    }
}

/// Safe mode, at allocation of block `p` (of `block_size` bytes) for a request of `n` bytes:
/// clears the cookie, writes the canary after the request and the keyed size at the end.
///
/// # Safety
/// `p` is a block of `block_size >= n + SAFE_EXTRA` bytes that the caller owns.
pub unsafe fn arm(p: *mut u8, n: usize, block_size: usize) {
    // SAFETY: `p` is a block of `block_size >= n + SAFE_EXTRA` bytes the caller owns, so the cookie
    // word, the canary at `n` and the record in the last 4 bytes are inside it.
    unsafe {
        (p.add(8) as *mut u64).write(0);
        let c = canary(p as usize);
        core::ptr::copy_nonoverlapping(c.as_ptr(), p.add(n), CANARY_LEN);
        let tail = (n as u32) ^ (cookie(p as usize) >> 32) as u32;
        (p.add(block_size - 4) as *mut u32).write_unaligned(tail);
    }
}

/// Safe mode: the size requested for block `p`, or None if its record was overwritten.
///
/// # Safety
/// `p` is a live block of `block_size` bytes.
pub unsafe fn requested_size(p: *mut u8, block_size: usize) -> Option<usize> {
    // SAFETY: `p` is a live block of `block_size` bytes (the caller's contract), so its last 4
    // bytes are readable.
    unsafe {
        let tail = (p.add(block_size - 4) as *const u32).read_unaligned();
        let n = (tail ^ (cookie(p as usize) >> 32) as u32) as usize;
        if n + SAFE_EXTRA <= block_size {
            Some(n)
        } else {
            None
        }
    }
}

/// Safe mode: the size requested for live block `p`, reporting a block that was freed ("use
/// after free") or whose canary or size record was overwritten ("buffer overflow").
///
/// # Safety
/// `p` is the start of a block of `block_size` bytes of one of our slabs.
pub unsafe fn live_requested_size(op: &str, p: *mut u8, block_size: usize) -> usize {
    // SAFETY: `p` starts a block of `block_size` (at least 16) bytes of our slabs (the caller's
    // contract), so its second word is readable.
    unsafe {
        if (p.add(8) as *const u64).read() == cookie(p as usize) {
            report(op, "use after free", p as usize);
        }
        intact_requested_size(op, p, block_size)
    }
}

/// Safe mode: the size requested for block `p`, reporting a damaged canary or size record.
///
/// # Safety
/// As `live_requested_size`.
unsafe fn intact_requested_size(op: &str, p: *mut u8, block_size: usize) -> usize {
    // SAFETY: `p` starts a block of `block_size` bytes (the caller's contract); a record read back
    // is used only if `n + SAFE_EXTRA <= block_size`, so the canary read stays inside.
    unsafe {
        let Some(n) = requested_size(p, block_size) else {
            report(op, "buffer overflow", p as usize);
        };
        let c = canary(p as usize);
        for (i, &b) in c.iter().enumerate() {
            if *p.add(n + i) != b {
                report(op, "buffer overflow", p as usize);
            }
        }
        n
    }
}

/// Safe mode, at free of block `p`: double free, overflow; then marks it freed.
///
/// # Safety
/// `p` is the start of a block of `block_size` bytes of one of our slabs.
pub unsafe fn disarm(op: &str, p: *mut u8, block_size: usize) {
    // SAFETY: `p` starts a block of `block_size` bytes (at least 16) of our slabs being freed by
    // the caller, so its cookie word and the freed fill (at most `block_size - 16` bytes from 16)
    // are inside it.
    unsafe {
        let word = (p.add(8) as *const u64).read();
        if word == cookie(p as usize) {
            report(op, "double free", p as usize);
        }
        intact_requested_size(op, p, block_size);
        (p.add(8) as *mut u64).write(cookie(p as usize));
        core::ptr::write_bytes(p.add(16), FREED_FILL, freed_fill_len(block_size));
    }
}

fn freed_fill_len(block_size: usize) -> usize {
    block_size.min(16 + FREED_FILL_MAX) - 16
}

/// Safe mode, when a freed block `p` leaves a free list: is it still as free() left it?
///
/// # Safety
/// `p` is a freed block of `block_size` bytes of one of our slabs.
pub unsafe fn verify_freed(p: *mut u8, block_size: usize) {
    // SAFETY: `p` is a freed block of `block_size` bytes (the caller's contract), held by the
    // caller's free list: the cookie word and the fill are inside it.
    unsafe {
        if (p.add(8) as *const u64).read() != cookie(p as usize) {
            report("malloc", "use after free", p as usize);
        }
        let fill = core::slice::from_raw_parts(p.add(16), freed_fill_len(block_size));
        if fill.iter().any(|&b| b != FREED_FILL) {
            report("malloc", "use after free", p as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_and_disarm_round_trip() {
        let mut block = [0u64; 8];
        let p = block.as_mut_ptr() as *mut u8;
        // SAFETY: `p` is a 64-byte block the test owns, room for any request up to 64 - SAFE_EXTRA.
        unsafe {
            // Every request size whose canary may overlap the cookie word: a live block is never
            // taken for a freed one.
            for n in 0..=16 {
                arm(p, n, 64);
                assert_ne!(
                    (p.add(8) as *const u64).read(),
                    cookie(p as usize),
                    "n = {n}"
                );
                disarm("free", p, 64);
            }
            arm(p, 20, 64);
            assert_eq!(requested_size(p, 64), Some(20));
            core::ptr::write_bytes(p, 0x55, 20);
            disarm("free", p, 64);
            verify_freed(p, 64);
        }
        assert_eq!(encode_link(4096, encode_link(4096, 1234)), 1234);
        assert_ne!(cookie(16), cookie(32));
    }
}
