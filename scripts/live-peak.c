// The peak of a program's live heap bytes, to set against its peak RSS: an LD_PRELOAD shim that
// counts malloc_usable_size of every block malloc, calloc, realloc and memalign hand out and free
// takes back, through whichever allocator is preloaded after it, and prints the peak at exit.
//
//   gcc -O2 -shared -fPIC -o /tmp/live-peak.so scripts/live-peak.c -ldl
//   LD_PRELOAD="/tmp/live-peak.so target/release/libhakmem.so" /usr/bin/time -f %M PROGRAM
//
// Only those five functions are counted (not posix_memalign, aligned_alloc or C++'s operator new
// where the allocator serves it itself). calloc calls made by dlsym while the shim looks up the
// allocator's functions come from a small static buffer.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>

static void *(*next_malloc)(size_t);
static void (*next_free)(void *);
static void *(*next_realloc)(void *, size_t);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_memalign)(size_t, size_t);
static size_t (*next_usable)(void *);
static _Atomic long live, peak;
static char boot[8192];
static size_t boot_used;
static int looking_up;

static void look_up(void) {
    if (next_malloc)
        return;
    looking_up = 1;
    next_calloc = dlsym(RTLD_NEXT, "calloc");
    next_malloc = dlsym(RTLD_NEXT, "malloc");
    next_free = dlsym(RTLD_NEXT, "free");
    next_realloc = dlsym(RTLD_NEXT, "realloc");
    next_memalign = dlsym(RTLD_NEXT, "memalign");
    next_usable = dlsym(RTLD_NEXT, "malloc_usable_size");
    looking_up = 0;
}

static void count(long n) {
    long v = atomic_fetch_add(&live, n) + n;
    long p = atomic_load(&peak);
    while (v > p && !atomic_compare_exchange_weak(&peak, &p, v)) {
    }
}

static int is_boot(void *p) { return (char *)p >= boot && (char *)p < boot + sizeof boot; }

void *malloc(size_t n) {
    look_up();
    void *p = next_malloc(n);
    if (p)
        count((long)next_usable(p));
    return p;
}

void *calloc(size_t k, size_t n) {
    if (looking_up) {
        size_t len = (k * n + 15) & ~(size_t)15;
        if (boot_used + len > sizeof boot)
            return NULL;
        void *p = boot + boot_used;
        boot_used += len;
        return p;
    }
    look_up();
    void *p = next_calloc(k, n);
    if (p)
        count((long)next_usable(p));
    return p;
}

void *memalign(size_t align, size_t n) {
    look_up();
    void *p = next_memalign(align, n);
    if (p)
        count((long)next_usable(p));
    return p;
}

void *realloc(void *q, size_t n) {
    look_up();
    long old = q ? (long)next_usable(q) : 0;
    void *p = next_realloc(q, n);
    if (p)
        count((long)next_usable(p) - old);
    else if (n == 0 && q)
        count(-old);
    return p;
}

void free(void *p) {
    if (!p || is_boot(p))
        return;
    look_up();
    count(-(long)next_usable(p));
    next_free(p);
}

__attribute__((destructor)) static void report(void) {
    fprintf(stderr, "live-peak: %.1f MiB of live heap bytes at most\n", peak / 1048576.0);
}
