//! libhakmem.so: the C allocation functions, backed by hakmem, for `LD_PRELOAD` or linking.
//!
//! A thin skin over the `hakmem` crate: each symbol checks its C-specific arguments and calls the
//! core. Built as programs load it, the library has no std and its own code allocates nothing; the
//! test builds, which keep std, allocate through hakmem too (`#[global_allocator]`), so no request
//! ever reaches glibc's malloc. Declarations of the hak_* functions: include/hakmem.h.

// Built as programs load it (`--release`, panics abort) the library links no std (nor does the
// core there), so none of std's code is mapped into every process; the test builds unwind and
// keep std.
#![cfg_attr(
    all(
        panic = "abort",
        target_arch = "x86_64",
        target_os = "linux",
        not(miri)
    ),
    no_std
)]
// The exported functions' safety contract is the C standard's for the function of that name.
#![allow(clippy::missing_safety_doc)]

use core::ffi::{c_int, c_void};

// The C++ operators are built where malloc's shims are (their failure paths are assembly).
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
#[allow(non_snake_case)]
mod cxx;

#[cfg(not(all(
    panic = "abort",
    target_arch = "x86_64",
    target_os = "linux",
    not(miri)
)))]
#[global_allocator]
static GLOBAL: hakmem::Hakmem = hakmem::Hakmem;

// Without std nothing else asks the linker for the C library.
#[cfg(all(
    panic = "abort",
    target_arch = "x86_64",
    target_os = "linux",
    not(miri)
))]
#[link(name = "c")]
unsafe extern "C" {}

/// A panic in the allocator is a bug: say where, and abort (no unwinding through C callers).
#[cfg(all(
    panic = "abort",
    target_arch = "x86_64",
    target_os = "linux",
    not(miri)
))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hakmem::abi::internal_error(info.location().map(|at| (at.file(), at.line())))
}

const PAGE: usize = 4096;

fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// malloc's fast path has no stack frame and leaves by a jump, so its slow paths start with
/// malloc's return address on top of the stack: the shims below pass it on as the call site
/// (`hakmem::malloc_with`), which costs the fast path nothing.
#[cfg(target_arch = "x86_64")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    // SAFETY: both shims are `malloc`s (see below).
    unsafe {
        hakmem::malloc_with(
            size,
            |size| malloc_miss(size),
            |size| malloc_above_table(size),
        ) as *mut c_void
    }
}

/// `hakmem::malloc_miss_at(size, caller)`, reached by a jump from `malloc`.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
unsafe extern "C" fn malloc_miss(size: usize) -> *mut u8 {
    // At entry [rsp] is malloc's return address; it becomes the second argument.
    core::arch::naked_asm!("mov rsi, qword ptr [rsp]", "jmp {0}", sym hakmem::malloc_miss_at)
}

/// `hakmem::malloc_above_table_at(size, caller)`, reached by a jump from `malloc`.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
unsafe extern "C" fn malloc_above_table(size: usize) -> *mut u8 {
    // As in `malloc_miss`.
    core::arch::naked_asm!("mov rsi, qword ptr [rsp]", "jmp {0}", sym hakmem::malloc_above_table_at)
}

#[cfg(not(target_arch = "x86_64"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    hakmem::malloc(size) as *mut c_void
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    hakmem::free(p as *mut u8)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    hakmem::calloc(n, size) as *mut c_void
}

/// Like glibc, `realloc(p, 0)` with a non-null `p` frees it and returns NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if size == 0 && !p.is_null() {
        hakmem::realloc_to_zero(p as *mut u8);
        return core::ptr::null_mut();
    }
    hakmem::realloc(p as *mut u8, size) as *mut c_void
}

/// `realloc(p, n * size)`, so a zero product frees `p` as realloc does; ENOMEM on overflow.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => realloc(p, total),
        None => {
            set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<*mut c_void>()) {
        return libc::EINVAL;
    }
    let p = hakmem::memalign(align, size);
    if p.is_null() {
        return libc::ENOMEM;
    }
    *out = p as *mut c_void;
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    hakmem::memalign(align, size) as *mut c_void
}

/// Like glibc, an alignment that is not a power of two is rounded up to one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    match align.checked_next_power_of_two() {
        Some(a) => hakmem::memalign(a.max(1), size) as *mut c_void,
        None => {
            set_errno(libc::EINVAL);
            core::ptr::null_mut()
        }
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    hakmem::memalign(PAGE, size) as *mut c_void
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let Some(rounded) = size.max(1).checked_add(PAGE - 1) else {
        set_errno(libc::ENOMEM);
        return core::ptr::null_mut();
    };
    hakmem::memalign(PAGE, rounded & !(PAGE - 1)) as *mut c_void
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    hakmem::usable_size(p as *mut u8)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_sized(p: *mut c_void, _size: usize) {
    hakmem::free_sized(p as *mut u8)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, _align: usize, _size: usize) {
    hakmem::free_aligned_sized(p as *mut u8)
}

/// Returns cached memory to the OS (glibc's extension; `pad` is ignored). Returns 1.
#[unsafe(no_mangle)]
pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
    hakmem::release_cached_memory();
    1
}

/// Runs when the library is loaded: sets up the fork handlers and the thread-exit hook before the
/// program's first fork or thread.
extern "C" fn init_at_load() {
    hakmem::init();
}

#[used]
#[unsafe(link_section = ".init_array")]
static INIT_AT_LOAD: extern "C" fn() = init_at_load;

#[unsafe(no_mangle)]
pub extern "C" fn hak_abi_version() -> u32 {
    hakmem::abi::ABI_VERSION
}

/// 0 if a program built against ABI `version` whose `struct hak_stats` is `struct_size` bytes can
/// use this library; else `HAK_ABI_VERSION_MISMATCH` (1) or `HAK_ABI_STRUCT_MISMATCH` (2).
#[unsafe(no_mangle)]
pub extern "C" fn hak_abi_check(version: u32, struct_size: usize) -> c_int {
    hakmem::abi::check(version, struct_size)
}

/// Fills `*out` (whose `struct_size` the caller sets) with the counters; returns 0, or
/// `HAK_ABI_STRUCT_MISMATCH` if `out` is null or too small for even the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hak_stats_get(out: *mut hakmem::abi::HakStats) -> c_int {
    hakmem::abi::stats_get(out)
}

/// Fills `*out` (whose `struct_size` the caller sets) with the configuration in force.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hak_config_get(out: *mut hakmem::abi::HakConfig) -> c_int {
    hakmem::abi::config_get(out)
}

/// At exit: saves the learned playbook (`HAKMEM_PLAYBOOK`), then prints the report if
/// `HAKMEM_STATS` asks for it. The core registers the same with atexit, which runs first; this
/// destructor covers a process in which that registration failed, and does nothing otherwise.
extern "C" fn finish_at_exit() {
    hakmem::tuning::at_exit();
}

#[used]
#[unsafe(link_section = ".fini_array")]
static FINISH_AT_EXIT: extern "C" fn() = finish_at_exit;

/// malloc with an explicit call site, profiled (sampled) on every call when profiling is on.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hak_alloc_at(size: usize, site: usize) -> *mut c_void {
    hakmem::alloc_at(size, site) as *mut c_void
}

/// free with the call site given to hak_alloc_at (its frees give the site's lifetimes).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hak_free_at(p: *mut c_void, site: usize) {
    hakmem::free_at(p as *mut u8, site)
}

/// One playbook evolution step now: the curator retires proven strategies below the top 6 and the
/// generator adds a challenger. Returns the number retired, or -1 when learning is off.
#[unsafe(no_mangle)]
pub extern "C" fn hak_evolve_playbook() -> c_int {
    match hakmem::tuning::evolve_playbook() {
        Some((retired, _)) => retired as c_int,
        None => -1,
    }
}
