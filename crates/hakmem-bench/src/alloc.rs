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
    /// `snmalloc_rs::SnMalloc`
    Snmalloc,
}

impl AllocKind {
    pub const ALL: [AllocKind; 5] = [
        AllocKind::Hakmem,
        AllocKind::Glibc,
        AllocKind::Mimalloc,
        AllocKind::Jemalloc,
        AllocKind::Snmalloc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AllocKind::Hakmem => "hakmem",
            AllocKind::Glibc => "glibc",
            AllocKind::Mimalloc => "mimalloc",
            AllocKind::Jemalloc => "jemalloc",
            AllocKind::Snmalloc => "snmalloc",
        }
    }

    /// The version of the allocator built into this runner, as its library reports it where it
    /// can, with the crate that brings it in (versions from Cargo.lock at build time).
    pub fn version(self) -> String {
        match self {
            AllocKind::Hakmem => format!(
                "hakmem {}, git {}",
                locked("hakmem"),
                env!("HAKMEM_BENCH_GIT")
            ),
            AllocKind::Glibc => {
                // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
                let v = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
                format!("glibc {}", v.to_string_lossy())
            }
            AllocKind::Mimalloc => {
                let v = mimalloc::MiMalloc.version();
                // mi_version(): major * 100 + minor * 10 + patch before 2.1, then 2 digits each.
                let (major, minor, patch) = if v >= 10_000 {
                    (v / 10_000, v / 100 % 100, v % 100)
                } else {
                    (v / 100, v / 10 % 10, v % 10)
                };
                format!(
                    "mimalloc {major}.{minor}.{patch} (crate mimalloc {}, libmimalloc-sys {})",
                    locked("mimalloc"),
                    locked("libmimalloc-sys")
                )
            }
            AllocKind::Jemalloc => format!(
                "jemalloc {} (crate tikv-jemallocator {})",
                jemalloc_version(),
                locked("tikv-jemallocator")
            ),
            AllocKind::Snmalloc => format!(
                "snmalloc as bundled by crate snmalloc-sys {} (snmalloc-rs {}; the library has no version call)",
                locked("snmalloc-sys"),
                locked("snmalloc-rs")
            ),
        }
    }
}

/// The version Cargo.lock pinned for `package` when this runner was built, or "?".
fn locked(package: &str) -> &'static str {
    env!("HAKMEM_BENCH_LOCKED")
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == package)
        .map(|(_, v)| v)
        .unwrap_or("?")
}

/// jemalloc's own `mallctl("version")`.
fn jemalloc_version() -> String {
    let mut p: *const libc::c_char = std::ptr::null();
    let mut len = std::mem::size_of::<*const libc::c_char>();
    // SAFETY: "version" is a read-only mallctl of type `const char *`; oldp and oldlenp point to a
    // pointer-sized buffer and its size, and nothing is written.
    let r = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"version".as_ptr(),
            (&mut p as *mut *const libc::c_char).cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if r != 0 || p.is_null() {
        return "?".into();
    }
    // SAFETY: jemalloc returned a pointer to its static NUL-terminated version string.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
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
            $crate::alloc::AllocKind::Snmalloc => {
                let $a: &'static snmalloc_rs::SnMalloc = &snmalloc_rs::SnMalloc;
                $body
            }
        }
    };
}
