/* A write at offsets 16..55 of a freed 64-byte block (past the link and the cookie), then the block
 * is asked for again. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    char *p = malloc(64);
    memset(p, 1, 64);
    free(p);
    if (!ok_mode) {
        expect_addr(p);
        memset(p + 16, 0x41, 40);
    }
    for (int i = 0; i < 8; i++) {
        char *q = malloc(64);
        memset(q, 2, 64);
    }
    return bug_end();
}
