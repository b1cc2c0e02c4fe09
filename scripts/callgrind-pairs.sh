#!/usr/bin/env bash
# Instructions per malloc+free pair (same thread, 16..1024 B) under valgrind --tool=callgrind:
#   1. Rust GlobalAlloc: hakmem::Hakmem, glibc (System), the mimalloc crate, tikv-jemallocator;
#   2. C programs under LD_PRELOAD: libhakmem.so, Debian's libmimalloc and libjemalloc if installed,
#      and any in EXTRA_LIBS; "pair" is a malloc then a free, "batch" 64 mallocs then 64 frees
#      (per malloc+free), "new" a C++ new char[] then delete[] (the library's operator new if it
#      has one, else the C++ runtime's, which calls malloc).
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
/* pairs SIZE N [batch]: N malloc+free pairs, one after the other, or (batch) N/64 rounds of 64
   mallocs then 64 frees. */
int main(int argc, char **argv) {
    size_t size = strtoul(argv[1], 0, 10); long n = atol(argv[2]);
    void *w = malloc(size); free(w);
    if (argc < 4) {
        for (long i = 0; i < n; i++) { void *p = malloc(size); __asm__ volatile("" :: "r"(p) : "memory"); free(p); }
    } else {
        void *a[64];
        for (int k = 0; k < 64; k++) a[k] = malloc(size);
        for (int k = 0; k < 64; k++) free(a[k]);
        for (long i = 0; i < n / 64; i++) {
            for (int k = 0; k < 64; k++) { a[k] = malloc(size); __asm__ volatile("" :: "r"(a[k]) : "memory"); }
            for (int k = 0; k < 64; k++) free(a[k]);
        }
    }
    return 0;
}
C
gcc -O2 "$tmp/pairs.c" -o "$tmp/pairs"
cat > "$tmp/pairs_new.cc" <<'CC'
#include <cstdlib>
/* pairs_new SIZE N: N new char[SIZE] + delete[] pairs, one after the other. */
int main(int argc, char **argv) {
    size_t size = std::strtoul(argv[1], 0, 10); long n = std::atol(argv[2]);
    for (long i = 0; i < n; i++) { char *p = new char[size]; __asm__ volatile("" :: "r"(p) : "memory"); delete[] p; }
    return 0;
}
CC
g++ -O2 "$tmp/pairs_new.cc" -o "$tmp/pairs_new"
# Other libraries to compare (e.g. a mimalloc 3 or snmalloc build): EXTRA_LIBS="/path/a.so /path/b.so".
for lib in glibc "$rel/libhakmem.so" /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ${EXTRA_LIBS:-}; do
    if [ "$lib" != glibc ] && [ ! -f "$lib" ]; then continue; fi
    pre=""; [ "$lib" != glibc ] && pre="$lib"
    for mode in pair batch new; do
        row=$(printf '%-26s' "C $(basename "$lib") $mode")
        for size in 16 64 256 1024; do
            if [ $mode = pair ]; then
                row+=$(printf ' %8s' "$(per_pair "$size" env LD_PRELOAD="$pre" "$tmp/pairs")")
            elif [ $mode = new ]; then
                row+=$(printf ' %8s' "$(per_pair "$size" env LD_PRELOAD="$pre" "$tmp/pairs_new")")
            else
                a=$(count env LD_PRELOAD="$pre" "$tmp/pairs" "$size" 0 batch)
                b=$(count env LD_PRELOAD="$pre" "$tmp/pairs" "$size" "$N" batch)
                row+=$(printf ' %8s' $(( (b - a) / N )))
            fi
        done
        echo "$row"
    done
done
