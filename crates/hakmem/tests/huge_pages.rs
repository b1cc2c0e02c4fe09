//! Huge-page advice on large blocks (its own test binary: BigCache's contents depend on what the
//! process freed before). Blocks of 2 to 4 MiB are advised huge pages and keep the advice when
//! cached and reused; bigger ones are never advised, before or after the program frees one.
//! Contents are checked throughout. Skipped where the kernel has no transparent huge pages.
mod common;
use common::*;

const MIB: usize = 1 << 20;

/// Whether the mapping holding `p` is advised huge pages (`hg` in its smaps VmFlags).
fn advised_huge(p: *const u8) -> bool {
    let a = p as usize;
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
    let mut inside = false;
    for l in smaps.lines() {
        let range = l.split(' ').next().unwrap_or("");
        if let Some((lo, hi)) = range.split_once('-') {
            if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = lo <= a && a < hi;
                continue;
            }
        }
        if inside {
            if let Some(flags) = l.strip_prefix("VmFlags:") {
                return flags.split_whitespace().any(|f| f == "hg");
            }
        }
    }
    panic!("no mapping holds {a:#x}")
}

unsafe fn filled(n: usize) -> *mut u8 {
    let p = hakmem::malloc(n);
    assert!(!p.is_null(), "malloc({n}) returned null");
    fill(p, n, seed_of(p, n));
    p
}

unsafe fn verified_free(p: *mut u8, n: usize) {
    assert_eq!(check(p, n, seed_of(p, n)), None, "block of {n} B corrupted");
    hakmem::free(p);
}

#[test]
fn blocks_up_to_4_mib_take_huge_pages_and_bigger_ones_do_not() {
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let off = std::env::var("HAKMEM_THP")
        .is_ok_and(|v| ["0", "off", "no", "false"].contains(&v.to_ascii_lowercase().as_str()));
    if off || (!thp.contains("[always]") && !thp.contains("[madvise]")) {
        eprintln!(
            "skipped: transparent huge pages are off or absent ({}, HAKMEM_THP off: {off})",
            thp.trim()
        );
        return;
    }
    unsafe {
        let small = filled(3 * MIB);
        assert!(advised_huge(small), "a 3 MiB block is advised huge pages");
        let first = filled(64 * MIB);
        let second = filled(48 * MIB);
        assert!(
            !advised_huge(first) && !advised_huge(second),
            "blocks over 4 MiB keep 4 KiB pages"
        );
        verified_free(second, 48 * MIB);
        // The same size again: BigCache hands back the block just freed.
        let reused = filled(48 * MIB);
        assert_eq!(reused, second, "BigCache hands back the block just freed");
        assert!(!advised_huge(reused), "a reused big block is not advised");
        let fresh = filled(96 * MIB);
        assert!(
            !advised_huge(fresh),
            "a big block mapped after a big free is not advised"
        );
        verified_free(small, 3 * MIB);
        let small_again = filled(3 * MIB);
        assert_eq!(small_again, small, "BigCache hands back the 3 MiB block");
        assert!(
            advised_huge(small_again),
            "a reused 3 MiB block is still advised"
        );
        for (p, n) in [
            (small_again, 3 * MIB),
            (first, 64 * MIB),
            (fresh, 96 * MIB),
            (reused, 48 * MIB),
        ] {
            verified_free(p, n);
        }
    }
}
