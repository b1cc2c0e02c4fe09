#!/usr/bin/env bash
# Builds libhakmem.so (cargo does not build a cdylib for integration tests), then runs every test in
# the workspace in release mode. The LD_PRELOAD tests find the library at target/release/libhakmem.so,
# or at $HAKMEM_LIB if set (e.g. HAKMEM_LIB=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2 to check the
# tests themselves against another allocator).
# Soak knobs: HAKMEM_STRESS_OPS (default 10^7), HAKMEM_STRESS_THREADS (4), HAKMEM_CHURN_THREADS (10000);
# scripts/soak.sh SECONDS runs the stress test for a duration and prints RSS samples.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in gcc python3 sort nm; do
    command -v "$tool" >/dev/null || { echo "scripts/test.sh: '$tool' is required (gcc, python3, coreutils, binutils)" >&2; exit 1; }
done

start=$(date +%s)
cargo build --release -p hakmem-preload
lib="${CARGO_TARGET_DIR:-target}/release/libhakmem.so"
if [ -z "${HAKMEM_LIB:-}" ] && [ ! -f "$lib" ]; then
    echo "scripts/test.sh: $lib was not built" >&2
    exit 1
fi
# The heavy tests (stress, 1 GiB memory return, 10,000 threads, real programs) are sized for 2 cores;
# two test threads per binary keeps them from starving each other.
cargo test --release --workspace --no-fail-fast -- --test-threads="${HAKMEM_TEST_THREADS:-2}"
# README's main command must resolve to the benchmark runner (hakmem-bench has several binaries).
cargo run --release -q -p hakmem-bench -- --help >/dev/null
# loom model checks of the remote-free list and slab adoption (crates/hakmem/src/remote.rs). Built with
# --cfg loom, so in a target dir of their own: the main build above is not invalidated.
loom_start=$(date +%s)
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" CARGO_TARGET_DIR=target/loom \
    cargo test --release -p hakmem --lib loom
echo "scripts/test.sh: loom checks took $(( $(date +%s) - loom_start ))s"
echo "scripts/test.sh: all tests passed in $(( $(date +%s) - start ))s"
