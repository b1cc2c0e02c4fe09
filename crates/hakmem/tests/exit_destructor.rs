//! hakmem as the global allocator, with allocations at thread exit after its own exit work: a
//! pthread key destructor that re-arms itself (so glibc calls it in each of its
//! PTHREAD_DESTRUCTOR_ITERATIONS rounds) and allocates in every round, handing a block to the main
//! thread in the last, and a `thread_local!` whose drop allocates (Rust runs those before the key
//! destructors). 2,000 such threads one after another: live slabs and SuperSlabs stay bounded.
use std::cell::RefCell;
use std::sync::Mutex;

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

static KEY: Mutex<Option<libc::pthread_key_t>> = Mutex::new(None);
static HANDED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

const ROUNDS: usize = 4; // glibc's PTHREAD_DESTRUCTOR_ITERATIONS

fn key() -> libc::pthread_key_t {
    KEY.lock().unwrap().expect("key created")
}

/// Allocates and frees a few blocks of several classes, checking their contents.
fn churn(seed: usize) {
    for n in [16, 80, 200, 1000, 5000, 40_000] {
        let v: Vec<u8> = (0..n + seed % 8).map(|i| (i ^ seed) as u8).collect();
        assert!(v.iter().enumerate().all(|(i, &b)| b == (i ^ seed) as u8));
    }
}

extern "C" fn destructor(v: *mut libc::c_void) {
    let round = v as usize;
    churn(round);
    if round < ROUNDS {
        // SAFETY: re-arms this thread's value of a live key.
        unsafe { libc::pthread_setspecific(key(), (round + 1) as *const libc::c_void) };
        return;
    }
    HANDED.lock().unwrap().push(vec![round as u8; 48 + round]);
}

struct AllocatesOnDrop;
impl Drop for AllocatesOnDrop {
    fn drop(&mut self) {
        churn(7);
    }
}

thread_local! {
    static ON_DROP: RefCell<Option<AllocatesOnDrop>> = const { RefCell::new(None) };
}

fn live() -> (u64, u64) {
    let s = hakmem::stats::snapshot();
    (s.slabs_acquired - s.slabs_released, s.superslabs_live)
}

#[test]
fn allocations_after_thread_exit_stay_bounded() {
    let mut k: libc::pthread_key_t = 0;
    // SAFETY: creates a key with a plain destructor.
    assert_eq!(
        unsafe { libc::pthread_key_create(&mut k, Some(destructor)) },
        0
    );
    *KEY.lock().unwrap() = Some(k);
    const WARM: usize = 200;
    const THREADS: usize = 2000;
    let mut at_warm = (0, 0);
    for t in 0..THREADS {
        std::thread::spawn(move || {
            churn(t);
            ON_DROP.with(|d| *d.borrow_mut() = Some(AllocatesOnDrop));
            // SAFETY: sets this thread's value of a live key.
            unsafe { libc::pthread_setspecific(key(), std::ptr::dangling::<libc::c_void>()) };
        })
        .join()
        .unwrap();
        let handed: Vec<Vec<u8>> = std::mem::take(&mut *HANDED.lock().unwrap());
        assert_eq!(
            handed.len(),
            1,
            "thread {t}: the last destructor round did not run"
        );
        assert!(handed[0].iter().all(|&b| b == ROUNDS as u8));
        drop(handed);
        if t + 1 == WARM {
            at_warm = live();
        }
    }
    let now = live();
    eprintln!("live slabs, SuperSlabs: {at_warm:?} after {WARM} threads, {now:?} after {THREADS}");
    assert!(
        now.0 <= at_warm.0 + 64,
        "live slabs grew from {} to {}",
        at_warm.0,
        now.0
    );
    assert!(
        now.1 <= at_warm.1 + 4,
        "SuperSlabs grew from {} to {}",
        at_warm.1,
        now.1
    );
}
