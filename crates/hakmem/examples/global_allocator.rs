//! hakmem as the Rust global allocator: every `Box`, `Vec` and `String` below comes from it.
//!
//! `cargo run --release -p hakmem --example global_allocator`
//! (`HAKMEM_STATS=1` in the environment prints the exit report.)

#[global_allocator]
static GLOBAL: hakmem::Hakmem = hakmem::Hakmem;

fn main() {
    let words: Vec<String> = (0..100_000).map(|i| format!("word-{i}")).collect();
    let total: usize = words.iter().map(String::len).sum();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let v: Vec<Box<[u8]>> = (0..10_000)
                    .map(|i| vec![t as u8; 16 + i % 1000].into_boxed_slice())
                    .collect();
                v.iter().map(|b| b.len()).sum::<usize>()
            })
        })
        .collect();
    let from_threads: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    println!(
        "{} words, {total} bytes; {from_threads} bytes from 4 threads",
        words.len()
    );
}
