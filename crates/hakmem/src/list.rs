//! An intrusive doubly-linked list of metadata records (slabs, SuperSlabs) that live in mapped
//! memory. It never allocates; the caller owns the records and ensures each is in one list at a time.
//!
//! The list reaches a record's links through a raw pointer to that field alone (`Linked::links`)
//! and sets them through `Cell`s, never through a reference to the whole record: other threads
//! may read other fields of a record while its holder relinks it (a slab's `owner` and `remote`).

use core::cell::Cell;
use core::ptr::null_mut;

/// A record's links. Only the holder of the list the record is in touches them.
pub struct Links<T> {
    pub prev: Cell<*mut T>,
    pub next: Cell<*mut T>,
}

impl<T> Links<T> {
    pub const fn new() -> Self {
        Links {
            prev: Cell::new(null_mut()),
            next: Cell::new(null_mut()),
        }
    }
}

/// A record that can be in a `List`.
pub trait Linked: Sized {
    /// The record's links field, found without making a reference to the record.
    ///
    /// # Safety
    /// `this` points to a valid record.
    unsafe fn links(this: *mut Self) -> *const Links<Self>;
}

pub struct List<T> {
    pub head: *mut T,
    pub tail: *mut T,
    pub len: usize,
}

impl<T: Linked> List<T> {
    pub const fn new() -> Self {
        List {
            head: null_mut(),
            tail: null_mut(),
            len: 0,
        }
    }

    /// # Safety
    /// `item` is valid and in no list.
    pub unsafe fn push_front(&mut self, item: *mut T) {
        // SAFETY: `item` and the list's records are valid (the caller's contract), so their links
        // are.
        unsafe {
            let l = &*T::links(item);
            l.prev.set(null_mut());
            l.next.set(self.head);
            if self.head.is_null() {
                self.tail = item;
            } else {
                (*T::links(self.head)).prev.set(item);
            }
        }
        self.head = item;
        self.len += 1;
    }

    /// # Safety
    /// `item` is valid and in this list.
    pub unsafe fn remove(&mut self, item: *mut T) {
        // SAFETY: `item` is valid and in this list, so it and its neighbours are valid records.
        unsafe {
            let l = &*T::links(item);
            let (prev, next) = (l.prev.get(), l.next.get());
            if prev.is_null() {
                self.head = next;
            } else {
                (*T::links(prev)).next.set(next);
            }
            if next.is_null() {
                self.tail = prev;
            } else {
                (*T::links(next)).prev.set(prev);
            }
            l.prev.set(null_mut());
            l.next.set(null_mut());
        }
        self.len -= 1;
    }

    /// # Safety
    /// Every record in the list is valid.
    pub unsafe fn pop_front(&mut self) -> *mut T {
        let h = self.head;
        if !h.is_null() {
            // SAFETY: the head is a valid record of this list.
            unsafe { self.remove(h) };
        }
        h
    }

    /// # Safety
    /// Every record in the list is valid.
    pub unsafe fn pop_back(&mut self) -> *mut T {
        let t = self.tail;
        if !t.is_null() {
            // SAFETY: the tail is a valid record of this list.
            unsafe { self.remove(t) };
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item {
        v: u32,
        links: Links<Item>,
    }
    impl Linked for Item {
        unsafe fn links(this: *mut Self) -> *const Links<Self> {
            // SAFETY: `this` is valid (the caller's contract); no reference to the item is made.
            unsafe { &raw const (*this).links }
        }
    }

    #[test]
    fn push_remove_pop() {
        let mut items: Vec<Item> = (0..4)
            .map(|v| Item {
                v,
                links: Links::new(),
            })
            .collect();
        let p: Vec<*mut Item> = items.iter_mut().map(|i| i as *mut Item).collect();
        let mut list = List::new();
        // SAFETY: the items outlive the list and each is pushed once.
        unsafe {
            for &i in &p {
                list.push_front(i);
            }
            assert_eq!(list.len, 4);
            list.remove(p[2]);
            assert_eq!((*list.pop_front()).v, 3);
            assert_eq!((*list.pop_back()).v, 0);
            assert_eq!((*list.pop_back()).v, 1);
            assert!(list.pop_front().is_null());
            assert!(list.head.is_null() && list.tail.is_null());
            assert_eq!(list.len, 0);
        }
    }
}
