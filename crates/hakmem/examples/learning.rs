//! Learning with a playbook: run with learning on and a playbook file, and the next run starts from
//! what this one learned.
//!
//! `HAKMEM_LEARN=elo HAKMEM_PLAYBOOK=/tmp/hakmem.playbook cargo run --release -p hakmem --example learning`
//! (run it twice: the second run reports more trained epochs).

#[global_allocator]
static GLOBAL: hakmem::Hakmem = hakmem::Hakmem;

fn main() {
    // A workload whose best strategy depends on how much memory it may keep: bursts of large
    // blocks with quiet stretches between them.
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_millis(600) {
        let burst: Vec<Vec<u8>> = (0..32).map(|i| vec![i as u8; 512 << 10]).collect();
        drop(burst);
        let small: Vec<Box<u64>> = (0..20_000).map(Box::new).collect();
        drop(small);
    }
    let s = hakmem::tuning::status();
    println!(
        "learning: {}, phase {}, {} epochs here, {} trained in all; running {}",
        s.learning,
        s.phase,
        s.epochs,
        s.trained_epochs,
        s.name.unwrap_or("a learned strategy")
    );
    // Saves the playbook now (it is also saved at exit).
    hakmem::tuning::finish();
}
