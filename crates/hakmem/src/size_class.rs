//! Size classes: request size -> class index -> block size, and each class's caching parameters.
//!
//! Classes step by 16 B up to 128 B, then by four per doubling (160, 192, 224, 256, 320, ...), up to
//! `MID_MAX` (256 KiB); at most 25 % of a block is rounding waste. Classes up to `SMALL_MAX` (8 KiB)
//! live in 64 KiB slabs; larger ("mid") classes take a whole SuperSlab as one slab. Requests above
//! `MID_MAX` are large blocks (see `large.rs`).

/// Largest block served from 64 KiB slabs (the code uses `NUM_SMALL_CLASSES`; the tests check both agree).
#[cfg(test)]
pub const SMALL_MAX: usize = 8 * 1024;
/// Largest block served from SuperSlabs at all; above it, large blocks on their own mapping.
pub const MID_MAX: usize = 256 * 1024;
/// Number of classes: 8 fine ones to 128 B, then 4 per doubling from 128 B to 256 KiB (11 doublings).
pub const NUM_CLASSES: usize = 8 + 4 * 11;
/// Classes with an index below this are small (64 KiB slabs).
pub const NUM_SMALL_CLASSES: usize = 8 + 4 * 6;

/// Minimum alignment of every block (x86_64 max_align_t).
pub const MIN_ALIGN: usize = 16;

/// Requests up to this size find their bin through a table (`thread_cache::small_bin`).
pub const TABLE_MAX: usize = 1024;

/// Class index for a request of `size` bytes (`size <= MID_MAX`). `size == 0` gets class 0.
// `div_ceil` would add a remainder test to malloc's path; `size` is at most 128 here.
#[allow(clippy::manual_div_ceil)]
#[inline(always)]
pub const fn class_of(size: usize) -> usize {
    if size <= 128 {
        (size + 15) / 16 - (size != 0) as usize
    } else {
        let s = size - 1;
        let log2 = (usize::BITS - 1 - s.leading_zeros()) as usize;
        8 + (log2 - 7) * 4 + ((s >> (log2 - 2)) & 3)
    }
}

pub(crate) const fn compute_class_size(c: usize) -> usize {
    if c < 8 {
        (c + 1) * 16
    } else {
        let doubling = (c - 8) / 4; // 0 for 160..256
        let step = (c - 8) % 4 + 1; // 1..4
        let base = 128 << doubling;
        base + step * (base / 4)
    }
}

const fn build_sizes() -> [u32; NUM_CLASSES] {
    let mut t = [0u32; NUM_CLASSES];
    let mut c = 0;
    while c < NUM_CLASSES {
        t[c] = compute_class_size(c) as u32;
        c += 1;
    }
    t
}

static CLASS_SIZES: [u32; NUM_CLASSES] = build_sizes();

/// Block size of class `c`.
#[inline(always)]
pub fn class_size(c: usize) -> usize {
    CLASS_SIZES[c] as usize
}

#[inline]
pub fn is_small(c: usize) -> bool {
    c < NUM_SMALL_CLASSES
}

/// Smallest class whose size is at least `size` and a multiple of `align` (a power of two), so that
/// every block of it is `align`-aligned (slab data starts 64 KiB-aligned, or coloured by a multiple
/// of the largest power of two dividing the block size). None if above `MID_MAX`.
pub fn class_for_aligned(size: usize, align: usize) -> Option<usize> {
    if size > MID_MAX || align > 64 * 1024 {
        return None;
    }
    let mut c = class_of(size.max(align));
    while c < NUM_CLASSES {
        if class_size(c).is_multiple_of(align) {
            return Some(c);
        }
        c += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_maps_to_the_smallest_fitting_class() {
        for size in 0..=MID_MAX {
            let c = class_of(size);
            assert!(c < NUM_CLASSES, "size {size}");
            assert!(class_size(c) >= size, "size {size} class {c}");
            if c > 0 {
                assert!(
                    class_size(c - 1) < size.max(1),
                    "size {size} not smallest: {c}"
                );
            }
        }
        assert_eq!(class_size(NUM_CLASSES - 1), MID_MAX);
        assert_eq!(class_size(NUM_SMALL_CLASSES - 1), SMALL_MAX);
    }

    #[test]
    fn sizes_are_aligned_and_waste_is_bounded() {
        for c in 0..NUM_CLASSES {
            assert_eq!(class_size(c) % MIN_ALIGN, 0);
            if c > 0 {
                let prev = class_size(c - 1);
                assert!(class_size(c) > prev);
                if class_size(c) > 128 {
                    assert!((class_size(c) - prev) * 4 <= class_size(c));
                }
            }
        }
    }

    #[test]
    fn aligned_classes_are_multiples_of_the_alignment() {
        for align in [16usize, 32, 64, 128, 256, 4096, 65536] {
            for size in [0usize, 1, 17, 100, 1000, 5000, 70000] {
                let c = class_for_aligned(size, align).unwrap();
                assert!(class_size(c) >= size && class_size(c).is_multiple_of(align));
            }
        }
        assert!(class_for_aligned(MID_MAX + 1, 16).is_none());
        assert!(class_for_aligned(16, 128 * 1024).is_none());
    }
}
