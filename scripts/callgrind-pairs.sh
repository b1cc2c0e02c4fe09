#!/usr/bin/env bash
# Instructions per malloc+free pair (same thread, 16..1024 B) under valgrind --tool=callgrind:
#   1. Rust GlobalAlloc: hakmem::Hakmem, glibc (System), the mimalloc crate, tikv-jemallocator;
#   2. C programs under LD_PRELOAD: libhakmem.so, Debian's libmimalloc and libjemalloc if installed.
# Each figure is (instructions with N pairs - instructions with 0 pairs) / N, so start-up is excluded.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200000}
rel="${CARGO_TARGET_DIR:-target}/release"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
cargo build --release -q -p hakmem-bench --bin pairs
cargo build --release -q -p hakmem-preload
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

count() { # command... -> total instructions of the last process
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$tmp/cg.%p" "$@" 2>&1 |
        grep -oE 'Collected : [0-9]+' | tail -1 | grep -oE '[0-9]+'
}
per_pair() { # command-prefix... (SIZE and N are appended)
    local size=$1; shift
    local a b
    a=$(count "$@" "$size" 0)
    b=$(count "$@" "$size" "$N")
    echo $(( (b - a) / N ))
}

printf '%-26s %8s %8s %8s %8s\n' "allocator (instr/pair)" 16 64 256 1024
for alloc in hakmem glibc mimalloc jemalloc; do
    row=$(printf '%-26s' "rust $alloc")
    for size in 16 64 256 1024; do
        row+=$(printf ' %8s' "$(per_pair "$size" "$rel/pairs" "$alloc")")
    done
    echo "$row"
done

cat > "$tmp/pairs.c" <<'C'
#include <stdlib.h>
int main(int argc, char **argv) {
    size_t size = strtoul(argv[1], 0, 10); long n = atol(argv[2]);
    void *w = malloc(size); free(w);
    for (long i = 0; i < n; i++) { void *p = malloc(size); __asm__ volatile("" :: "r"(p) : "memory"); free(p); }
    return 0;
}
C
gcc -O2 "$tmp/pairs.c" -o "$tmp/pairs"
for lib in glibc "$rel/libhakmem.so" /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2; do
    if [ "$lib" != glibc ] && [ ! -f "$lib" ]; then continue; fi
    pre=""; [ "$lib" != glibc ] && pre="$lib"
    row=$(printf '%-26s' "C $(basename "$lib")")
    for size in 16 64 256 1024; do
        row+=$(printf ' %8s' "$(per_pair "$size" env LD_PRELOAD="$pre" "$tmp/pairs")")
    done
    echo "$row"
done
