/* Default mode has no canary: a one-byte write past a 48-byte block lands in the free block after
 * it, whose first word links the thread's cache of free blocks. The next mallocs hand out the
 * damaged link, a pointer into the middle of a block, and the program frees it: the report must
 * tell of the corruption, not blame the pointer malloc returned. (Safe mode catches the overflow
 * at the first free, by its canary.) */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    const char *safe = getenv("HAKMEM_SAFE_FREE");
    int safe_mode = safe && strcmp(safe, "1") == 0;
    size_t n = 48;
    char *x = malloc(n), *y = malloc(n), *z = malloc(n);
    memset(x, 1, n);
    memset(y, 1, n);
    memset(z, 1, n);
    if (!safe_mode && y != x + n) {
        fprintf(stderr, "blocks not handed out in address order: layout changed\n");
        return 2;
    }
    free(z);
    free(y);
    free(x); /* the cache now holds x, then y, then z: y's first word points at z */
    char *p = malloc(n); /* x */
    memset(p, 1, n);
    if (!ok_mode) {
        if (safe_mode) expect_addr(p);
        /* Default mode: the low byte of y's link. Safe mode: the canary's first byte, flipped (a
         * fixed value would match the per-process random canary once in 256 runs). */
        p[n] = safe_mode ? (char)~p[n] : 0x41;
    }
    free(p);
    char *a = malloc(n), *b = malloc(n), *c = malloc(n); /* x, y, then what y's link says */
    if (!ok_mode) expect_addr(c);
    memset(c, 1, n);
    free(c);
    free(b);
    free(a);
    return bug_end();
}
