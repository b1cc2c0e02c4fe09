#![no_main]
//! libFuzzer target: the bytes are a program of allocator calls checked against the model.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hakmem_fuzz::run(data);
});
