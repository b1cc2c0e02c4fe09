//! The versioned C ABI: the version number, the exported structs (which begin with their size
//! and version so that they can grow), and the checks behind `hak_abi_check` and `hak_*_get`.
//! include/hakmem.h declares the same layouts.

/// Must match `HAKMEM_ABI_VERSION` in include/hakmem.h.
pub const ABI_VERSION: u32 = 1;
/// The checks passed.
pub const ABI_OK: i32 = 0;
/// The caller was built for another major version.
pub const ABI_VERSION_MISMATCH: i32 = 1;
/// The caller's struct is larger than ours.
pub const ABI_STRUCT_MISMATCH: i32 = 2;

/// `struct hak_stats`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct HakStats {
    /// Size of the struct as the caller knows it.
    pub struct_size: usize,
    /// `ABI_VERSION` of the library that filled it.
    pub abi_version: u32,
    /// Zero.
    pub reserved: u32,
    /// The figures of `stats::snapshot`.
    pub counters: crate::stats::Snapshot,
}

/// `struct hak_config`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct HakConfig {
    /// Size of the struct as the caller knows it.
    pub struct_size: usize,
    /// `ABI_VERSION` of the library that filled it.
    pub abi_version: u32,
    /// Zero.
    pub reserved: u32,
    /// `HAKMEM_PURGE_DELAY_MS`.
    pub purge_delay_ms: u64,
    /// Empty SuperSlabs kept with their pages.
    pub ss_warm_max: u64,
    /// Empty SuperSlabs kept without their pages.
    pub ss_cold_max: u64,
    /// BigCache's capacity in bytes.
    pub bigcache_bytes: u64,
    /// 1 when BigCache is on.
    pub bigcache_enabled: u32,
    /// 1 with `HAKMEM_SAFE_FREE=1`.
    pub safe_free: u32,
}

const HEADER: usize = core::mem::size_of::<usize>() + 8;

/// A caller built against `version` with a `struct hak_stats` of `struct_size` bytes: same major
/// version, and a struct no larger than ours (an older, shorter one is fine).
pub fn check(version: u32, struct_size: usize) -> i32 {
    if version != ABI_VERSION {
        ABI_VERSION_MISMATCH
    } else if struct_size < HEADER || struct_size > core::mem::size_of::<HakStats>() {
        ABI_STRUCT_MISMATCH
    } else {
        ABI_OK
    }
}

/// Copies `value` into `*out`, at most `out.struct_size` bytes, keeping the caller's size.
///
/// # Safety
/// `out` is null or points at `out.struct_size` writable bytes, `struct_size` first.
unsafe fn fill<T: Copy>(out: *mut T, value: T) -> i32 {
    if out.is_null() {
        return ABI_STRUCT_MISMATCH;
    }
    // SAFETY: a non-null `out` starts with the caller's `struct_size` (the caller's contract).
    let want = unsafe { (out as *const usize).read() };
    if want < HEADER {
        return ABI_STRUCT_MISMATCH;
    }
    // Whole 8-byte fields only, and no more than we have: struct_size then says what was filled.
    let n = (want.min(core::mem::size_of::<T>()) - HEADER) / 8 * 8 + HEADER;
    // SAFETY: `n` is at most both `size_of::<T>()` and the `struct_size` bytes the caller says
    // `out` holds; `value` is a local, so the ranges cannot overlap.
    unsafe {
        core::ptr::copy_nonoverlapping(&value as *const T as *const u8, out as *mut u8, n);
        (out as *mut usize).write(n);
    }
    ABI_OK
}

/// # Safety
/// `out` is null or points at `out.struct_size` writable bytes.
pub unsafe fn stats_get(out: *mut HakStats) -> i32 {
    let v = HakStats {
        struct_size: core::mem::size_of::<HakStats>(),
        abi_version: ABI_VERSION,
        reserved: 0,
        counters: crate::stats::snapshot(),
    };
    // SAFETY: the caller's contract is `fill`'s.
    unsafe { fill(out, v) }
}

/// # Safety
/// `out` is null or points at `out.struct_size` writable bytes.
pub unsafe fn config_get(out: *mut HakConfig) -> i32 {
    let c = crate::config::get();
    let k = crate::knobs::live();
    let v = HakConfig {
        struct_size: core::mem::size_of::<HakConfig>(),
        abi_version: ABI_VERSION,
        reserved: 0,
        purge_delay_ms: k.purge_delay_ms,
        ss_warm_max: k.warm_superslabs,
        ss_cold_max: c.ss_cold_max as u64,
        bigcache_bytes: k.bigcache_bytes,
        bigcache_enabled: c.bigcache_enabled as u32,
        safe_free: c.safe_free as u32,
    };
    // SAFETY: the caller's contract is `fill`'s.
    unsafe { fill(out, v) }
}

/// Reports a bug in the allocator (a Rust panic in libhakmem.so, which has no std to print it) on
/// stderr as `hakmem: internal error at FILE:LINE`, and aborts.
pub fn internal_error(at: Option<(&str, u32)>) -> ! {
    let mut bytes = [0u8; 256];
    let mut t = crate::text::Text::new(&mut bytes);
    t.str("hakmem: internal error");
    if let Some((file, line)) = at {
        t.str(" at ").str(file).str(":").number(line as u64);
    }
    t.str("\n");
    let out = t.as_bytes();
    // SAFETY: writes our own buffer to stderr, then aborts.
    unsafe {
        libc::write(2, out.as_ptr() as *const libc::c_void, out.len());
        libc::abort()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_size_checks() {
        assert_eq!(check(ABI_VERSION, core::mem::size_of::<HakStats>()), ABI_OK);
        assert_eq!(check(ABI_VERSION, HEADER + 8), ABI_OK);
        assert_eq!(
            check(ABI_VERSION + 1, core::mem::size_of::<HakStats>()),
            ABI_VERSION_MISMATCH
        );
        assert_eq!(
            check(ABI_VERSION, core::mem::size_of::<HakStats>() + 8),
            ABI_STRUCT_MISMATCH
        );
        assert_eq!(check(ABI_VERSION, 4), ABI_STRUCT_MISMATCH);
    }

    #[test]
    fn a_shorter_struct_gets_a_prefix() {
        // A caller whose struct has the header and two counters.
        let mut short = [0u64; 4];
        short[0] = 32;
        assert_eq!(
            unsafe { stats_get(short.as_mut_ptr() as *mut HakStats) },
            ABI_OK
        );
        assert_eq!(short[0], 32);
        assert_eq!(short[1] as u32, ABI_VERSION);
        let mut too_small = [4u64, 0];
        assert_eq!(
            unsafe { stats_get(too_small.as_mut_ptr() as *mut HakStats) },
            ABI_STRUCT_MISMATCH
        );
        assert_eq!(
            unsafe { stats_get(core::ptr::null_mut()) },
            ABI_STRUCT_MISMATCH
        );
        let mut c = HakConfig {
            struct_size: core::mem::size_of::<HakConfig>(),
            ..Default::default()
        };
        assert_eq!(unsafe { config_get(&mut c) }, ABI_OK);
        assert_eq!(c.purge_delay_ms, crate::knobs::purge_delay_ms());
    }
}
