/* free() of a pointer one page into a large block. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    size_t n = 3 << 20;
    char *p = malloc(n);
    memset(p, 1, n);
    char *q = ok_mode ? p : p + 4096;
    if (!ok_mode) expect_addr(q);
    free(q);
    return bug_end();
}
