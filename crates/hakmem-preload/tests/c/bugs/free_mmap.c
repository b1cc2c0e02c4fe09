/* free() of memory the program mapped itself (not from malloc). */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    void *warm = malloc(2 << 20); /* hakmem has mappings of its own around */
    char *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 98;
    memset(m, 1, 1 << 16);
    char *p = ok_mode ? malloc(100) : m + 4096;
    if (!ok_mode) expect_addr(p);
    free(p);
    free(warm);
    munmap(m, 1 << 16);
    return bug_end();
}
