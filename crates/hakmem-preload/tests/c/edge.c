/* POSIX / glibc edge cases of the malloc family, run under LD_PRELOAD=<lib>.
 * Prints "edge: N checks, F failures" and "edge-info: key=value ..." lines; exits 0 iff no failure. */
#include "common.h"
#include <malloc.h>
#include <stdint.h>
#pragma GCC diagnostic ignored "-Wuse-after-free"

typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);
typedef uint32_t (*abi_fn)(void);
typedef void *(*alloc_at_fn)(size_t, uintptr_t);
typedef void (*free_at_fn)(void *, uintptr_t);

/* volatile so gcc cannot fold or warn about the deliberately absurd sizes */
static volatile size_t v_huge = (size_t)PTRDIFF_MAX + 1;
static volatile size_t v_max = SIZE_MAX;
static volatile size_t v_half = ((size_t)1 << 33) + 1;

static inline unsigned char bpat(size_t seed, size_t k) { return (unsigned char)(seed * 31 + k * 7 + (k >> 8)); }

static void fill_verify_free(void *p, size_t n, const char *what, size_t align) {
    if (!p) return;
    uint64_t s = addr_seed(p, n);
    fill_block(p, n, s);
    size_t bad = check_block(p, n, s);
    CHECK(bad == (size_t)-1, "%s align=%zu size=%zu: content corrupted at offset %zu", what, align, n, bad);
    free(p);
}

static void test_malloc0(void) {
    enum { N = 64 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(0);
        CHECK(p[i] != NULL, "malloc(0) #%d returned NULL", i);
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            CHECK(p[i] == NULL || p[i] != p[j], "malloc(0) returned the same pointer twice (%p)", p[i]);
    for (int i = 0; i < N; i++) free(p[i]);
    void *q = calloc(0, 0);
    CHECK(q != NULL, "calloc(0,0) returned NULL");
    free(q);
    q = calloc(0, 16);
    CHECK(q != NULL, "calloc(0,16) returned NULL");
    free(q);
}

static void test_overflow(void) {
    void *p;
    errno = 0;
    p = calloc(v_max / 2 + 2, 2);
    { int e_ = errno; CHECK(p == NULL, "calloc(SIZE_MAX/2+2, 2): p=%p errno=%d", p, e_); CHECK_STRICT(p != NULL || e_ == ENOMEM, "calloc(SIZE_MAX/2+2, 2): p=%p errno=%d", p, e_); }
    errno = 0;
    p = calloc(v_half, v_half);
    { int e_ = errno; CHECK(p == NULL, "calloc(2^33+1, 2^33+1): p=%p errno=%d", p, e_); CHECK_STRICT(p != NULL || e_ == ENOMEM, "calloc(2^33+1, 2^33+1): p=%p errno=%d", p, e_); }
    errno = 0;
    p = calloc(v_max, v_max);
    { int e_ = errno; CHECK(p == NULL, "calloc(SIZE_MAX, SIZE_MAX): p=%p errno=%d", p, e_); CHECK_STRICT(p != NULL || e_ == ENOMEM, "calloc(SIZE_MAX, SIZE_MAX): p=%p errno=%d", p, e_); }
    errno = 0;
    p = malloc(v_huge);
    { int e_ = errno; CHECK(p == NULL, "malloc(PTRDIFF_MAX+1): p=%p errno=%d", p, e_); CHECK_STRICT(p != NULL || e_ == ENOMEM, "malloc(PTRDIFF_MAX+1): p=%p errno=%d", p, e_); }
    errno = 0;
    p = malloc(v_max);
    { int e_ = errno; CHECK(p == NULL, "malloc(SIZE_MAX): p=%p errno=%d", p, e_); CHECK_STRICT(p != NULL || e_ == ENOMEM, "malloc(SIZE_MAX): p=%p errno=%d", p, e_); }
    errno = 0;
    p = malloc(v_max - 4095);
    { int e_ = errno; CHECK(p == NULL, "malloc(SIZE_MAX-4095): p=%p errno=%d", p, e_); CHECK_STRICT(p != NULL || e_ == ENOMEM, "malloc(SIZE_MAX-4095): p=%p errno=%d", p, e_); }
    errno = 0;
    p = realloc(NULL, v_huge);
    { int e_ = errno; CHECK(p == NULL, "realloc(NULL, PTRDIFF_MAX+1): p=%p errno=%d", p, e_); CHECK_STRICT(p != NULL || e_ == ENOMEM, "realloc(NULL, PTRDIFF_MAX+1): p=%p errno=%d", p, e_); }

    /* failing realloc leaves the original block untouched */
    char *q = malloc(100);
    CHECK(q != NULL, "malloc(100)");
    if (q) {
        memset(q, 0x5a, 100);
        errno = 0;
        p = realloc(q, v_huge);
        { int e_ = errno; CHECK(p == NULL, "realloc(p, PTRDIFF_MAX+1): p=%p errno=%d", p, e_); CHECK_STRICT(p != NULL || e_ == ENOMEM, "realloc(p, PTRDIFF_MAX+1): p=%p errno=%d", p, e_); }
        int ok = 1;
        for (int i = 0; i < 100; i++) ok &= q[i] == 0x5a;
        CHECK(ok, "failed realloc changed the original block");
        free(q);
    }
    q = malloc(3 << 20);
    CHECK(q != NULL, "malloc(3 MiB)");
    if (q) {
        memset(q, 0x33, 3 << 20);
        errno = 0;
        p = realloc(q, v_max);
        { int e_ = errno; CHECK(p == NULL, "realloc(large, SIZE_MAX): p=%p errno=%d", p, e_); CHECK_STRICT(p != NULL || e_ == ENOMEM, "realloc(large, SIZE_MAX): p=%p errno=%d", p, e_); }
        CHECK(q[0] == 0x33 && q[(3 << 20) - 1] == 0x33, "failed realloc changed the large block");
        free(q);
    }
    /* reallocarray */
    errno = 0;
    p = reallocarray(NULL, v_max / 2 + 2, 2);
    { int e_ = errno; CHECK(p == NULL, "reallocarray(NULL, SIZE_MAX/2+2, 2): p=%p errno=%d", p, e_); CHECK_STRICT(p != NULL || e_ == ENOMEM, "reallocarray(NULL, SIZE_MAX/2+2, 2): p=%p errno=%d", p, e_); }
    q = malloc(64);
    if (q) {
        memset(q, 7, 64);
        errno = 0;
        p = reallocarray(q, v_half, v_half);
        { int e_ = errno; CHECK(p == NULL, "reallocarray(p, 2^33+1, 2^33+1): p=%p errno=%d", p, e_); CHECK_STRICT(p != NULL || e_ == ENOMEM, "reallocarray(p, 2^33+1, 2^33+1): p=%p errno=%d", p, e_); }
        CHECK(q[63] == 7, "failed reallocarray changed the block");
        p = reallocarray(q, 100, 10);
        CHECK(p != NULL, "reallocarray(p, 100, 10) failed");
        if (p) {
            int ok = 1;
            for (int i = 0; i < 64; i++) ok &= ((char *)p)[i] == 7;
            CHECK(ok, "reallocarray lost contents");
            memset(p, 1, 1000);
            free(p);
        } else {
            free(q);
        }
    }
}

static void test_posix_memalign_bad(void) {
    size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 40, 48, 96, 4097, 3 * 4096, (size_t)1 << 63 | 8};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *sentinel = (void *)0x1234;
        void *p = sentinel;
        int rc = posix_memalign(&p, bad[i], 64);
        CHECK(rc == EINVAL, "posix_memalign(align=%zu) returned %d, expected EINVAL", bad[i], rc);
        CHECK(p == sentinel, "posix_memalign(align=%zu) modified *memptr on error (%p)", bad[i], p);
    }
    /* huge size with a good alignment: ENOMEM, *memptr untouched */
    void *sentinel = (void *)0x5678;
    void *p = sentinel;
    int rc = posix_memalign(&p, 64, v_huge);
    CHECK(rc == ENOMEM, "posix_memalign(64, PTRDIFF_MAX+1) returned %d, expected ENOMEM", rc);
    CHECK(p == sentinel, "posix_memalign(64, huge) modified *memptr on error");
    /* aligned_alloc: non power of two alignment */
    size_t badal[] = {0, 3, 24, 48, 100, 4095};
    for (size_t i = 0; i < sizeof badal / sizeof badal[0]; i++) {
        errno = 0;
        void *q = aligned_alloc(badal[i], 128);
        CHECK_STRICT(q == NULL, "aligned_alloc(align=%zu) returned %p, expected NULL", badal[i], q);
        CHECK_STRICT(q != NULL || errno == EINVAL, "aligned_alloc(align=%zu) errno=%d, expected EINVAL", badal[i], errno);
        if (q) free(q);
    }
    errno = 0;
    void *q = memalign(64, v_huge);
    { int e_ = errno; CHECK(q == NULL, "memalign(64, huge): p=%p errno=%d", q, e_); CHECK_STRICT(q != NULL || e_ == ENOMEM, "memalign(64, huge): p=%p errno=%d", q, e_); }
}

/* Every aligned entry point with sizes next to SIZE_MAX (where adding the few bytes safe mode puts
 * after a block would wrap) and past PTRDIFF_MAX: NULL with ENOMEM (posix_memalign: ENOMEM,
 * *memptr untouched), never a block. Run in both modes by c_abi.rs. */
static void test_aligned_huge(void) {
    size_t sizes[] = {v_max, v_max - 1, v_max - 7, v_max - 11, v_max - 12, v_max - 15, v_max - 16, v_max - 64,
                      v_max - 4095, v_huge};
    size_t aligns[] = {16, 32, 64, 4096, 65536, 1 << 20, 2 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
            size_t al = aligns[a];
            void *sentinel = (void *)0x5678;
            void *p = sentinel;
            int rc = posix_memalign(&p, al, n);
            CHECK(rc == ENOMEM && p == sentinel, "posix_memalign(%zu, SIZE_MAX-%zu) rc=%d p=%p", al, v_max - n, rc, p);
            if (rc == 0) free(p);
            errno = 0;
            p = aligned_alloc(al, n);
            { int e_ = errno; CHECK(p == NULL, "aligned_alloc(%zu, SIZE_MAX-%zu): p=%p", al, v_max - n, p); CHECK_STRICT(p != NULL || e_ == ENOMEM, "aligned_alloc(%zu, SIZE_MAX-%zu): errno=%d", al, v_max - n, e_); }
            errno = 0;
            p = memalign(al, n);
            { int e_ = errno; CHECK(p == NULL, "memalign(%zu, SIZE_MAX-%zu): p=%p", al, v_max - n, p); CHECK_STRICT(p != NULL || e_ == ENOMEM, "memalign(%zu, SIZE_MAX-%zu): errno=%d", al, v_max - n, e_); }
        }
        errno = 0;
        void *p = valloc(n);
        { int e_ = errno; CHECK(p == NULL, "valloc(SIZE_MAX-%zu): p=%p", v_max - n, p); CHECK_STRICT(p != NULL || e_ == ENOMEM, "valloc(SIZE_MAX-%zu): errno=%d", v_max - n, e_); }
        errno = 0;
        p = pvalloc(n);
        { int e_ = errno; CHECK(p == NULL, "pvalloc(SIZE_MAX-%zu): p=%p", v_max - n, p); CHECK_STRICT(p != NULL || e_ == ENOMEM, "pvalloc(SIZE_MAX-%zu): errno=%d", v_max - n, e_); }
    }
}

static void test_alignments(void) {
    size_t aligns[] = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 65536, 1 << 20, 2 << 20, 4 << 20, 16 << 20};
    size_t sizes[] = {0, 1, 100, 4096, 3 << 20};
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
        size_t al = aligns[a];
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t n = sizes[s];
            void *p = NULL;
            int rc = posix_memalign(&p, al, n);
            CHECK(rc == 0 && p != NULL, "posix_memalign(%zu, %zu) rc=%d p=%p", al, n, rc, p);
            CHECK(((uintptr_t)p & (al - 1)) == 0, "posix_memalign(%zu, %zu) misaligned %p", al, n, p);
            if (rc == 0 && p) CHECK(malloc_usable_size(p) >= n, "usable_size < size (posix_memalign %zu,%zu)", al, n);
            if (rc == 0) fill_verify_free(p, n, "posix_memalign", al);

            void *q = aligned_alloc(al, n);
            CHECK(q != NULL, "aligned_alloc(%zu, %zu) returned NULL (errno %d)", al, n, errno);
            CHECK(((uintptr_t)q & (al - 1)) == 0, "aligned_alloc(%zu, %zu) misaligned %p", al, n, q);
            fill_verify_free(q, n, "aligned_alloc", al);

            void *r = memalign(al, n);
            CHECK(r != NULL, "memalign(%zu, %zu) returned NULL", al, n);
            CHECK(((uintptr_t)r & (al - 1)) == 0, "memalign(%zu, %zu) misaligned %p", al, n, r);
            fill_verify_free(r, n, "memalign", al);
        }
    }
    /* many live aligned blocks at once, interleaved with plain ones, all intact */
    enum { M = 200 };
    void *ps[M];
    size_t ns[M], as[M];
    uint64_t rs = 42;
    for (int i = 0; i < M; i++) {
        as[i] = aligns[xrand(&rs) % 11]; /* up to 1 MiB */
        ns[i] = xrand(&rs) % 20000;
        ps[i] = (i % 3 == 0) ? malloc(ns[i]) : memalign(as[i], ns[i]);
        CHECK(ps[i] != NULL, "alloc #%d", i);
        if (i % 3 != 0) CHECK(((uintptr_t)ps[i] & (as[i] - 1)) == 0, "memalign(%zu) misaligned", as[i]);
        if (ps[i]) fill_block(ps[i], ns[i], addr_seed(ps[i], ns[i]));
    }
    for (int i = 0; i < M; i++) {
        if (!ps[i]) continue;
        size_t bad = check_block(ps[i], ns[i], addr_seed(ps[i], ns[i]));
        CHECK(bad == (size_t)-1, "live aligned block #%d (size %zu) corrupted at %zu", i, ns[i], bad);
        free(ps[i]);
    }
}

static void test_usable_size(void) {
    size_t sizes[] = {0, 1, 7, 8, 15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 65, 100, 127, 128, 129, 200, 255, 256,
                      257, 500, 511, 512, 513, 1000, 1023, 1024, 1025, 2000, 4095, 4096, 4097, 8191, 8193, 10000,
                      16384, 20000, 32767, 32769, 65535, 65537, 100000, 131073, 262145, 500000, 1 << 20,
                      (1 << 20) + 1, 2 << 20, (2 << 20) + 1, 5000000, 33554433};
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) != 0");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *p = malloc(n);
        CHECK(p != NULL, "malloc(%zu)", n);
        if (!p) continue;
        size_t u = malloc_usable_size(p);
        CHECK(u >= n, "malloc_usable_size(malloc(%zu)) = %zu < requested", n, u);
        CHECK(u <= n + (n >> 1) + 4096 + 64, "malloc_usable_size(malloc(%zu)) = %zu is absurdly large", n, u);
        fill_block(p, u, 77); /* every usable byte writable */
        size_t bad = check_block(p, u, 77);
        CHECK(bad == (size_t)-1, "usable bytes of malloc(%zu) (usable %zu) not preserved at %zu", n, u, bad);
        /* a neighbour allocated afterwards must not overlap the usable area */
        unsigned char *q = malloc(n);
        if (q) {
            size_t uq = malloc_usable_size(q);
            CHECK((q + uq <= p) || (q >= p + u), "blocks overlap: %p+%zu and %p+%zu", p, u, q, uq);
            memset(q, 0xee, uq);
            bad = check_block(p, u, 77);
            CHECK(bad == (size_t)-1, "writing a neighbour corrupted malloc(%zu) at %zu", n, bad);
            free(q);
        }
        free(p);
        /* calloc: all usable bytes zero (memory may be recycled) */
        unsigned char *c = calloc(1, n);
        CHECK(c != NULL, "calloc(1, %zu)", n);
        if (c) {
            int z = 1;
            for (size_t k = 0; k < n; k++) z &= c[k] == 0;
            CHECK(z, "calloc(1, %zu) not zeroed", n);
            free(c);
        }
    }
}

static void test_realloc(void) {
    /* realloc(NULL, n) behaves as malloc */
    char *p = realloc(NULL, 100);
    CHECK(p != NULL, "realloc(NULL,100) returned NULL");
    if (p) {
        CHECK(malloc_usable_size(p) >= 100, "realloc(NULL,100) usable < 100");
        memset(p, 1, 100);
        free(p);
    }
    p = realloc(NULL, 0);
    CHECK(p != NULL, "realloc(NULL,0) returned NULL (should behave as malloc(0))");
    free(p);
    /* realloc(p, 0): NULL (freed) or a freeable pointer */
    p = malloc(50);
    memset(p, 2, 50);
    errno = 0;
    void *z = realloc(p, 0);
    printf("edge-info: realloc_p_0=%s\n", z ? "non-null" : "null");
    int realloc_0_frees = z == NULL;
    if (z) {
        free(z);
    }
    /* reallocarray with a zero count or element size does what realloc(p, 0) does */
    size_t zero_args[][2] = {{0, 8}, {8, 0}, {0, 0}};
    for (size_t i = 0; i < sizeof zero_args / sizeof zero_args[0]; i++) {
        size_t n = zero_args[i][0], m = zero_args[i][1];
        p = malloc(50);
        memset(p, 2, 50);
        void *r = reallocarray(p, n, m);
        CHECK((r == NULL) == realloc_0_frees, "reallocarray(p, %zu, %zu) returned %p, realloc(p, 0) returned %s", n, m, r,
              realloc_0_frees ? "NULL" : "a block");
        if (r) free(r);
        r = reallocarray(NULL, n, m);
        CHECK(r != NULL, "reallocarray(NULL, %zu, %zu) returned NULL (should behave as malloc(0))", n, m);
        free(r);
    }
    /* big realloc(p,0) too */
    p = malloc(4 << 20);
    CHECK(p != NULL, "malloc(4 MiB)");
    z = realloc(p, 0);
    if (z) free(z);

    struct { size_t from, to; const char *what; } cases[] = {
        {1, 2, "small->small"},          {16, 17, "small->small"},     {100, 1000, "small->small"},
        {1000, 100, "small->small shrink"}, {24, 24, "same"},          {500, 100000, "small->mid"},
        {100, 3 << 20, "small->large"},  {4000, 1 << 20, "small->large"}, {1 << 20, 64 << 20, "large->large"},
        {64 << 20, 2 << 20, "large->large shrink"}, {2 << 20, 100, "large->small"},
        {3 << 20, (3 << 20) + 1, "large grow by 1"}, {(3 << 20) + 1, 3 << 20, "large shrink by 1"},
        {200000, 150000, "mid shrink"},  {70000, 8, "mid->tiny"},        {8, 0, "to zero"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t a = cases[i].from, b = cases[i].to;
        unsigned char *x = malloc(a);
        CHECK(x != NULL, "malloc(%zu)", a);
        if (!x) continue;
        for (size_t k = 0; k < a; k++) x[k] = bpat(1000 + i, k);
        unsigned char *y = realloc(x, b);
        if (b == 0) {
            if (y) free(y);
            continue;
        }
        CHECK(y != NULL, "realloc %s %zu -> %zu returned NULL", cases[i].what, a, b);
        if (!y) { free(x); continue; }
        CHECK(malloc_usable_size(y) >= b, "realloc %zu->%zu usable %zu", a, b, malloc_usable_size(y));
        size_t keep = a < b ? a : b;
        size_t bad = (size_t)-1;
        for (size_t k = 0; k < keep; k++)
            if (y[k] != bpat(1000 + i, k)) { bad = k; break; }
        CHECK(bad == (size_t)-1, "realloc %s %zu -> %zu lost contents at offset %zu", cases[i].what, a, b, bad);
        memset(y, 0xab, b); /* all new bytes writable */
        free(y);
    }
    /* a chain of reallocs through every size range, contents preserved each time */
    size_t chain[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 1000000, 100000, 10000, 1000, 100, 10, 1};
    unsigned char *c = NULL;
    size_t cur = 0;
    for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++) {
        size_t n = chain[i];
        c = realloc(c, n);
        CHECK(c != NULL, "realloc chain to %zu", n);
        if (!c) return;
        size_t keep = cur < n ? cur : n;
        int ok = 1;
        for (size_t k = 0; k < keep; k++) ok &= c[k] == (unsigned char)(k * 7 + 3);
        CHECK(ok, "realloc chain %zu -> %zu lost contents", cur, n);
        for (size_t k = 0; k < n; k++) c[k] = (unsigned char)(k * 7 + 3);
        cur = n;
    }
    free(c);
}

static void test_valloc(void) {
    long ps = sysconf(_SC_PAGESIZE);
    size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 100000, 3 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p = valloc(n);
        CHECK(p != NULL, "valloc(%zu) NULL", n);
        CHECK(((uintptr_t)p % ps) == 0, "valloc(%zu) not page aligned: %p", n, p);
        fill_verify_free(p, n, "valloc", ps);
        void *q = pvalloc(n);
        CHECK(q != NULL, "pvalloc(%zu) NULL", n);
        CHECK(((uintptr_t)q % ps) == 0, "pvalloc(%zu) not page aligned: %p", n, q);
        size_t rounded = (n + ps - 1) / ps * ps;
        if (q) {
            CHECK(malloc_usable_size(q) >= rounded, "pvalloc(%zu) usable %zu < rounded %zu", n, malloc_usable_size(q), rounded);
            /* pvalloc rounds the size up to a page: all of it is ours */
            fill_verify_free(q, rounded, "pvalloc(rounded)", ps);
        }
    }
}

static void test_free_variants(void) {
    free(NULL);
    CHECK(1, "free(NULL)");
    free_sized_fn fs = (free_sized_fn)dlsym(RTLD_DEFAULT, "free_sized");
    free_aligned_sized_fn fas = (free_aligned_sized_fn)dlsym(RTLD_DEFAULT, "free_aligned_sized");
    if (is_hakmem()) {
        CHECK(fs != NULL, "libhakmem.so does not export free_sized");
        CHECK(fas != NULL, "libhakmem.so does not export free_aligned_sized");
    }
    printf("edge-info: free_sized=%s free_aligned_sized=%s\n", fs ? "yes" : "no", fas ? "yes" : "no");
    size_t sizes[] = {0, 1, 16, 100, 1000, 5000, 70000, 300000, 3 << 20};
    for (int rep = 0; rep < 50; rep++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            if (fs) {
                void *p = malloc(n);
                CHECK(p != NULL, "malloc(%zu)", n);
                memset(p, 1, n);
                fs(p, n);
                fs(NULL, 0);
            }
            if (fas) {
                size_t al = (size_t)64 << (i % 8);
                size_t m = (n + al - 1) / al * al;
                void *p = aligned_alloc(al, m);
                CHECK(p != NULL && ((uintptr_t)p & (al - 1)) == 0, "aligned_alloc(%zu,%zu)", al, m);
                if (p) memset(p, 2, m);
                fas(p, al, m);
                fas(NULL, al, 0);
            }
        }
    }
    /* the hakmem API */
    if (is_hakmem()) {
        abi_fn abi = (abi_fn)dlsym(RTLD_DEFAULT, "hak_abi_version");
        alloc_at_fn aa = (alloc_at_fn)dlsym(RTLD_DEFAULT, "hak_alloc_at");
        free_at_fn fa = (free_at_fn)dlsym(RTLD_DEFAULT, "hak_free_at");
        CHECK(abi() == 1, "hak_abi_version() = %u, header says 1", abi());
        CHECK(aa && fa, "hak_alloc_at / hak_free_at missing");
        if (aa && fa) {
            for (int i = 0; i < 2000; i++) {
                size_t n = (size_t)(i * 37 % 5000) + (i % 100 == 0 ? (1 << 20) : 0);
                void *p = aa(n, 0x1000 + (uintptr_t)(i % 7) * 64);
                CHECK(p != NULL, "hak_alloc_at(%zu)", n);
                if (!p) continue;
                CHECK(malloc_usable_size(p) >= n, "hak_alloc_at usable");
                fill_block(p, n, 5);
                CHECK(check_block(p, n, 5) == (size_t)-1, "hak_alloc_at block corrupted");
                if (i % 2) fa(p, 0x1000 + (uintptr_t)(i % 7) * 64); else free(p);
            }
            void *p = malloc(100);
            fa(p, 0x42); /* malloc'd block freed through the hakmem API */
            fa(NULL, 0);
        }
    }
}

int main(void) {
    printf("edge-info: hakmem=%d\n", is_hakmem());
    test_malloc0();
    test_overflow();
    test_posix_memalign_bad();
    test_aligned_huge();
    test_alignments();
    test_usable_size();
    test_realloc();
    test_valloc();
    test_free_variants();
    printf("edge: %d checks, %d failures\n", g_checks, g_failures);
    fflush(stdout);
    return g_failures ? 1 : 0;
}
