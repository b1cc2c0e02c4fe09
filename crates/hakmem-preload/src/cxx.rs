//! C++'s `operator new` and `operator delete`, every form a C++17 runtime exports, so that `new`
//! and `delete` reach hakmem directly instead of through the C++ runtime's wrappers around malloc
//! and free (a call, a test and a return more on every allocation).
//!
//! On success `operator new` is malloc (aligned forms: memalign). When it fails, the standard asks
//! for the new-handler loop and then `std::bad_alloc`, which only the C++ runtime can do: the
//! failing call jumps to the runtime's own operator of the same form (found on the first failure:
//! `dlsym(RTLD_NEXT)`, or, for a runtime a program loaded with `dlopen(RTLD_LOCAL)`, in libstdc++
//! or libc++ if either is loaded), which retries through this library's malloc, calls the
//! new-handler and throws. A jump, not a call: no frame of this library is on the stack while the
//! exception unwinds. Without a C++ runtime in the process (a program of another language calling
//! these symbols by name) a throwing form reports and aborts, a `nothrow` form returns null.

use core::ffi::{c_char, c_void};
use core::sync::atomic::{AtomicUsize, Ordering};

/// The forms of `operator new`, by mangled name; a form's index is its `kind` below.
const NAMES: [&[u8]; 8] = [
    b"_Znwm\0",
    b"_Znam\0",
    b"_ZnwmRKSt9nothrow_t\0",
    b"_ZnamRKSt9nothrow_t\0",
    b"_ZnwmSt11align_val_t\0",
    b"_ZnamSt11align_val_t\0",
    b"_ZnwmSt11align_val_tRKSt9nothrow_t\0",
    b"_ZnamSt11align_val_tRKSt9nothrow_t\0",
];

/// The C++ runtime's `operator new` of each form, 0 until first needed.
static RUNTIME_NEW: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];

/// The address of the C++ runtime's `operator new` of form `kind`, which the caller jumps to with
/// the arguments it was called with.
extern "C" fn runtime_new(kind: usize) -> usize {
    let known = RUNTIME_NEW[kind].load(Ordering::Relaxed);
    if known != 0 {
        return known;
    }
    let name = NAMES[kind].as_ptr() as *const c_char;
    // SAFETY: NAMES holds nul-terminated names; RTLD_NEXT skips this library, so the answer is
    // never one of the functions below.
    let mut found = unsafe { libc::dlsym(libc::RTLD_NEXT, name) };
    // A runtime outside the global scope (loaded with RTLD_LOCAL): asked by its own handle, which
    // RTLD_NOLOAD gives only if it is loaded already.
    for runtime in [c"libstdc++.so.6", c"libc++.so.1"] {
        if !found.is_null() {
            break;
        }
        // SAFETY: a nul-terminated name; RTLD_NOLOAD loads nothing. The handle is kept open (the
        // function found must stay mapped).
        let handle = unsafe { libc::dlopen(runtime.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
        if !handle.is_null() {
            // SAFETY: a handle dlopen gave and a nul-terminated name.
            found = unsafe { libc::dlsym(handle, name) };
        }
    }
    if found.is_null() {
        return if kind == 2 || kind == 3 || kind >= 6 {
            nothrow_failed as *const () as usize
        } else {
            throwing_failed as *const () as usize
        };
    }
    RUNTIME_NEW[kind].store(found as usize, Ordering::Relaxed);
    found as usize
}

extern "C" fn nothrow_failed() -> *mut c_void {
    core::ptr::null_mut()
}

extern "C" fn throwing_failed() -> ! {
    let msg =
        b"hakmem: operator new: out of memory, and no C++ runtime loaded to throw std::bad_alloc\n";
    // SAFETY: writes a static message to stderr, then aborts.
    unsafe {
        libc::write(2, msg.as_ptr() as *const c_void, msg.len());
        libc::abort()
    }
}

/// `operator new(size)` and `operator new[](size)`: malloc's fast path, whose two slow paths go to
/// the shims below (a null there goes on to the runtime).
macro_rules! new_plain {
    ($name:ident, $kind:literal, $miss:ident, $above:ident) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(size: usize) -> *mut c_void {
            // SAFETY: both shims are `malloc`s that jump on to the runtime on failure.
            unsafe { hakmem::malloc_with(size, |s| $miss(s), |s| $above(s)) as *mut c_void }
        }
        new_shim!($miss, $kind, hakmem::malloc_miss_at);
        new_shim!($above, $kind, hakmem::malloc_above_table_at);
    };
}

/// A slow path of `operator new(size)`: `$slow(size, caller)`, reached by a jump from the fast
/// path (which has no frame, so `[rsp]` is the caller's return address), and on null a jump to
/// the runtime's operator of form `$kind` with the original `size`.
macro_rules! new_shim {
    ($shim:ident, $kind:literal, $slow:path) => {
        #[unsafe(naked)]
        unsafe extern "C" fn $shim(size: usize) -> *mut u8 {
            core::arch::naked_asm!(
                "push rdi",
                "mov rsi, qword ptr [rsp + 8]",
                "call {slow}",
                "test rax, rax",
                "jz 2f",
                "pop rcx",
                "ret",
                "2:",
                "mov edi, {kind}",
                "call {runtime}",
                "pop rdi",
                "jmp rax",
                slow = sym $slow,
                kind = const $kind,
                runtime = sym runtime_new,
            )
        }
    };
}

/// A form of `operator new` with a second argument (alignment or `nothrow`) and maybe a third
/// (`nothrow`): `$try(size, second)`, and on null a jump to the runtime's operator of form
/// `$kind` with all three argument registers as they came.
macro_rules! new_with_args {
    ($name:ident, $kind:literal, $try:ident) => {
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name(size: usize, second: usize) -> *mut c_void {
            core::arch::naked_asm!(
                "push rdi",
                "push rsi",
                "push rdx",
                "call {try}",
                "test rax, rax",
                "jz 2f",
                "add rsp, 24",
                "ret",
                "2:",
                "mov edi, {kind}",
                "call {runtime}",
                "pop rdx",
                "pop rsi",
                "pop rdi",
                "jmp rax",
                try = sym $try,
                kind = const $kind,
                runtime = sym runtime_new,
            )
        }
    };
}

extern "C" fn try_malloc(size: usize, _nothrow: usize) -> *mut u8 {
    // SAFETY: malloc has no precondition.
    unsafe { hakmem::malloc(size) }
}

extern "C" fn try_aligned(size: usize, align: usize) -> *mut u8 {
    // SAFETY: memalign has no precondition (an alignment that is not a power of two gives null).
    unsafe { hakmem::memalign(align, size) }
}

new_plain!(_Znwm, 0, new_miss, new_above_table);
new_plain!(_Znam, 1, new_array_miss, new_array_above_table);
new_with_args!(_ZnwmRKSt9nothrow_t, 2, try_malloc);
new_with_args!(_ZnamRKSt9nothrow_t, 3, try_malloc);
new_with_args!(_ZnwmSt11align_val_t, 4, try_aligned);
new_with_args!(_ZnamSt11align_val_t, 5, try_aligned);
new_with_args!(_ZnwmSt11align_val_tRKSt9nothrow_t, 6, try_aligned);
new_with_args!(_ZnamSt11align_val_tRKSt9nothrow_t, 7, try_aligned);

/// The forms of `operator delete`: free (size and alignment are not needed to find the block),
/// with misuse reported as `operator delete` or `operator delete[]`.
macro_rules! delete {
    ($($name:ident ($($arg:ident : $ty:ty),*) => $free:path;)*) => {$(
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(p: *mut c_void $(, $arg: $ty)*) {
            $(let _ = $arg;)*
            // SAFETY: `p` is null or a block from `operator new` (the caller's contract).
            unsafe { $free(p as *mut u8) }
        }
    )*};
}

delete! {
    _ZdlPv() => hakmem::operator_delete;
    _ZdaPv() => hakmem::operator_delete_array;
    _ZdlPvm(size: usize) => hakmem::operator_delete;
    _ZdaPvm(size: usize) => hakmem::operator_delete_array;
    _ZdlPvRKSt9nothrow_t(nothrow: usize) => hakmem::operator_delete;
    _ZdaPvRKSt9nothrow_t(nothrow: usize) => hakmem::operator_delete_array;
    _ZdlPvSt11align_val_t(align: usize) => hakmem::operator_delete;
    _ZdaPvSt11align_val_t(align: usize) => hakmem::operator_delete_array;
    _ZdlPvmSt11align_val_t(size: usize, align: usize) => hakmem::operator_delete;
    _ZdaPvmSt11align_val_t(size: usize, align: usize) => hakmem::operator_delete_array;
    _ZdlPvSt11align_val_tRKSt9nothrow_t(align: usize, nothrow: usize) => hakmem::operator_delete;
    _ZdaPvSt11align_val_tRKSt9nothrow_t(align: usize, nothrow: usize) => hakmem::operator_delete_array;
}
