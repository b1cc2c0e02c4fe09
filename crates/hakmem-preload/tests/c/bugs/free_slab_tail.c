/* free() of the slack after the last 48-byte block of a 64 KiB slab, by the owner: no block is
 * there (default mode must call it an invalid pointer, not hand it out later). In safe mode a 48-byte
 * request takes a 64-byte block, which leaves no slack: the pointer is inside the last block. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    static char *v[4000];
    char *tail = NULL;
    for (int i = 0; i < 4000; i++) {
        v[i] = malloc(48);
        memset(v[i], 1, 48);
        if (((unsigned long)v[i] & 0xffff) == 65472) tail = v[i] + 48;
    }
    if (!tail) {
        fprintf(stderr, "no block at the end of a slab: layout changed\n");
        return 2;
    }
    if (!ok_mode) {
        expect_addr(tail);
        free(tail);
    }
    for (int i = 0; i < 4000; i++) free(v[i]);
    return bug_end();
}
