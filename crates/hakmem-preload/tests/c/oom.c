/* mmap failure: limit the address space (RLIMIT_AS = current VmSize + 256 MiB), allocate until NULL
 * (must be NULL with errno ENOMEM, never a crash), free everything, allocate again. Several size
 * classes, each round followed by a check that the allocator still works. */
#include "common.h"
#include <sys/mman.h>
#include <sys/resource.h>

#define MAXP (6u << 20)
static void **ptrs;
static size_t *sizes;

static long vm_size_kib(void) {
    char buf[256];
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long pages = -1;
    if (fgets(buf, sizeof buf, f)) pages = strtol(buf, NULL, 10);
    fclose(f);
    return pages * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Allocate blocks of size lo..hi until malloc returns NULL; returns the count. */
static size_t fill_until_null(size_t lo, size_t hi, int use_calloc, int *err_out) {
    size_t n = 0;
    uint64_t rs = 12345 + lo;
    for (;;) {
        if (n >= MAXP) DIE("more than %u blocks of %zu..%zu allocated under the limit", MAXP, lo, hi);
        size_t sz = lo + (hi > lo ? (size_t)(xrand(&rs) % (hi - lo + 1)) : 0);
        errno = 0;
        void *p = use_calloc ? calloc(1, sz) : malloc(sz);
        if (!p) {
            *err_out = errno;
            return n;
        }
        unsigned char *b = p;
        b[0] = (unsigned char)n;
        b[sz - 1] = (unsigned char)(n >> 3);
        if (sz >= 8192) b[sz / 2] = 0x5a; /* touch a middle page of large blocks */
        ptrs[n] = p;
        sizes[n] = sz;
        n++;
    }
}

static void free_all(size_t n, const char *what) {
    for (size_t i = 0; i < n; i++) {
        unsigned char *b = ptrs[i];
        size_t sz = sizes[i];
        if (b[0] != (unsigned char)i || b[sz - 1] != (unsigned char)(i >> 3))
            DIE("%s: block %zu (size %zu) corrupted", what, i, sz);
        free(b);
    }
}

int main(void) {
    /* everything we need later is mapped before the limit */
    ptrs = mmap(NULL, MAXP * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    sizes = mmap(NULL, MAXP * sizeof(size_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ptrs == MAP_FAILED || sizes == MAP_FAILED) DIE("mmap");
    void *warm = malloc(100); /* initialise the allocator and stdio before the limit */
    free(warm);
    fprintf(stderr, "oom: start\n");
    long vm = vm_size_kib();
    if (vm <= 0) DIE("statm");
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = (rlim_t)vm * 1024 + (256ull << 20);
    if (setrlimit(RLIMIT_AS, &rl) != 0) DIE("setrlimit");
    fprintf(stderr, "oom: VmSize %ld KiB, RLIMIT_AS %llu MiB\n", vm, (unsigned long long)(rl.rlim_cur >> 20));

    struct { size_t lo, hi; int calloc_; const char *name; } rounds[] = {
        {1 << 20, 1 << 20, 0, "1MiB"},     {32, 1024, 0, "small"},    {8 << 20, 40 << 20, 0, "huge"},
        {2000, 60000, 1, "mid-calloc"},   {64, 64, 0, "64B"},        {100000, 900000, 0, "large"},
        {1 << 20, 1 << 20, 0, "1MiB-again"},
    };
    size_t first_1mib = 0;
    for (size_t r = 0; r < sizeof rounds / sizeof rounds[0]; r++) {
        int err = 0;
        size_t n = fill_until_null(rounds[r].lo, rounds[r].hi, rounds[r].calloc_, &err);
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++) bytes += sizes[i];
        fprintf(stderr, "oom: round %s: %zu blocks, %zu MiB before NULL (errno %d)\n", rounds[r].name, n,
                bytes >> 20, err);
        CHECK_STRICT(err == ENOMEM, "round %s: malloc returned NULL with errno %d, expected ENOMEM", rounds[r].name, err);
        /* some real memory must have been available under the limit */
        CHECK(bytes >= (64u << 20), "round %s: only %zu MiB allocatable in a 256 MiB headroom", rounds[r].name, bytes >> 20);
        /* a request far beyond the limit fails cleanly too */
        errno = 0;
        void *big = malloc((size_t)1 << 30);
        CHECK(big == NULL, "malloc(1 GiB) succeeded under the limit");
        CHECK_STRICT(big != NULL || errno == ENOMEM, "malloc(1 GiB) errno %d", errno);
        free(big);
        free_all(n, rounds[r].name);
        /* keeps working: small and large allocations succeed again */
        for (int k = 0; k < 1000; k++) {
            void *p = malloc((size_t)(k % 500) + 1);
            CHECK(p != NULL, "after round %s: malloc(%d) failed", rounds[r].name, k % 500 + 1);
            if (!p) break;
            memset(p, 1, (size_t)(k % 500) + 1);
            free(p);
        }
        void *p = malloc(32u << 20);
        CHECK(p != NULL, "after round %s: malloc(32 MiB) failed (freed memory not reusable?)", rounds[r].name);
        if (p) {
            memset(p, 3, 32u << 20);
            free(p);
        }
        if (r == 0) first_1mib = n;
        if (r == sizeof rounds / sizeof rounds[0] - 1)
            CHECK(n * 2 >= first_1mib, "1 MiB blocks: %zu allocatable at the end vs %zu at the start (address space leaked)",
                  n, first_1mib);
    }
    printf("oom: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
}
