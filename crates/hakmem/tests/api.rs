//! Direct checks of the rlib front (hakmem::malloc/free/calloc/realloc/memalign/usable_size).
use std::ptr;

#[test]
fn zero_null_and_overflow() {
    unsafe {
        let a = hakmem::malloc(0);
        let b = hakmem::malloc(0);
        assert!(
            !a.is_null() && !b.is_null() && a != b,
            "malloc(0) must return unique non-null pointers"
        );
        hakmem::free(a);
        hakmem::free(b);
        hakmem::free(ptr::null_mut());
        assert!(
            hakmem::calloc(usize::MAX / 2 + 2, 2).is_null(),
            "calloc overflow must fail"
        );
        assert!(
            hakmem::malloc(isize::MAX as usize + 1).is_null(),
            "malloc(> PTRDIFF_MAX) must fail"
        );
        let p = hakmem::realloc(ptr::null_mut(), 100);
        assert!(!p.is_null(), "realloc(NULL, 100)");
        ptr::write_bytes(p, 7, 100);
        assert!(
            hakmem::realloc(p, isize::MAX as usize + 1).is_null(),
            "realloc(> PTRDIFF_MAX) must fail"
        );
        assert_eq!(*p.add(99), 7, "failed realloc must leave the block alone");
        let z = hakmem::realloc(p, 0);
        if !z.is_null() {
            hakmem::free(z);
        }
    }
}

#[test]
fn usable_size_and_alignment() {
    unsafe {
        for &n in &[
            1usize,
            8,
            24,
            100,
            1000,
            4096,
            10_000,
            100_000,
            1 << 20,
            5 << 20,
        ] {
            let p = hakmem::malloc(n);
            assert!(!p.is_null());
            let u = hakmem::usable_size(p);
            assert!(u >= n, "usable_size {} < {}", u, n);
            ptr::write_bytes(p, 0x5a, u);
            hakmem::free(p);
            let c = hakmem::calloc(n, 1);
            assert!((0..n).all(|i| *c.add(i) == 0), "calloc({}) not zeroed", n);
            hakmem::free(c);
        }
        for sh in 3..25 {
            let a = 1usize << sh;
            for &n in &[0usize, 1, 100, 4096, 3 << 20] {
                let p = hakmem::memalign(a, n);
                assert!(!p.is_null(), "memalign({}, {})", a, n);
                assert_eq!(p as usize % a, 0, "memalign({}, {}) misaligned", a, n);
                assert!(hakmem::usable_size(p) >= n);
                ptr::write_bytes(p, 1, n);
                hakmem::free(p);
            }
        }
    }
}
