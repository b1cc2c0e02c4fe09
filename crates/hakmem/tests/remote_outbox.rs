//! Frees into another thread's slabs go through the freeing thread's outbox, which sends them to the
//! slab's owner in batches. These tests check that what a consumer frees comes back to the producer
//! intact and reusable: after a batch fills, after a free into another slab, after the consumer's
//! `malloc_trim` (`release_cached_memory`), and after the consumer exits while idle.
mod common;
use common::*;
use std::collections::HashSet;
use std::sync::mpsc;

/// One size class for every test here (no other test in this binary uses it).
const SIZE: usize = 720;

fn alloc_filled(n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| {
            let p = unsafe { hakmem::malloc(SIZE) };
            assert!(!p.is_null());
            unsafe { fill(p, SIZE, seed_of(p, SIZE)) };
            p as usize
        })
        .collect()
}

fn verify_and_free(blocks: &[usize]) {
    for &p in blocks {
        let p = p as *mut u8;
        if let Some(off) = unsafe { check(p, SIZE, seed_of(p, SIZE)) } {
            panic!("block {p:?} corrupted at offset {off}");
        }
        unsafe { hakmem::free(p) };
    }
}

/// Allocates (filled) until one of `wanted` comes back, at most `limit` blocks; frees them all
/// again. Whether a block the consumer freed reached the producer.
fn producer_gets_back(wanted: &HashSet<usize>, limit: usize) -> bool {
    let mut got = Vec::new();
    let mut found = false;
    for _ in 0..limit {
        let b = alloc_filled(1)[0];
        got.push(b);
        if wanted.contains(&b) {
            found = true;
            break;
        }
    }
    verify_and_free(&got);
    found
}

enum Do {
    Free(Vec<usize>),
    Trim,
    Exit,
}

/// A consumer thread that frees (after checking) whatever it is sent, trims or exits when told,
/// and acknowledges each message.
fn consumer() -> (
    mpsc::Sender<Do>,
    mpsc::Receiver<()>,
    std::thread::JoinHandle<()>,
) {
    let (to_consumer, inbox) = mpsc::channel::<Do>();
    let (ack, acks) = mpsc::channel::<()>();
    let h = std::thread::spawn(move || {
        for m in inbox {
            match m {
                Do::Free(blocks) => verify_and_free(&blocks),
                Do::Trim => hakmem::release_cached_memory(),
                Do::Exit => {
                    ack.send(()).unwrap();
                    return;
                }
            }
            ack.send(()).unwrap();
        }
    });
    (to_consumer, acks, h)
}

/// Has the consumer free five new blocks (one slab's: they stay in its outbox), then sends it
/// `then`; returns the blocks.
fn consumer_holds_five_then(
    to: &mpsc::Sender<Do>,
    acks: &mpsc::Receiver<()>,
    then: Do,
) -> HashSet<usize> {
    let held = alloc_filled(5);
    let wanted = held.iter().copied().collect();
    to.send(Do::Free(held)).unwrap();
    acks.recv().unwrap();
    to.send(then).unwrap();
    acks.recv().unwrap();
    wanted
}

#[test]
fn a_consumer_s_frees_come_back_to_the_producer_intact() {
    let (to, acks, consumer) = consumer();

    // Many rounds of a producer handing its blocks, in order, to a consumer: the blocks are
    // checked by the consumer, and the producer's memory stays bounded because they come back.
    let before = hakmem::stats::snapshot().slab_bytes;
    for _ in 0..50 {
        let blocks = alloc_filled(20_000);
        to.send(Do::Free(blocks)).unwrap();
        acks.recv().unwrap();
    }
    let grown = hakmem::stats::snapshot().slab_bytes.saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "50 rounds of 20,000 x {SIZE} B freed by a consumer grew slab memory by {} MiB",
        grown >> 20
    );

    // A few blocks of one slab stay in the consumer's outbox until it sends them: its malloc_trim.
    let wanted = consumer_holds_five_then(&to, &acks, Do::Trim);
    assert!(
        producer_gets_back(&wanted, 100_000),
        "blocks a consumer freed and sent by malloc_trim never came back"
    );

    // Held again, then the consumer exits idle: its exit sends them.
    let wanted = consumer_holds_five_then(&to, &acks, Do::Exit);
    consumer.join().unwrap();
    assert!(
        producer_gets_back(&wanted, 100_000),
        "blocks a consumer freed before it exited never came back"
    );
}

#[test]
fn a_block_freed_twice_into_the_outbox_is_reported() {
    // The report aborts the process, so the double free runs in a child: this test binary
    // re-run with a filter and a marker variable.
    if std::env::var_os("HAKMEM_TEST_OUTBOX_CHILD").is_some() {
        let p = unsafe { hakmem::malloc(SIZE) } as usize;
        std::thread::spawn(move || unsafe {
            hakmem::free(p as *mut u8);
            hakmem::free(p as *mut u8);
        })
        .join()
        .unwrap();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_block_freed_twice_into_the_outbox_is_reported",
            "--nocapture",
        ])
        .env("HAKMEM_TEST_OUTBOX_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a double free from another thread was not caught"
    );
    assert!(
        stderr.contains("double free"),
        "no double-free report:\n{stderr}"
    );
}
