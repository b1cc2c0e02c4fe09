/* free() of a pointer 16 bytes into a small block. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    char *p = malloc(64);
    memset(p, 1, 64);
    char *q = ok_mode ? p : p + 16;
    if (!ok_mode) expect_addr(q);
    free(q);
    return bug_end();
}
