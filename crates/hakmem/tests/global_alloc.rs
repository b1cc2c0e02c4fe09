//! hakmem as the global allocator of a Rust program: std collections with threads, results checked.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

#[test]
fn collections_with_threads() {
    let shared: Arc<Mutex<BTreeMap<u64, String>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let mut hs = Vec::new();
    for t in 0..4u64 {
        let shared = shared.clone();
        hs.push(std::thread::spawn(move || {
            let mut v: Vec<u64> = Vec::new();
            let mut h: HashMap<String, Vec<u64>> = HashMap::new();
            for i in 0..200_000u64 {
                v.push(i * t);
                if i % 7 == 0 {
                    h.entry(format!("k{}", i % 5000)).or_default().push(i);
                }
                if i % 1000 == 0 {
                    shared.lock().unwrap().insert(
                        t * 1_000_000 + i,
                        format!("{}-{}", t, "x".repeat((i % 300) as usize)),
                    );
                }
            }
            v.shrink_to_fit();
            let sum: u64 = v.iter().sum();
            assert_eq!(sum, t * (199_999 * 200_000 / 2));
            let total: usize = h.values().map(|x| x.len()).sum();
            assert_eq!(total, (0..200_000u64).filter(|i| i % 7 == 0).count());
            assert_eq!(h.len(), 5000);
            // strings: build, split, join
            let s: String = (0..20_000)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let back: Vec<u32> = s.split(',').map(|x| x.parse().unwrap()).collect();
            assert_eq!(back.len(), 20_000);
            assert_eq!(
                back.iter().map(|&x| x as u64).sum::<u64>(),
                19_999 * 20_000 / 2
            );
            // hand a big structure to another thread to drop
            let moved: Vec<String> = (0..10_000).map(|i| format!("moved-{}-{}", t, i)).collect();
            moved
        }));
    }
    let mut all = Vec::new();
    for h in hs {
        all.push(h.join().unwrap());
    }
    // drop the other threads' data here (cross-thread frees via GlobalAlloc)
    for (t, v) in all.iter().enumerate() {
        assert_eq!(v.len(), 10_000);
        assert_eq!(v[9_999], format!("moved-{}-9999", t));
    }
    drop(all);
    let m = shared.lock().unwrap();
    assert_eq!(m.len(), 4 * 200);
    for (k, v) in m.iter() {
        let t = k / 1_000_000;
        let i = k % 1_000_000;
        assert_eq!(
            v.len(),
            format!("{}-", t).len() + (i % 300) as usize,
            "value of {}",
            k
        );
    }
}

#[test]
fn over_aligned_layouts_and_realloc() {
    use std::alloc::{alloc, dealloc, realloc, Layout};
    for &align in &[1usize, 8, 16, 64, 256, 4096, 65536, 1 << 21] {
        for &size in &[1usize, 7, 100, 4096, 100_000, 3 << 20] {
            unsafe {
                let l = Layout::from_size_align(size, align).unwrap();
                let p = alloc(l);
                assert!(!p.is_null(), "alloc({:?})", l);
                assert_eq!(p as usize % align, 0, "alloc({:?}) misaligned", l);
                std::ptr::write_bytes(p, 0xa5, size);
                let n2 = size * 3 + 1;
                let q = realloc(p, l, n2);
                assert!(!q.is_null());
                assert_eq!(q as usize % align, 0, "realloc kept align {} ?", align);
                for i in 0..size {
                    assert_eq!(
                        *q.add(i),
                        0xa5,
                        "realloc lost byte {} (size {} align {})",
                        i,
                        size,
                        align
                    );
                }
                dealloc(q, Layout::from_size_align(n2, align).unwrap());
            }
        }
    }
    // zero-initialised
    let v = vec![0u64; 1 << 20];
    assert!(v.iter().all(|&x| x == 0));
    let boxed: Box<[u8]> = vec![0u8; 5 << 20].into_boxed_slice();
    assert!(boxed.iter().all(|&x| x == 0));
}
