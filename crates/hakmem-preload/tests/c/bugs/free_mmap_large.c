/* free() of a page the program mapped itself in the 2 MiB chunk of a 300 KiB block, right past the
 * block's own mapping (which starts at the chunk's base): not a block of ours, nor inside one. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    size_t n = 300 << 10, chunk = 2 << 20;
    char *p = malloc(n);
    memset(p, 1, n);
    uintptr_t end = ((uintptr_t)p + malloc_usable_size(p) + 4095) & ~(uintptr_t)4095;
    uintptr_t chunk_end = ((uintptr_t)p & ~(chunk - 1)) + chunk;
    char *m = MAP_FAILED;
    for (uintptr_t a = end; a < chunk_end && m == MAP_FAILED; a += 4096) {
        m = mmap((void *)a, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (m != MAP_FAILED && m != (char *)a) { /* a kernel that ignores MAP_FIXED_NOREPLACE */
            munmap(m, 4096);
            m = MAP_FAILED;
        }
    }
    if (m == MAP_FAILED) {
        fprintf(stderr, "no free page after the block in its chunk: layout changed\n");
        return 2;
    }
    memset(m, 1, 4096);
    char *q = ok_mode ? malloc(100) : m + 64;
    if (!ok_mode) expect_addr(q);
    free(q);
    munmap(m, 4096);
    free(p);
    return bug_end();
}
