//! hakmem: PLACEHOLDER front while the core is being written (session 1). Replaced before landing.
use core::alloc::{GlobalAlloc, Layout};

pub struct Hakmem;

pub unsafe fn malloc(size: usize) -> *mut u8 { libc::malloc(size) as *mut u8 }
pub unsafe fn free(p: *mut u8) { libc::free(p as *mut _) }
pub unsafe fn calloc(n: usize, size: usize) -> *mut u8 { libc::calloc(n, size) as *mut u8 }
pub unsafe fn realloc(p: *mut u8, size: usize) -> *mut u8 { libc::realloc(p as *mut _, size) as *mut u8 }
pub unsafe fn memalign(align: usize, size: usize) -> *mut u8 { libc::memalign(align, size) as *mut u8 }
pub unsafe fn usable_size(p: *mut u8) -> usize { libc::malloc_usable_size(p as *mut _) }

unsafe impl GlobalAlloc for Hakmem {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 { memalign(l.align().max(16), l.size()) }
    unsafe fn dealloc(&self, p: *mut u8, _l: Layout) { free(p) }
}
