//! An intrusive doubly-linked list of metadata records (slabs, SuperSlabs) that live in mapped
//! memory. It never allocates; the caller owns the records and ensures each is in one list at a time.

use core::ptr::null_mut;

pub struct Links<T> {
    pub prev: *mut T,
    pub next: *mut T,
}

impl<T> Links<T> {
    pub const fn new() -> Self {
        Links {
            prev: null_mut(),
            next: null_mut(),
        }
    }
}

/// A record that can be in a `List`.
pub trait Linked: Sized {
    fn links(&mut self) -> &mut Links<Self>;
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
        let l = (*item).links();
        l.prev = null_mut();
        l.next = self.head;
        if self.head.is_null() {
            self.tail = item;
        } else {
            (*self.head).links().prev = item;
        }
        self.head = item;
        self.len += 1;
    }

    /// # Safety
    /// `item` is valid and in this list.
    pub unsafe fn remove(&mut self, item: *mut T) {
        let (prev, next) = {
            let l = (*item).links();
            (l.prev, l.next)
        };
        if prev.is_null() {
            self.head = next;
        } else {
            (*prev).links().next = next;
        }
        if next.is_null() {
            self.tail = prev;
        } else {
            (*next).links().prev = prev;
        }
        let l = (*item).links();
        l.prev = null_mut();
        l.next = null_mut();
        self.len -= 1;
    }

    /// # Safety
    /// Every record in the list is valid.
    pub unsafe fn pop_front(&mut self) -> *mut T {
        let h = self.head;
        if !h.is_null() {
            self.remove(h);
        }
        h
    }

    /// # Safety
    /// Every record in the list is valid.
    pub unsafe fn pop_back(&mut self) -> *mut T {
        let t = self.tail;
        if !t.is_null() {
            self.remove(t);
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
        fn links(&mut self) -> &mut Links<Self> {
            &mut self.links
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
