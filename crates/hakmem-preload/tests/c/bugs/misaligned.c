/* free() of a misaligned pointer: one byte past the start of a block. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    char *p = malloc(200);
    memset(p, 1, 200);
    char *q = ok_mode ? p : p + 1;
    if (!ok_mode) expect_addr(q);
    free(q);
    return bug_end();
}
