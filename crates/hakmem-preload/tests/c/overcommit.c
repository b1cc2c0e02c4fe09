/* Sizes the machine cannot back fail with NULL and ENOMEM, as under glibc (not a pointer to memory
 * the kernel cannot commit, that would get the program killed when touched). Prints
 * `overcommit: N failures` (or `overcommit: skipped ...` when the kernel overcommits always). */
#include "common.h"
#include <sys/sysinfo.h>

int main(void) {
    FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
    int mode = -1;
    if (f) {
        if (fscanf(f, "%d", &mode) != 1) mode = -1;
        fclose(f);
    }
    if (mode == 1) {
        printf("overcommit: skipped (vm.overcommit_memory = 1: every size succeeds)\n");
        return 0;
    }
    struct sysinfo si;
    if (sysinfo(&si)) DIE("sysinfo");
    size_t backing = ((size_t)si.totalram + (size_t)si.totalswap) * si.mem_unit;
    size_t sizes[] = {2 * backing, 4 * backing, (size_t)1 << 40, (size_t)16 << 40};
    for (int i = 0; i < 4; i++) {
        if (sizes[i] < 2 * backing) continue;
        errno = 0;
        void *p = malloc(sizes[i]);
        CHECK(p == NULL && errno == ENOMEM, "malloc(%zu) = %p, errno %d", sizes[i], p, errno);
        free(p);
        errno = 0;
        p = calloc(sizes[i] >> 20, (size_t)1 << 20);
        CHECK(p == NULL && errno == ENOMEM, "calloc(%zu, 1 MiB) = %p, errno %d", sizes[i] >> 20, p, errno);
        free(p);
        errno = 0;
        p = NULL;
        int r = posix_memalign(&p, (size_t)1 << 21, sizes[i]);
        CHECK(r == ENOMEM && p == NULL, "posix_memalign(2 MiB, %zu) = %d", sizes[i], r);
        void *q = malloc(1000);
        if (!q) DIE("malloc(1000)");
        memset(q, 0x33, 1000);
        errno = 0;
        p = realloc(q, sizes[i]);
        CHECK(p == NULL && errno == ENOMEM, "realloc(q, %zu) = %p, errno %d", sizes[i], p, errno);
        if (p) {
            free(p);
            continue;
        }
        for (int j = 0; j < 1000; j++)
            if (((unsigned char *)q)[j] != 0x33) DIE("a failed realloc changed the block");
        free(q);
    }
    /* What the machine can back still works: 64 MiB, touched. */
    size_t n = (size_t)64 << 20;
    unsigned char *p = malloc(n);
    CHECK(p != NULL, "malloc(64 MiB)");
    if (p) {
        memset(p, 0x44, n);
        CHECK(p[n - 1] == 0x44, "64 MiB block holds its contents");
        free(p);
    }
    printf("overcommit: %d failures of %d checks\n", g_failures, g_checks);
    return g_failures != 0;
}
