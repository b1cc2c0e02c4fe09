//! The model shared by the fuzz target and the random driver: a program is a byte string decoded
//! into malloc / calloc / memalign / realloc / free / usable_size steps, run against the live
//! blocks (size, alignment, fill byte). After each step: contents intact, alignment held,
//! usable_size >= size and stable, calloc zeroed, no overlap between live blocks. A violation
//! panics with a description (libFuzzer and the driver both report it with the input).

use std::collections::BTreeMap;

struct Live {
    p: usize,
    size: usize,
    usable: usize,
    align: usize,
    fill: u8,
}

#[derive(Default)]
pub struct Model {
    live: Vec<Live>,
    spans: BTreeMap<usize, usize>,
    next_fill: u8,
    pub ops: u64,
}

/// Reads the program's bytes, little by little; zeros past the end.
pub struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, at: 0 }
    }
    pub fn done(&self) -> bool {
        self.at >= self.data.len()
    }
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    pub fn u16(&mut self) -> usize {
        self.u8() as usize | (self.u8() as usize) << 8
    }
    /// Mostly small, some medium, a few large sizes.
    pub fn size(&mut self) -> usize {
        match self.u8() % 16 {
            0..=8 => self.u8() as usize,
            9..=12 => self.u16() % 8193,
            13..=14 => (self.u16() << 3) % 300_001,
            _ => (self.u16() << 6) % (3 << 20),
        }
    }
}

impl Model {
    pub fn new() -> Model {
        Model {
            next_fill: 1,
            ..Default::default()
        }
    }

    unsafe fn add(&mut self, p: *mut u8, size: usize, align: usize, zeroed: bool) {
        assert!(
            !p.is_null(),
            "allocation of {size} (align {align}) returned null"
        );
        let a = p as usize;
        assert_eq!(
            a % align.max(16),
            0,
            "{a:#x} (size {size}) not aligned to {}",
            align.max(16)
        );
        let usable = hakmem::usable_size(p);
        assert!(usable >= size, "usable_size({a:#x}) = {usable} < {size}");
        let end = a + usable.max(1);
        if let Some((&s, &e)) = self.spans.range(..end).next_back() {
            assert!(
                e <= a,
                "new block [{a:#x}, {end:#x}) overlaps live block [{s:#x}, {e:#x})"
            );
        }
        if zeroed {
            if let Some(i) = (0..size).find(|&i| *p.add(i) != 0) {
                panic!("calloc block {a:#x} ({size}) byte {i} not zero");
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
    }

    fn check(&self, i: usize) {
        let b = &self.live[i];
        let p = b.p as *const u8;
        // SAFETY: the block is live and `size` bytes long.
        if let Some(k) = (0..b.size).find(|&k| unsafe { *p.add(k) } != b.fill) {
            panic!(
                "block {:#x} (size {}, fill {:#x}) corrupted at byte {k}",
                b.p, b.size, b.fill
            );
        }
    }

    fn take(&mut self, i: usize) -> Live {
        self.check(i);
        let b = self.live.swap_remove(i);
        self.spans.remove(&b.p);
        b
    }

    /// One step decoded from `inp`.
    ///
    /// # Safety
    /// Uses the allocator; the model only touches blocks it holds.
    pub unsafe fn step(&mut self, inp: &mut Input) {
        self.ops += 1;
        let op = inp.u8() % 20;
        let n = self.live.len();
        match op {
            0..=5 => {
                let s = inp.size();
                self.add(hakmem::malloc(s), s, 1, false)
            }
            6..=7 => {
                let (k, s) = (inp.u8() as usize % 65, inp.u16() % 513);
                self.add(hakmem::calloc(k, s), k * s, 1, true)
            }
            8..=9 => {
                let a = 1usize << (3 + inp.u8() % 20);
                let s = inp.size();
                self.add(hakmem::memalign(a, s), s, a, false)
            }
            10..=12 if n > 0 => {
                let i = inp.u16() % n;
                let s = inp.size();
                let b = self.take(i);
                let q = hakmem::realloc(b.p as *mut u8, s);
                assert!(!q.is_null(), "realloc({:#x}, {s}) returned null", b.p);
                if let Some(k) = (0..b.size.min(s)).find(|&k| *q.add(k) != b.fill) {
                    panic!(
                        "realloc {:#x} ({}) -> {q:p} ({s}): byte {k} lost",
                        b.p, b.size
                    );
                }
                self.add(q, s, 1, false)
            }
            13..=18 if n > 0 => {
                let i = inp.u16() % n;
                let b = self.take(i);
                hakmem::free(b.p as *mut u8);
            }
            19 if n > 0 => {
                let b = &self.live[inp.u16() % n];
                let u = hakmem::usable_size(b.p as *mut u8);
                assert_eq!(u, b.usable, "usable_size({:#x}) changed", b.p);
                core::ptr::write_bytes(b.p as *mut u8, b.fill, u);
                assert_eq!(b.p % b.align.max(16), 0, "{:#x} lost its alignment", b.p);
            }
            _ => {}
        }
    }

    /// Frees every live block after checking it.
    pub fn finish(&mut self) {
        while !self.live.is_empty() {
            let b = self.take(self.live.len() - 1);
            // SAFETY: a live block of this model.
            unsafe { hakmem::free(b.p as *mut u8) };
        }
    }

    pub fn live(&self) -> usize {
        self.live.len()
    }
}

/// Runs a whole program (the fuzz target's body).
pub fn run(data: &[u8]) -> u64 {
    let mut m = Model::new();
    let mut inp = Input::new(data);
    while !inp.done() {
        // SAFETY: see `step`.
        unsafe { m.step(&mut inp) };
    }
    m.finish();
    m.ops
}
