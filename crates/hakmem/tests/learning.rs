//! The learning layer switched on in a real process: the knobs change under a multi-threaded,
//! contents-checked workload; the playbook file is written at the end and warm-starts the next
//! run; a corrupt playbook and a bad strategy name are warned about and ignored; a fixed strategy
//! is applied. The environment is read at the first allocation, so each case re-runs this test
//! binary as a child (`child` below) with its own environment.

use std::process::Command;
use std::time::{Duration, Instant};

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

const CHILD: &str = "HAKMEM_TEST_LEARNING_CHILD";

fn run_child(case: &str, env: &[(&str, &str)]) -> (String, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, case);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "child {case} failed\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("child ok"),
        "child {case} did not run\n{stdout}"
    );
    (stdout, stderr)
}

/// Fills `n` bytes at `p` with a pattern derived from `seed`.
fn fill(p: &mut [u8], seed: usize) {
    for (i, b) in p.iter_mut().enumerate().step_by(61) {
        *b = (seed.wrapping_mul(31) ^ i) as u8;
    }
}

fn verify(p: &[u8], seed: usize) {
    for (i, b) in p.iter().enumerate().step_by(61) {
        assert_eq!(
            *b,
            (seed.wrapping_mul(31) ^ i) as u8,
            "block contents changed"
        );
    }
}

/// Two threads allocate sizes from 16 B to 1 MiB (across the 64..256 KiB threshold the strategies
/// move), keep a window of live blocks, hand a quarter to the other thread to free, and check
/// every block before it is freed. Returns the distinct strategies seen running.
fn workload(secs: f64) -> Vec<hakmem::strategy::Strategy> {
    let (tx, rx) = std::sync::mpsc::channel::<(Vec<u8>, usize)>();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let other = std::thread::spawn(move || {
        let mut n = 0u64;
        for (v, seed) in rx {
            verify(&v, seed);
            n += 1;
        }
        n
    });
    let mut seen = Vec::new();
    let mut live: Vec<(Vec<u8>, usize)> = Vec::new();
    let mut x = 12345usize;
    let mut i = 0usize;
    while Instant::now() < end {
        for _ in 0..256 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let size = match x % 16 {
                0 => 64 * 1024 + x % (192 * 1024),
                1 => 300 * 1024 + x % (700 * 1024),
                _ => 16 + x % 2048,
            };
            let mut v = vec![0u8; size];
            fill(&mut v, i);
            live.push((v, i));
            i += 1;
            if live.len() > 400 {
                let k = x % live.len();
                let (v, seed) = live.swap_remove(k);
                if x.is_multiple_of(4) {
                    tx.send((v, seed)).unwrap();
                } else {
                    verify(&v, seed);
                }
            }
        }
        let s = hakmem::tuning::status().current;
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    for (v, seed) in live.drain(..) {
        verify(&v, seed);
    }
    drop(tx);
    assert!(other.join().unwrap() > 0);
    seen
}

/// The child side: what each case does inside its own process.
#[test]
fn child() {
    let Ok(case) = std::env::var(CHILD) else {
        return;
    };
    match case.as_str() {
        "learn" => {
            let seen = workload(2.0);
            let st = hakmem::tuning::status();
            println!(
                "epochs {} strategies {} trained {} phase {}",
                st.epochs,
                seen.len(),
                st.trained_epochs,
                st.phase
            );
            assert!(st.learning);
            assert!(st.epochs >= 20, "only {} epochs", st.epochs);
            assert!(seen.len() >= 3, "the knobs never moved: {seen:?}");
            hakmem::tuning::finish();
            hakmem::tuning::finish();
        }
        "warm" => {
            let st = hakmem::tuning::status();
            println!("warm trained {}", st.trained_epochs);
            assert!(st.learning);
            assert!(st.trained_epochs >= 20, "{}", st.trained_epochs);
            workload(0.3);
        }
        "fixed" => {
            let st = hakmem::tuning::status();
            assert!(!st.learning);
            assert_eq!(st.name, Some("lean"));
            assert_eq!(st.phase, "fixed");
            workload(0.3);
            assert_eq!(hakmem::tuning::status().current, st.current);
        }
        "default" => {
            let st = hakmem::tuning::status();
            assert!(!st.learning);
            assert_eq!(st.name, Some("default"));
        }
        other => panic!("unknown case {other}"),
    }
    println!("child ok");
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hakmem-learning-{}-{name}", std::process::id()))
}

#[test]
fn learning_moves_the_knobs_keeps_contents_and_warm_starts_from_the_playbook() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let book = temp("playbook");
    let _ = std::fs::remove_file(&book);
    let b = book.to_str().unwrap();
    for selector in ["elo", "ucb1"] {
        let (out, _) = run_child(
            "learn",
            &[("HAKMEM_LEARN", selector), ("HAKMEM_PLAYBOOK", b)],
        );
        eprintln!("{selector}: {out}");
        let bytes = std::fs::read(&book).expect("playbook written at exit");
        assert!(bytes.starts_with(b"HAKMEMPB"));
        let (out, err) = run_child(
            "warm",
            &[("HAKMEM_LEARN", selector), ("HAKMEM_PLAYBOOK", b)],
        );
        assert!(!err.contains("HAKMEM_PLAYBOOK"), "{err}");
        eprintln!("{selector}: {out}");
        std::fs::remove_file(&book).unwrap();
    }
}

#[test]
fn a_corrupt_playbook_is_ignored_with_a_warning() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let book = temp("corrupt");
    let mut junk = b"HAKMEMPB".to_vec();
    junk.extend((0..500u32).map(|i| (i * 7) as u8));
    std::fs::write(&book, &junk).unwrap();
    let (_, err) = run_child(
        "fixed",
        &[
            ("HAKMEM_STRATEGY", "lean"),
            ("HAKMEM_PLAYBOOK", book.to_str().unwrap()),
        ],
    );
    // Learning is off here: the playbook is not even read.
    assert!(!err.contains("cannot use"), "{err}");
    assert!(
        err.contains("HAKMEM_PLAYBOOK is ignored because learning is off"),
        "{err}"
    );
    let (out, err) = run_child(
        "learn",
        &[
            ("HAKMEM_LEARN", "elo"),
            ("HAKMEM_PLAYBOOK", book.to_str().unwrap()),
        ],
    );
    assert!(
        err.contains(&format!(
            "hakmem: cannot use HAKMEM_PLAYBOOK file {}: playbook of another version; starting cold",
            book.display()
        )),
        "{err}"
    );
    assert!(!err.contains("cannot write"), "{err}");
    // It learned from scratch, and replaced the corrupt file with its own playbook.
    assert!(out.contains("trained"), "{out}");
    assert!(std::fs::read(&book).unwrap().len() > 8);
    std::fs::remove_file(&book).unwrap();
}

#[test]
fn fixed_strategies_and_bad_names() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    run_child("fixed", &[("HAKMEM_STRATEGY", "lean")]);
    let (_, err) = run_child(
        "default",
        &[
            ("HAKMEM_STRATEGY", "no-such-strategy"),
            ("HAKMEM_LEARN", "maybe"),
        ],
    );
    assert!(
        err.contains("HAKMEM_STRATEGY=no-such-strategy is not understood"),
        "{err}"
    );
    assert!(
        err.contains("HAKMEM_LEARN=maybe is not understood"),
        "{err}"
    );
}
