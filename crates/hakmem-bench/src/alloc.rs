//! The allocators under test, behind one small trait with static dispatch.
//!
//! Scenarios are generic over [`Alloc`] and are monomorphised for each allocator, so the harness adds
//! no virtual call. The runner's own `#[global_allocator]` stays the default (`System`); scenarios call
//! the allocator under test explicitly.

use core::alloc::{GlobalAlloc, Layout};
use serde::{Deserialize, Serialize};

/// The allocator interface a scenario uses. `size` must be non-zero and `align` a power of two, as for
/// [`GlobalAlloc`]; `dealloc` and `realloc` must get the size and alignment the block was made with.
pub trait Alloc: Sync {
    /// # Safety
    /// As [`GlobalAlloc::alloc`].
    unsafe fn alloc(&self, size: usize, align: usize) -> *mut u8;
    /// # Safety
    /// As [`GlobalAlloc::alloc_zeroed`].
    unsafe fn alloc_zeroed(&self, size: usize, align: usize) -> *mut u8;
    /// # Safety
    /// As [`GlobalAlloc::dealloc`].
    unsafe fn dealloc(&self, p: *mut u8, size: usize, align: usize);
    /// # Safety
    /// As [`GlobalAlloc::realloc`].
    unsafe fn realloc(&self, p: *mut u8, size: usize, align: usize, new_size: usize) -> *mut u8;
}

impl<G: GlobalAlloc + Sync> Alloc for G {
    #[inline(always)]
    unsafe fn alloc(&self, size: usize, align: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid, non-zero-size layout.
        unsafe { GlobalAlloc::alloc(self, Layout::from_size_align_unchecked(size, align)) }
    }
    #[inline(always)]
    unsafe fn alloc_zeroed(&self, size: usize, align: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid, non-zero-size layout.
        unsafe { GlobalAlloc::alloc_zeroed(self, Layout::from_size_align_unchecked(size, align)) }
    }
    #[inline(always)]
    unsafe fn dealloc(&self, p: *mut u8, size: usize, align: usize) {
        // SAFETY: the caller passes a block from this allocator with the layout it was made with.
        unsafe { GlobalAlloc::dealloc(self, p, Layout::from_size_align_unchecked(size, align)) }
    }
    #[inline(always)]
    unsafe fn realloc(&self, p: *mut u8, size: usize, align: usize, new_size: usize) -> *mut u8 {
        // SAFETY: as above; new_size is non-zero and does not overflow when rounded to align.
        unsafe {
            GlobalAlloc::realloc(
                self,
                p,
                Layout::from_size_align_unchecked(size, align),
                new_size,
            )
        }
    }
}

/// The allocators the benchmark runs compare in one process each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AllocKind {
    /// `hakmem::Hakmem`
    Hakmem,
    /// `std::alloc::System` (glibc malloc on Linux)
    Glibc,
    /// `mimalloc::MiMalloc`
    Mimalloc,
    /// `tikv_jemallocator::Jemalloc`
    Jemalloc,
}

impl AllocKind {
    pub const ALL: [AllocKind; 4] = [
        AllocKind::Hakmem,
        AllocKind::Glibc,
        AllocKind::Mimalloc,
        AllocKind::Jemalloc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AllocKind::Hakmem => "hakmem",
            AllocKind::Glibc => "glibc",
            AllocKind::Mimalloc => "mimalloc",
            AllocKind::Jemalloc => "jemalloc",
        }
    }
}

/// Calls `$body` with `$a` bound to a `&'static` instance of the allocator `$kind` names; the body is
/// instantiated once per allocator type.
#[macro_export]
macro_rules! with_alloc {
    ($kind:expr, |$a:ident| $body:expr) => {
        match $kind {
            $crate::alloc::AllocKind::Hakmem => {
                let $a: &'static hakmem::Hakmem = &hakmem::Hakmem;
                $body
            }
            $crate::alloc::AllocKind::Glibc => {
                let $a: &'static std::alloc::System = &std::alloc::System;
                $body
            }
            $crate::alloc::AllocKind::Mimalloc => {
                let $a: &'static mimalloc::MiMalloc = &mimalloc::MiMalloc;
                $body
            }
            $crate::alloc::AllocKind::Jemalloc => {
                let $a: &'static tikv_jemallocator::Jemalloc = &tikv_jemallocator::Jemalloc;
                $body
            }
        }
    };
}
