#!/usr/bin/env bash
# Builds libhakmem.so as programs load it (`--release`: fat LTO), then runs every test in the workspace,
# built with the release-nolto profile (the release profile's optimisation without fat LTO, so the
# ~20 test executables build in minutes on 2 cores), then the loom model checks. The LD_PRELOAD tests
# find libhakmem.so beside their profile directory, target/release-nolto/libhakmem.so: a link to
# target/release/libhakmem.so, made here. $HAKMEM_LIB, if set, replaces it (e.g.
# HAKMEM_LIB=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2 to check the tests themselves against another
# allocator).
# Soak knobs: HAKMEM_STRESS_OPS (default 10^7), HAKMEM_STRESS_THREADS (4), HAKMEM_CHURN_THREADS (10000);
# scripts/soak.sh SECONDS runs the stress test for a duration and prints RSS samples.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in gcc g++ python3 sort nm; do
    command -v "$tool" >/dev/null || { echo "scripts/test.sh: '$tool' is required (gcc, g++, python3, coreutils, binutils)" >&2; exit 1; }
done

start=$(date +%s)
target="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
profile=release-nolto
cargo build --release -p hakmem-preload
lib="$target/release/libhakmem.so"
if [ ! -f "$lib" ]; then
    echo "scripts/test.sh: $lib was not built" >&2
    exit 1
fi
mkdir -p "$target/$profile"
ln -sfn "$lib" "$target/$profile/libhakmem.so"
# The heavy tests (stress, 1 GiB memory return, 10,000 threads, real programs) are sized for 2 cores;
# two test threads per binary keeps them from starving each other.
cargo test --profile "$profile" --workspace --no-fail-fast -- --test-threads="${HAKMEM_TEST_THREADS:-2}"
# README's main command must resolve to the benchmark runner (hakmem-bench has several binaries).
cargo run --profile "$profile" -q -p hakmem-bench -- --help >/dev/null
# loom model checks of the remote-free list and slab adoption (crates/hakmem/src/remote.rs). Built with
# --cfg loom, so in a target dir of their own: the main build above is not invalidated.
loom_start=$(date +%s)
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" CARGO_TARGET_DIR="$target/loom" \
    cargo test --profile "$profile" -p hakmem --lib loom
echo "scripts/test.sh: loom checks took $(( $(date +%s) - loom_start ))s"
echo "scripts/test.sh: all tests passed in $(( $(date +%s) - start ))s"
