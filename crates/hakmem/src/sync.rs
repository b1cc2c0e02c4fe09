//! The atomics that lock-free code uses, swappable for loom's model-checked ones.
//!
//! Normally these are `core::sync::atomic`. Built with `RUSTFLAGS="--cfg loom"` (scripts/test.sh
//! does, in its own target dir), `AtomicPtr` becomes a wrapper over loom's, so the loom tests in
//! `remote.rs` explore every interleaving of the real code. Loom's atomics cannot be built in a
//! `const fn`, so the wrapper keeps the initial value and creates the loom atomic on first use;
//! a loom test builds its structures inside `loom::model` and uses each atomic once before it
//! spawns threads (loom cannot see the lazy creation as synchronised with other threads).

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicPtr, Ordering};

#[cfg(loom)]
pub use self::loom_shim::{AtomicPtr, Ordering};

#[cfg(loom)]
mod loom_shim {
    pub use core::sync::atomic::Ordering;
    use std::sync::OnceLock;

    pub struct AtomicPtr<T> {
        init: *mut T,
        cell: OnceLock<loom::sync::atomic::AtomicPtr<T>>,
    }

    // SAFETY: `init` is only read to create the loom atomic; all shared access goes through it.
    unsafe impl<T> Send for AtomicPtr<T> {}
    // SAFETY: as above.
    unsafe impl<T> Sync for AtomicPtr<T> {}

    impl<T> AtomicPtr<T> {
        pub const fn new(p: *mut T) -> Self {
            AtomicPtr {
                init: p,
                cell: OnceLock::new(),
            }
        }
        fn get(&self) -> &loom::sync::atomic::AtomicPtr<T> {
            self.cell
                .get_or_init(|| loom::sync::atomic::AtomicPtr::new(self.init))
        }
        pub fn load(&self, o: Ordering) -> *mut T {
            self.get().load(o)
        }
        pub fn store(&self, p: *mut T, o: Ordering) {
            self.get().store(p, o)
        }
        pub fn swap(&self, p: *mut T, o: Ordering) -> *mut T {
            self.get().swap(p, o)
        }
        pub fn compare_exchange_weak(
            &self,
            cur: *mut T,
            new: *mut T,
            ok: Ordering,
            err: Ordering,
        ) -> Result<*mut T, *mut T> {
            self.get().compare_exchange_weak(cur, new, ok, err)
        }
    }
}
