/* Injected mmap failure (HAKMEM_FAIL_MMAP_AFTER=N, HAKMEM_FAIL_MMAP_TIMES=M: hakmem's mappings
 * number N+1..N+M fail). argv[1] = "large" (4 MiB blocks, each its own mapping) or "small" (512 B
 * blocks, a new batch of SuperSlabs every 32 MiB, each batch one mapping or, refused, one
 * SuperSlab's). Allocates, keeping every block, until malloc returns NULL: it must, with errno
 * ENOMEM, and the next allocations must succeed again (recovery); then every block's contents are
 * checked, everything is freed, and the allocator still works. Prints
 * "fail_mmap: first_null=<i> errno=<e> recovered_after=<k> failures=<hak_stats mmap_failures>". */
#include "../common.h"
#include "hakmem.h"

#define MAXB 200000

static void *blocks[MAXB];
static size_t sizes[MAXB];

int main(int argc, char **argv) {
    int large = argc > 1 && strcmp(argv[1], "large") == 0;
    size_t sz = large ? (4u << 20) : 512;
    size_t limit = large ? 200 : MAXB;
    size_t n = 0, first_null = (size_t)-1, recovered_after = 0;
    int err = 0;
    while (n < limit) {
        errno = 0;
        void *p = malloc(sz);
        if (!p) {
            if (first_null == (size_t)-1) {
                first_null = n;
                err = errno;
            }
            recovered_after++;
            if (recovered_after > 64) break;
            continue;
        }
        if (first_null != (size_t)-1 && recovered_after > 0 && n > first_null + 8) {
            /* recovered and kept going for a while */
            blocks[n] = p;
            sizes[n] = sz;
            fill_block(p, sz < 4096 ? sz : 4096, n);
            n++;
            break;
        }
        fill_block(p, sz < 4096 ? sz : 4096, n);
        blocks[n] = p;
        sizes[n] = sz;
        n++;
    }
    CHECK(first_null != (size_t)-1, "malloc(%zu) never returned NULL in %zu tries", sz, n);
    CHECK(err == ENOMEM, "NULL with errno %d, expected ENOMEM", err);
    CHECK(recovered_after <= 64, "malloc did not recover after %zu NULLs", recovered_after);
    for (size_t i = 0; i < n; i++) {
        size_t bad = check_block(blocks[i], sizes[i] < 4096 ? sizes[i] : 4096, i);
        CHECK(bad == (size_t)-1, "block %zu corrupted at %zu", i, bad);
        free(blocks[i]);
    }
    /* still works: small and large */
    for (int k = 0; k < 10000; k++) {
        void *p = malloc((size_t)(k % 3000) + 1);
        CHECK(p != NULL, "malloc after recovery");
        if (!p) break;
        memset(p, 1, (size_t)(k % 3000) + 1);
        free(p);
    }
    void *big = malloc(64u << 20);
    CHECK(big != NULL, "malloc(64 MiB) after recovery");
    if (big) memset(big, 2, 64u << 20);
    free(big);
    struct hak_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    int rc = hak_stats_get(&st);
    CHECK(rc == 0, "hak_stats_get returned %d", rc);
    printf("fail_mmap: first_null=%zu errno=%d recovered_after=%zu failures=%llu\n", first_null, err,
           recovered_after, (unsigned long long)st.mmap_failures);
    printf("fail_mmap: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
}
