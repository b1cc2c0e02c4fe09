//! The lock-free list that other threads push freed blocks onto; the slab's owner takes it whole.
//!
//! Many producers push one block each with a CAS; the single consumer (the owner, or whoever holds
//! an orphan slab under the orphan lock) swaps the head for null and walks what it got. Since nobody
//! pops single nodes, there is no ABA problem.

use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

/// A free block: its first word links to the next free block.
#[repr(C)]
pub struct Block {
    pub next: *mut Block,
}

pub struct RemoteList {
    head: AtomicPtr<Block>,
}

impl RemoteList {
    #[cfg(test)]
    pub const fn new() -> Self {
        RemoteList {
            head: AtomicPtr::new(null_mut()),
        }
    }

    /// Pushes `block`, which the caller owns and no longer uses.
    #[inline]
    pub fn push(&self, block: *mut Block) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the caller hands us the block; nobody else reads it until the push is seen.
            unsafe { (*block).next = head };
            match self
                .head
                .compare_exchange_weak(head, block, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Takes the whole list, most recently pushed first. Only the list's consumer calls this.
    #[inline]
    pub fn take_all(&self) -> *mut Block {
        if self.head.load(Ordering::Relaxed).is_null() {
            return null_mut();
        }
        self.head.swap(null_mut(), Ordering::SeqCst)
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
