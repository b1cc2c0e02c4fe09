//! hakmem as the global allocator, with `pthread_atfork` handlers that allocate and free: one set
//! registered from a constructor, before the program's first allocation sets hakmem up (so its
//! prepare handler runs after hakmem's, its parent and child handlers before hakmem's), one set
//! registered afterwards. Every fork must complete, and each child allocates from its main thread
//! and from a new thread. A watchdog aborts the test if a fork deadlocks.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

/// One set of handlers: the blocks its last handler kept, and how often each handler ran.
struct Set {
    held: Mutex<Vec<Vec<u8>>>,
    runs: [AtomicUsize; 3],
}

const PREPARE: usize = 0;
const PARENT: usize = 1;
const CHILD: usize = 2;

static EARLY: Set = Set {
    held: Mutex::new(Vec::new()),
    runs: [const { AtomicUsize::new(0) }; 3],
};
static LATE: Set = Set {
    held: Mutex::new(Vec::new()),
    runs: [const { AtomicUsize::new(0) }; 3],
};

/// A block of `n` bytes with a pattern from its address (every byte up to 4 KiB, then one per
/// 64 bytes, one per 64 KiB above 1 MiB).
fn block(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    let seed = v.as_ptr() as usize;
    for i in (0..n).step_by(step(n)) {
        v[i] = (seed >> 4).wrapping_add(i >> 3) as u8;
    }
    v
}

fn step(n: usize) -> usize {
    match n {
        0..=4096 => 1,
        4097..=0x10_0000 => 64,
        _ => 64 << 10,
    }
}

fn intact(v: &[u8]) -> bool {
    let seed = v.as_ptr() as usize;
    (0..v.len())
        .step_by(step(v.len()))
        .all(|i| v[i] == (seed >> 4).wrapping_add(i >> 3) as u8)
}

/// What each handler does: frees what the set's previous handler kept (checked), then allocates
/// small blocks of several classes (enough that the thread cache refills), mid blocks, 1 MiB and
/// 64 MiB, keeping about half.
fn exercise(set: &Set, which: usize) {
    let mut held = set.held.lock().unwrap_or_else(|e| e.into_inner());
    for v in held.drain(..) {
        if !intact(&v) {
            die("a block kept by the previous fork handler is corrupted");
        }
    }
    let sizes: [(usize, usize); 12] = [
        (24, 150),
        (40, 150),
        (72, 150),
        (136, 150),
        (520, 150),
        (2000, 150),
        (7000, 150),
        (20_000, 4),
        (70_000, 4),
        (200_000, 4),
        (1 << 20, 1),
        (64 << 20, 1),
    ];
    for (n, count) in sizes {
        for i in 0..count {
            let v = block(n - i % 8);
            if !intact(&v) {
                die("a fresh block in a fork handler is corrupted");
            }
            if i % 2 == 0 {
                held.push(v);
            }
        }
    }
    set.runs[which].fetch_add(1, Ordering::SeqCst);
}

/// Reports on stderr without allocating and exits: a fork handler or a child must not unwind.
fn die(msg: &str) -> ! {
    // SAFETY: write(2) and _exit(2) with valid arguments.
    unsafe {
        libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len());
        libc::write(2, b"\n".as_ptr() as *const libc::c_void, 1);
        libc::_exit(3)
    }
}

extern "C" fn early_prepare() {
    exercise(&EARLY, PREPARE)
}
extern "C" fn early_parent() {
    exercise(&EARLY, PARENT)
}
extern "C" fn early_child() {
    exercise(&EARLY, CHILD)
}
extern "C" fn late_prepare() {
    exercise(&LATE, PREPARE)
}
extern "C" fn late_parent() {
    exercise(&LATE, PARENT)
}
extern "C" fn late_child() {
    exercise(&LATE, CHILD)
}

/// Registers the early set when the binary is loaded, before Rust's runtime allocates anything.
extern "C" fn register_early() {
    // SAFETY: registers plain functions; pthread_atfork does not call the allocator here.
    let r =
        unsafe { libc::pthread_atfork(Some(early_prepare), Some(early_parent), Some(early_child)) };
    assert_eq!(r, 0);
}

#[used]
#[link_section = ".init_array"]
static REGISTER_EARLY: extern "C" fn() = register_early;

fn runs() -> [usize; 6] {
    let r = |s: &Set, i: usize| s.runs[i].load(Ordering::SeqCst);
    [
        r(&EARLY, PREPARE),
        r(&EARLY, PARENT),
        r(&EARLY, CHILD),
        r(&LATE, PREPARE),
        r(&LATE, PARENT),
        r(&LATE, CHILD),
    ]
}

/// The child: its handlers ran, and its heap works from its main thread and from a new one.
fn child(before: [usize; 6]) -> ! {
    let now = runs();
    if now[0] != before[0] + 1 || now[3] != before[3] + 1 {
        die("child: a prepare handler did not run");
    }
    if now[2] != before[2] + 1 || now[5] != before[5] + 1 || now[1] != before[1] {
        die("child: wrong child/parent handler runs");
    }
    let work = || {
        let mut live: Vec<Vec<u8>> = Vec::new();
        for i in 0..5_000usize {
            let n = [16, 100, 1000, 9000, 100_000][i % 5] + i % 13;
            live.push(block(n));
            if live.len() > 200 {
                let v = live.swap_remove(i % 200);
                if !intact(&v) {
                    die("child: block corrupted");
                }
            }
        }
        for n in [1 << 20, 64 << 20] {
            if !intact(&block(n)) {
                die("child: large block corrupted");
            }
        }
        live.iter().all(|v| intact(v))
    };
    let t = std::thread::spawn(work);
    let ok = work() && t.join().unwrap_or(false);
    // SAFETY: ends the child without running the parent's exit handlers.
    unsafe { libc::_exit(if ok { 0 } else { 4 }) }
}

#[test]
fn fork_with_allocating_handlers() {
    // SAFETY: registers plain functions.
    let r =
        unsafe { libc::pthread_atfork(Some(late_prepare), Some(late_parent), Some(late_child)) };
    assert_eq!(r, 0);
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while !done.load(Ordering::SeqCst) {
                if start.elapsed() > Duration::from_secs(120) {
                    die("fork_with_allocating_handlers: still running after 120 s (a fork deadlocked?)");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // Another thread allocates and frees while the main thread forks.
    let busy = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut n = 0usize;
            while !done.load(Ordering::SeqCst) {
                let v: Vec<Vec<u8>> = (0..100).map(|i| block(16 + (n + i) % 3000)).collect();
                assert!(v.iter().all(|b| intact(b)));
                n += 1;
            }
        })
    };
    for k in 0..8 {
        let before = runs();
        // SAFETY: the child only allocates, starts a thread and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            child(before);
        }
        let now = runs();
        assert_eq!(now[1], before[1] + 1, "fork {k}: early parent handler runs");
        assert_eq!(now[4], before[4] + 1, "fork {k}: late parent handler runs");
        let mut status = 0;
        // SAFETY: waits for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "fork {k}: child status {status:#x}"
        );
    }
    done.store(true, Ordering::SeqCst);
    busy.join().unwrap();
    watchdog.join().unwrap();
    EARLY.held.lock().unwrap().clear();
    LATE.held.lock().unwrap().clear();
}
