//! The lock-free list that other threads push freed blocks onto; the slab's owner takes it whole.
//!
//! Many producers push one block each with a CAS; the single consumer (the owner, or whoever holds
//! an orphan slab under the orphan lock) swaps the head for null and takes what it got. Since nobody
//! pops single nodes, there is no ABA problem.
//!
//! The head word also counts the blocks on the list, in its top 16 bits (blocks live below 2^47,
//! see `registry.rs`): the consumer learns the length without walking the list, whose blocks were
//! just written by other threads and are cold in its cache. A count that would overflow sticks at
//! `UNCOUNTED` and the consumer walks to count.

use crate::sync::{AtomicPtr, Ordering};
use core::ptr::null_mut;

/// A free block: its first word links to the next free block.
#[repr(C)]
pub struct Block {
    pub next: *mut Block,
}

pub struct RemoteList {
    /// The most recently pushed block, with the list's length in the top `64 - COUNT_SHIFT` bits.
    head: AtomicPtr<Block>,
}

const COUNT_SHIFT: u32 = 48;
const ADDR_MASK: usize = (1 << COUNT_SHIFT) - 1;
/// The count of a list too long to count in the head word (more than any slab holds): walk it.
pub const UNCOUNTED: u32 = (usize::MAX >> COUNT_SHIFT) as u32;

/// The block pointer and the count of a head word.
#[inline(always)]
fn unpack(head: *mut Block) -> (*mut Block, u32) {
    (
        head.map_addr(|a| a & ADDR_MASK),
        (head.addr() >> COUNT_SHIFT) as u32,
    )
}

impl RemoteList {
    #[cfg(test)]
    pub const fn new() -> Self {
        RemoteList {
            head: AtomicPtr::new(null_mut()),
        }
    }

    /// Pushes `block` (an address below 2^48), which the caller owns and no longer uses.
    #[cfg(test)]
    pub fn push(&self, block: *mut Block) {
        self.push_chain(block, block, 1);
    }

    /// Pushes the chain `first` .. `last` of `n` blocks (linked through their first words, from
    /// `first` to `last`; addresses below 2^48), which the caller owns and no longer uses: one
    /// CAS for the whole chain.
    #[inline]
    pub fn push_chain(&self, first: *mut Block, last: *mut Block, n: u32) {
        debug_assert_eq!(first.addr() & !ADDR_MASK, 0);
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let (next, count) = unpack(head);
            // SAFETY: the caller hands us the chain; nobody else reads it until the push is seen.
            unsafe { (*last).next = next };
            let count = count.saturating_add(n).min(UNCOUNTED);
            let new = first.map_addr(|a| a | (count as usize) << COUNT_SHIFT);
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// The most recently pushed block (a snapshot; for the double-free check).
    #[inline]
    pub fn head(&self) -> *mut Block {
        unpack(self.head.load(Ordering::Relaxed)).0
    }

    /// Takes the whole list, most recently pushed first. Only the list's consumer calls this.
    #[cfg(test)]
    pub fn take_all(&self) -> *mut Block {
        self.take_counted().0
    }

    /// Takes the whole list and its length (`UNCOUNTED`: not known, walk it). Only the list's
    /// consumer calls this.
    ///
    /// The first load is SeqCst (a plain load on x86_64): a consumer that learned of a push from
    /// a SeqCst hint (`remote_free::free_remote`) then reads the list no earlier than that push.
    #[inline]
    pub fn take_counted(&self) -> (*mut Block, u32) {
        if self.head.load(Ordering::SeqCst).is_null() {
            return (null_mut(), 0);
        }
        unpack(self.head.swap(null_mut(), Ordering::SeqCst))
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::SeqCst).is_null()
    }

    pub fn reset(&self) {
        self.head.store(null_mut(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_head_counts_the_list_until_the_count_would_overflow() {
        let mut blocks: Vec<Block> = (0..UNCOUNTED as usize + 10)
            .map(|_| Block { next: null_mut() })
            .collect();
        let list = RemoteList::new();
        assert_eq!(list.take_counted(), (null_mut(), 0));
        for b in blocks[..3].iter_mut() {
            list.push(b);
        }
        assert_eq!(list.head(), &mut blocks[2] as *mut Block);
        let (b, n) = list.take_counted();
        assert_eq!((b, n), (&mut blocks[2] as *mut Block, 3));
        assert!(list.is_empty());
        for b in blocks.iter_mut() {
            list.push(b);
        }
        let (mut b, n) = list.take_counted();
        assert_eq!(n, UNCOUNTED);
        let mut walked = 0;
        while !b.is_null() {
            walked += 1;
            // SAFETY: `b` is one of `blocks`, linked by the pushes.
            b = unsafe { (*b).next };
        }
        assert_eq!(walked, blocks.len());
    }

    #[test]
    fn concurrent_pushes_are_all_taken_once() {
        const THREADS: usize = 4;
        const PER: usize = 10_000;
        let list = Arc::new(RemoteList::new());
        let mut blocks: Vec<Box<[Block]>> = (0..THREADS)
            .map(|_| (0..PER).map(|_| Block { next: null_mut() }).collect())
            .collect();
        let addrs: Vec<usize> = blocks.iter_mut().map(|b| b.as_mut_ptr() as usize).collect();
        let consumer = {
            let list = list.clone();
            std::thread::spawn(move || {
                let mut seen = 0;
                while seen < THREADS * PER {
                    let mut b = list.take_all();
                    while !b.is_null() {
                        seen += 1;
                        // SAFETY: `b` is one of the producers' blocks, linked by their pushes and
                        // taken by this thread.
                        b = unsafe { (*b).next };
                    }
                }
                seen
            })
        };
        let producers: Vec<_> = addrs
            .into_iter()
            .map(|base| {
                let list = list.clone();
                std::thread::spawn(move || {
                    for i in 0..PER {
                        list.push((base as *mut Block).wrapping_add(i));
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(consumer.join().unwrap(), THREADS * PER);
        assert!(list.is_empty());
    }
}

/// Model checks of the remote-free protocol with loom: every interleaving of a few threads (up to
/// the preemption bound `LOOM_MAX_PREEMPTIONS`, scripts/test.sh sets 3). Run with
/// `RUSTFLAGS="--cfg loom" cargo test --release -p hakmem --lib loom`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize};
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    /// Blocks with stable addresses for one model run; index = position in the array.
    struct Blocks(Box<[Block]>);
    // SAFETY: the blocks are handed between threads the way the allocator hands free blocks.
    unsafe impl Send for Blocks {}
    // SAFETY: as for `Send`: each block is used by one thread at a time.
    unsafe impl Sync for Blocks {}
    impl Blocks {
        fn new(n: usize) -> Arc<Blocks> {
            Arc::new(Blocks((0..n).map(|_| Block { next: null_mut() }).collect()))
        }
        fn ptr(&self, i: usize) -> *mut Block {
            &self.0[i] as *const Block as *mut Block
        }
        fn index(&self, b: *mut Block) -> usize {
            let base = self.0.as_ptr() as usize;
            let i = (b as usize - base) / core::mem::size_of::<Block>();
            assert!(i < self.0.len(), "foreign block {b:?} on the list");
            i
        }
    }

    /// Creates the list's loom atomic (crate::sync does it on first use) in the model's main
    /// thread, before any thread is spawned: loom does not see the lazy creation as synchronised.
    fn touch(list: &RemoteList) {
        assert!(list.is_empty());
    }

    /// Walks a list taken with `take_all`, counting each block in `seen`.
    fn walk(blocks: &Blocks, mut b: *mut Block, seen: &mut [u32]) -> usize {
        let mut n = 0;
        while !b.is_null() {
            seen[blocks.index(b)] += 1;
            n += 1;
            // SAFETY: the taker owns every block of the taken list.
            b = unsafe { (*b).next };
        }
        n
    }

    /// Two pushers of two blocks each, a consumer taking the list twice while they push; whatever
    /// is left is taken at the end. Every block is seen exactly once.
    #[test]
    fn loom_pushers_and_consumer_see_each_block_once() {
        loom::model(|| {
            const PUSHERS: usize = 2;
            const PER: usize = 2;
            let blocks = Blocks::new(PUSHERS * PER);
            let list = Arc::new(RemoteList::new());
            touch(&list);
            let mut hs = Vec::new();
            for t in 0..PUSHERS {
                let (blocks, list) = (blocks.clone(), list.clone());
                hs.push(thread::spawn(move || {
                    for i in 0..PER {
                        list.push(blocks.ptr(t * PER + i));
                    }
                }));
            }
            let consumer = {
                let (blocks, list) = (blocks.clone(), list.clone());
                thread::spawn(move || {
                    let mut seen = vec![0u32; PUSHERS * PER];
                    for _ in 0..2 {
                        walk(&blocks, list.take_all(), &mut seen);
                    }
                    seen
                })
            };
            for h in hs {
                h.join().unwrap();
            }
            let mut seen = consumer.join().unwrap();
            walk(&blocks, list.take_all(), &mut seen);
            assert!(seen.iter().all(|&s| s == 1), "seen counts {seen:?}");
            assert!(list.is_empty());
        });
    }

    /// A model of slab retirement and adoption (orphans.rs `retire_slab`, `adopt`,
    /// `free_remote`) over the real `RemoteList`. The slab has 3 blocks out: the owner frees one
    /// locally and retires (drains the remote list, releases the slab if nothing is out, else sets
    /// owner = null and publishes it on the orphan list under the lock); another thread frees the
    /// other two remotely, concurrently; an adopter takes the orphan (owner = itself) and drains.
    /// `used` and `released` are loom cells, so two holders touching the slab at once is a failure.
    /// At the end every block came back exactly once and the slab is released exactly once or
    /// still held with nothing missing.
    struct Slab {
        owner: AtomicUsize,
        remote: RemoteList,
        used: UnsafeCell<usize>,
        seen: UnsafeCell<Vec<u32>>,
        released: UnsafeCell<u32>,
    }
    // SAFETY: the non-atomic fields are only touched by the slab's holder; loom checks that.
    unsafe impl Sync for Slab {}
    // SAFETY: as for `Sync`.
    unsafe impl Send for Slab {}

    const OWNER: usize = 1;
    const ADOPTER: usize = 3;

    impl Slab {
        /// The holder drains its remote list (slab.rs `drain_remote`).
        fn drain(&self, blocks: &Blocks) {
            // `take_counted` starts with a SeqCst load (see `stale_owner_hint_model`).
            fence(Ordering::SeqCst);
            let b = self.remote.take_all();
            // SAFETY: the holder (this thread, in the model) is the only one touching `seen`; loom
            // checks it.
            let n = self.seen.with_mut(|s| walk(blocks, b, unsafe { &mut *s }));
            // SAFETY: as above, for `used`.
            self.used.with_mut(|u| unsafe { *u -= n });
        }
        fn used(&self) -> usize {
            // SAFETY: only the slab's holder reads `used`; loom checks no other thread touches it.
            self.used.with(|u| unsafe { *u })
        }
        fn release(&self) {
            // SAFETY: as above, for `released`.
            self.released.with_mut(|r| unsafe { *r += 1 });
        }
    }

    #[test]
    fn loom_orphan_adoption_loses_no_block() {
        loom::model(|| {
            let blocks = Blocks::new(3);
            let slab = Arc::new(Slab {
                owner: AtomicUsize::new(OWNER),
                remote: RemoteList::new(),
                used: UnsafeCell::new(3),
                seen: UnsafeCell::new(vec![0; 3]),
                released: UnsafeCell::new(0),
            });
            touch(&slab.remote);
            // The orphan list: slabs waiting for an adopter (at most this one).
            let orphans: Arc<Mutex<Option<Arc<Slab>>>> = Arc::new(Mutex::new(None));
            let remote_frees_to_orphan = Arc::new(AtomicUsize::new(0));

            let freer = {
                let (blocks, slab, rf) =
                    (blocks.clone(), slab.clone(), remote_frees_to_orphan.clone());
                thread::spawn(move || {
                    for i in 1..3 {
                        // free_remote: read the owner, then push (the slab is not touched after).
                        let owner = slab.owner.load(Ordering::SeqCst);
                        slab.remote.push(blocks.ptr(i));
                        if owner == 0 {
                            rf.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            };
            let owner = {
                let (blocks, slab, orphans) = (blocks.clone(), slab.clone(), orphans.clone());
                thread::spawn(move || {
                    // local free of block 0 (flush to the slab), then retire_slab
                    // SAFETY: the owner holds the slab here; loom checks that no other thread
                    // touches `seen` meanwhile.
                    slab.seen.with_mut(|s| unsafe { (&mut *s)[0] += 1 });
                    // SAFETY: as above, for `used`.
                    slab.used.with_mut(|u| unsafe { *u -= 1 });
                    slab.drain(&blocks);
                    if slab.used() == 0 {
                        slab.release();
                        return;
                    }
                    slab.owner.store(0, Ordering::SeqCst);
                    *orphans.lock().unwrap() = Some(slab);
                })
            };
            let adopter = {
                let (blocks, orphans) = (blocks.clone(), orphans.clone());
                thread::spawn(move || {
                    let s = orphans.lock().unwrap().take();
                    if let Some(s) = s {
                        s.owner.store(ADOPTER, Ordering::SeqCst);
                        s.drain(&blocks);
                        if s.used() == 0 {
                            s.release();
                            return None;
                        }
                        return Some(s);
                    }
                    None
                })
            };
            freer.join().unwrap();
            owner.join().unwrap();
            let adopted = adopter.join().unwrap();
            // Whoever holds the slab now (the adopter, or the orphan list) drains the rest.
            let holder = adopted.or_else(|| orphans.lock().unwrap().take());
            if let Some(s) = holder {
                s.drain(&blocks);
                assert_eq!(s.used(), 0, "blocks still out after every free");
                s.release();
            }
            // SAFETY: every thread has been joined: nothing else touches the slab.
            let seen = slab.seen.with(|s| unsafe { (*s).clone() });
            assert_eq!(
                seen,
                vec![1, 1, 1],
                "each block must come back exactly once"
            );
            assert_eq!(slab.used(), 0);
            assert_eq!(
                // SAFETY: every thread has been joined: nothing else touches the slab.
                slab.released.with(|r| unsafe { *r }),
                1,
                "released exactly once"
            );
            assert!(slab.remote.is_empty());
        });
    }

    /// A model of a remote free racing its slab owner's retirement and a reap (heap.rs, orphans.rs
    /// `free_remote` with `owner_of` and `set_hint`, `Heap::retire`, `retire_slab`,
    /// `orphans::reap`). One block of the slab is out; a freer frees it remotely while the owner
    /// retires (drains, orphans the slab, sets the orphan hint, counts the retirement, forwards
    /// its late hints) and a reaper reaps once. At the end the block must not be stranded: either
    /// it came back and the slab was released, or the orphan hint is set for the next reap.
    /// With `forward` false the model leaves out the retirement count and the forwarding (the
    /// freer reads the owner once and hints it): a reap between the orphaning and the push then
    /// strands the block, which the `should_panic` test below checks the model finds.
    ///
    /// The argument rests on the single total order of SeqCst accesses, which loom does not model
    /// (it treats them as AcqRel): a SeqCst fence stands between each pair of accesses whose order
    /// it uses (push, then hint; hint, then count; count, then swap of the hint; swap of the orphan
    /// hint, then the drain's first load).
    fn stale_owner_hint_model(forward: bool) {
        loom::model(move || {
            let blocks = Blocks::new(1);
            let slab = Arc::new(Slab {
                owner: AtomicUsize::new(OWNER),
                remote: RemoteList::new(),
                used: UnsafeCell::new(1),
                seen: UnsafeCell::new(vec![0; 1]),
                released: UnsafeCell::new(0),
            });
            touch(&slab.remote);
            // The owner heap's remote hint and retirement count; the orphan hint; the orphan
            // list (whether the slab is on it).
            let hint = Arc::new(AtomicU64::new(0));
            let retirements = Arc::new(AtomicU32::new(0));
            let orphan_hint = Arc::new(AtomicU64::new(0));
            let orphaned = Arc::new(Mutex::new(false));
            let set_hint = |h: &AtomicU64| {
                if h.load(Ordering::SeqCst) & 1 == 0 {
                    h.fetch_or(1, Ordering::SeqCst);
                }
            };

            let freer = {
                let (blocks, slab) = (blocks.clone(), slab.clone());
                let (hint, retirements, orphan_hint) =
                    (hint.clone(), retirements.clone(), orphan_hint.clone());
                thread::spawn(move || {
                    let (owner, count) = loop {
                        let owner = slab.owner.load(Ordering::SeqCst);
                        if owner == 0 || !forward {
                            break (owner, 0);
                        }
                        let count = retirements.load(Ordering::SeqCst);
                        if slab.owner.load(Ordering::SeqCst) == owner {
                            break (owner, count);
                        }
                    };
                    slab.remote.push(blocks.ptr(0));
                    fence(Ordering::SeqCst);
                    if owner == 0 {
                        set_hint(&orphan_hint);
                        return;
                    }
                    set_hint(&hint);
                    fence(Ordering::SeqCst);
                    if forward && retirements.load(Ordering::SeqCst) != count {
                        set_hint(&orphan_hint);
                    }
                })
            };
            let owner = {
                let (blocks, slab, orphaned) = (blocks.clone(), slab.clone(), orphaned.clone());
                let (hint, retirements, orphan_hint) =
                    (hint.clone(), retirements.clone(), orphan_hint.clone());
                thread::spawn(move || {
                    slab.drain(&blocks);
                    if slab.used() == 0 {
                        slab.release();
                    } else {
                        slab.owner.store(0, Ordering::SeqCst);
                        *orphaned.lock().unwrap() = true;
                        orphan_hint.fetch_or(1, Ordering::SeqCst);
                    }
                    if forward {
                        retirements.fetch_add(1, Ordering::SeqCst);
                        fence(Ordering::SeqCst);
                        if hint.swap(0, Ordering::SeqCst) != 0 {
                            orphan_hint.fetch_or(1, Ordering::SeqCst);
                        }
                    } else {
                        hint.store(0, Ordering::SeqCst);
                    }
                })
            };
            let reaper = {
                let (blocks, slab, orphaned, orphan_hint) = (
                    blocks.clone(),
                    slab.clone(),
                    orphaned.clone(),
                    orphan_hint.clone(),
                );
                thread::spawn(move || {
                    if orphan_hint.load(Ordering::SeqCst) == 0 {
                        return;
                    }
                    let mut on_list = orphaned.lock().unwrap();
                    if orphan_hint.swap(0, Ordering::SeqCst) != 0 && *on_list {
                        slab.drain(&blocks);
                        if slab.used() == 0 {
                            *on_list = false;
                            slab.release();
                        }
                    }
                })
            };
            freer.join().unwrap();
            owner.join().unwrap();
            reaper.join().unwrap();
            // SAFETY: every thread has been joined: nothing else touches the slab.
            let released = slab.released.with(|r| unsafe { *r });
            assert!(released <= 1, "released twice");
            if released == 0 {
                assert!(*orphaned.lock().unwrap(), "neither released nor an orphan");
                assert_ne!(
                    orphan_hint.load(Ordering::SeqCst),
                    0,
                    "the freed block is stranded on an orphan no reap will look at"
                );
            }
        });
    }

    #[test]
    fn loom_remote_free_racing_retirement_is_never_stranded() {
        stale_owner_hint_model(true);
    }

    #[test]
    #[should_panic(expected = "stranded")]
    fn loom_model_finds_the_stranding_without_forwarding() {
        stale_owner_hint_model(false);
    }
}
