/* free() of the slack after the last 48-byte block of a 64 KiB slab (a block that ends short of the
 * slab's end, with no room for another after it), by the owner: no block is
 * there (default mode must call it an invalid pointer, not hand it out later). In safe mode a 48-byte
 * request takes a 64-byte block, which leaves no slack: the pointer is inside the last block. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    static char *v[20000];
    char *tail = NULL;
    for (int i = 0; i < 20000; i++) {
        v[i] = malloc(48);
        memset(v[i], 1, 48);
        unsigned long end = ((unsigned long)v[i] & 0xffff) + 48;
        if (end < 65536 && end + 48 > 65536) tail = v[i] + 48;
    }
    if (!tail) {
        fprintf(stderr, "no block at the end of a slab: layout changed\n");
        return 2;
    }
    if (!ok_mode) {
        expect_addr(tail);
        free(tail);
    }
    for (int i = 0; i < 20000; i++) free(v[i]);
    return bug_end();
}
