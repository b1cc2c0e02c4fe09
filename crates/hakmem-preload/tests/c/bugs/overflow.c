/* Writes one byte past the requested size, then frees the block. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    size_t n = 24;
    char *p = malloc(n);
    memset(p, 1, n);
    if (!ok_mode) {
        p[n] = (char)~p[n]; /* a byte sure to differ from what was there (a fixed one matches a random canary 1 time in 256) */
        expect_addr(p);
    }
    free(p);
    return bug_end();
}
