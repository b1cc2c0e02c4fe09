//! Which 2 MiB chunks of the address space are ours, and what each holds.
//!
//! One byte per 2 MiB chunk of the 47-bit user address space (64 MiB of zero-initialised static
//! storage; the kernel backs only the pages that are written, about one 4 KiB page per 8 GiB of
//! address space in use). `free()` reads the byte of a pointer's chunk to dispatch without guessing,
//! and a pointer whose chunk is not registered is never dereferenced.

use core::sync::atomic::{AtomicU8, Ordering};

pub const CHUNK_SHIFT: u32 = 21;
pub const CHUNK: usize = 1 << CHUNK_SHIFT;
const ADDRESS_BITS: u32 = 47;
const ENTRIES: usize = 1 << (ADDRESS_BITS - CHUNK_SHIFT);

/// What a registered chunk holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Kind {
    /// Not ours.
    None = 0,
    /// A SuperSlab of 64 KiB slabs starts at the chunk's base (its header first).
    SuperSlab = 1,
    /// A large block whose header starts at the chunk's base.
    Large = 2,
    /// A large block aligned to 2 MiB or more: its user pointer is the chunk's base and its header
    /// is in the page just below.
    LargeAligned = 3,
    /// A SuperSlab of one mid slab starts at the chunk's base (its header first).
    MidSuperSlab = 4,
}

impl Kind {
    /// Whether a SuperSlab (of either kind) starts at the chunk's base.
    pub fn is_superslab(self) -> bool {
        matches!(self, Kind::SuperSlab | Kind::MidSuperSlab)
    }
}

struct Table([AtomicU8; ENTRIES]);

// Zero-initialised, so it lands in .bss and costs nothing until used.
static TABLE: Table = Table([const { AtomicU8::new(0) }; ENTRIES]);

#[inline(always)]
fn index(addr: usize) -> Option<usize> {
    let i = chunk_number(addr);
    if i < ENTRIES {
        Some(i)
    } else {
        None
    }
}

/// `addr >> CHUNK_SHIFT`, hidden from the optimiser on x86_64: otherwise it tests `addr >> 47`
/// for the bound and shifts again for the index (2 instructions more on every `free`).
#[inline(always)]
fn chunk_number(addr: usize) -> usize {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        let mut i = addr;
        // SAFETY: a shift of a register; no memory, no stack.
        unsafe {
            core::arch::asm!("shr {0}, {1}", inout(reg) i, const CHUNK_SHIFT, options(pure, nomem, nostack))
        };
        i
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    {
        addr >> CHUNK_SHIFT
    }
}

/// The kind of the chunk holding `addr`, and the chunk's base (from the chunk number the lookup
/// computed anyway: one shift, where masking `addr` again takes a copy and a mask).
#[inline(always)]
pub fn kind_and_base_of(addr: usize) -> (Kind, usize) {
    match index(addr) {
        Some(i) => (kind_at(i), i << CHUNK_SHIFT),
        None => (Kind::None, 0),
    }
}

#[inline(always)]
fn kind_at(i: usize) -> Kind {
    // A plain atomic load; only Kind discriminants are ever stored.
    match TABLE.0[i].load(Ordering::Acquire) {
        1 => Kind::SuperSlab,
        2 => Kind::Large,
        3 => Kind::LargeAligned,
        4 => Kind::MidSuperSlab,
        _ => Kind::None,
    }
}

/// The kind of the chunk holding `addr`.
#[inline(always)]
pub fn kind_of(addr: usize) -> Kind {
    kind_and_base_of(addr).0
}

/// Records that the chunk at `chunk_base` holds `kind` (or is no longer ours, with `Kind::None`).
pub fn set(chunk_base: usize, kind: Kind) {
    debug_assert_eq!(chunk_base & (CHUNK - 1), 0);
    if let Some(i) = index(chunk_base) {
        TABLE.0[i].store(kind as u8, Ordering::Release);
    }
}

/// Whether an address can be registered (below 2^47).
pub fn in_range(addr: usize) -> bool {
    index(addr).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "the 64 MiB table is slow to set up under Miri")]
    fn set_and_clear() {
        let base = 0x7000_0000_0000usize & !(CHUNK - 1);
        assert_eq!(kind_of(base + 5), Kind::None);
        set(base, Kind::Large);
        assert_eq!(kind_of(base + CHUNK - 1), Kind::Large);
        assert_eq!(kind_of(base + CHUNK), Kind::None);
        set(base, Kind::None);
        assert_eq!(kind_of(base), Kind::None);
        assert_eq!(kind_of(usize::MAX), Kind::None);
        assert!(!in_range(1 << 47));
    }
}
