//! Model-based property test of the rlib API: random sequences of malloc / calloc / realloc /
//! memalign / free / usable_size run against a model (the live blocks, each with its size,
//! alignment and fill byte). After every step: contents intact (a block is checked whole before
//! it is freed or reallocated, and realloc keeps the common prefix), alignment held,
//! `usable_size >= size`, calloc memory zero, and no two live blocks overlap (over their usable
//! sizes). Deterministic: a fixed seed, so CI runs the same cases every time; shrinking gives a
//! minimal failing sequence. HAKMEM_MODEL_CASES sets the number of cases (default 128).
//!
//! The same model runs as a fuzz target in fuzz/ (cargo-fuzz, or the clock-seeded driver).
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
enum Op {
    Malloc(usize),
    Calloc(usize, usize),
    Memalign(u32, usize),
    Realloc(usize, usize),
    Free(usize),
    UsableSize(usize),
}

/// Sizes: mostly small, some medium (slab "mid" classes), a few large (own mappings).
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        10 => 0usize..=256,
        5 => 257usize..=8192,
        3 => 8193usize..=300_000,
        1 => 300_001usize..=3 << 20,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => size().prop_map(Op::Malloc),
        2 => (0usize..=64, 0usize..=512).prop_map(|(n, s)| Op::Calloc(n, s)),
        2 => (3u32..=22, size()).prop_map(|(a, s)| Op::Memalign(a, s)),
        3 => (any::<usize>(), size()).prop_map(|(i, s)| Op::Realloc(i, s)),
        5 => any::<usize>().prop_map(Op::Free),
        1 => any::<usize>().prop_map(Op::UsableSize),
    ]
}

struct Live {
    p: usize,
    size: usize,
    usable: usize,
    align: usize,
    fill: u8,
}

struct Model {
    live: Vec<Live>,
    /// start -> end (start + usable) of every live block.
    spans: BTreeMap<usize, usize>,
    next_fill: u8,
}

fn fail(msg: String) -> Result<(), TestCaseError> {
    Err(TestCaseError::fail(msg))
}

impl Model {
    fn new() -> Model {
        Model {
            live: Vec::new(),
            spans: BTreeMap::new(),
            next_fill: 1,
        }
    }

    /// Checks a fresh block and adds it: non-null, aligned, usable_size, no overlap; fills it.
    unsafe fn add(
        &mut self,
        p: *mut u8,
        size: usize,
        align: usize,
        zeroed: bool,
    ) -> Result<(), TestCaseError> {
        if p.is_null() {
            return fail(format!(
                "allocation of {size} (align {align}) returned null"
            ));
        }
        let a = p as usize;
        if !a.is_multiple_of(align.max(16)) {
            return fail(format!(
                "{a:#x} (size {size}) not aligned to {}",
                align.max(16)
            ));
        }
        let usable = hakmem::usable_size(p);
        if usable < size {
            return fail(format!("usable_size({a:#x}) = {usable} < {size}"));
        }
        let end = a + usable.max(1);
        if let Some((&s, &e)) = self.spans.range(..end).next_back() {
            if e > a {
                return fail(format!(
                    "new block [{a:#x}, {end:#x}) overlaps live block [{s:#x}, {e:#x})"
                ));
            }
        }
        if zeroed {
            if let Some(i) = (0..size).find(|&i| *p.add(i) != 0) {
                return fail(format!("calloc block {a:#x} ({size}) byte {i} not zero"));
            }
        }
        let fill = self.next_fill;
        self.next_fill = self.next_fill.wrapping_add(1).max(1);
        core::ptr::write_bytes(p, fill, size);
        self.spans.insert(a, end);
        self.live.push(Live {
            p: a,
            size,
            usable,
            align,
            fill,
        });
        Ok(())
    }

    fn check(b: &Live, upto: usize) -> Result<(), TestCaseError> {
        let p = b.p as *const u8;
        // SAFETY: the block is live and at least `size >= upto` bytes long.
        if let Some(i) = (0..upto).find(|&i| unsafe { *p.add(i) } != b.fill) {
            return fail(format!(
                "block {:#x} (size {}, fill {:#x}) corrupted at byte {i}",
                b.p, b.size, b.fill
            ));
        }
        Ok(())
    }

    fn take(&mut self, i: usize) -> Live {
        let b = self.live.swap_remove(i);
        self.spans.remove(&b.p);
        b
    }

    unsafe fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Malloc(n) => self.add(hakmem::malloc(n), n, 1, false),
            Op::Calloc(n, s) => self.add(hakmem::calloc(n, s), n * s, 1, true),
            Op::Memalign(sh, n) => {
                let a = 1usize << sh;
                self.add(hakmem::memalign(a, n), n, a, false)
            }
            Op::Realloc(i, n) if !self.live.is_empty() => {
                let i = i % self.live.len();
                Model::check(&self.live[i], self.live[i].size)?;
                let b = self.take(i);
                let q = hakmem::realloc(b.p as *mut u8, n);
                if q.is_null() {
                    return fail(format!("realloc({:#x}, {n}) returned null", b.p));
                }
                let keep = b.size.min(n);
                if let Some(k) = (0..keep).find(|&k| *q.add(k) != b.fill) {
                    return fail(format!(
                        "realloc {:#x} ({}) -> {q:p} ({n}): byte {k} lost",
                        b.p, b.size
                    ));
                }
                self.add(q, n, 1, false)
            }
            Op::Free(i) if !self.live.is_empty() => {
                let i = i % self.live.len();
                Model::check(&self.live[i], self.live[i].size)?;
                let b = self.take(i);
                hakmem::free(b.p as *mut u8);
                Ok(())
            }
            Op::UsableSize(i) if !self.live.is_empty() => {
                let b = &self.live[i % self.live.len()];
                let u = hakmem::usable_size(b.p as *mut u8);
                if u != b.usable {
                    return fail(format!(
                        "usable_size({:#x}) changed from {} to {u}",
                        b.p, b.usable
                    ));
                }
                // All of it is writable; the block's own bytes are rewritten after.
                core::ptr::write_bytes(b.p as *mut u8, b.fill, u);
                if b.align > 1 && !b.p.is_multiple_of(b.align) {
                    return fail(format!("{:#x} lost its alignment {}", b.p, b.align));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    unsafe fn finish(&mut self) -> Result<(), TestCaseError> {
        while !self.live.is_empty() {
            Model::check(&self.live[0], self.live[0].size)?;
            let b = self.take(0);
            hakmem::free(b.p as *mut u8);
        }
        Ok(())
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // A failed case still frees what it holds (without checks).
        for b in self.live.drain(..) {
            // SAFETY: live blocks of this model.
            unsafe { hakmem::free(b.p as *mut u8) };
        }
    }
}

fn run_ops(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut m = Model::new();
    // SAFETY: the model only touches blocks it holds.
    unsafe {
        for op in ops {
            m.step(op)?;
        }
        m.finish()
    }
}

#[test]
fn random_operation_sequences_match_the_model() {
    let cases = std::env::var("HAKMEM_MODEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(128);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[0x5a; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let start = std::time::Instant::now();
    let result = runner.run(&proptest::collection::vec(op(), 1..400), |ops| {
        run_ops(&ops)
    });
    eprintln!(
        "model: {cases} cases in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Cross-thread variant: one thread allocates by the model, another frees the blocks it is
/// handed; the model checks contents at hand-off.
#[test]
fn handed_off_blocks_keep_their_contents() {
    let config = Config {
        cases: 16,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[0xa5; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let result = runner.run(
        &proptest::collection::vec((size(), any::<u8>()), 1..300),
        |blocks| {
            let (tx, rx) = std::sync::mpsc::channel::<(usize, usize, u8)>();
            let t = std::thread::spawn(move || -> Result<(), String> {
                for (p, n, f) in rx {
                    let q = p as *mut u8;
                    // SAFETY: handed over; we are its only user now.
                    unsafe {
                        if let Some(i) = (0..n).find(|&i| *q.add(i) != f) {
                            return Err(format!("block {p:#x} ({n}) byte {i} changed in transit"));
                        }
                        hakmem::free(q);
                    }
                }
                Ok(())
            });
            for &(n, f) in &blocks {
                // SAFETY: fresh block, filled then handed over.
                unsafe {
                    let p = hakmem::malloc(n);
                    prop_assert!(!p.is_null());
                    core::ptr::write_bytes(p, f, n);
                    tx.send((p as usize, n, f)).unwrap();
                }
            }
            drop(tx);
            t.join().unwrap().map_err(TestCaseError::fail)
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
