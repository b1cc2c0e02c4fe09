/* free() of a pointer 3 MiB into a 5 MiB block: past the 2 MiB chunk where the block starts. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    size_t n = 5 << 20;
    char *p = malloc(n);
    memset(p, 1, n);
    char *q = ok_mode ? p : p + (3 << 20);
    if (!ok_mode) expect_addr(q);
    free(q);
    return bug_end();
}
