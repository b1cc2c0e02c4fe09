/* free() of a 2 MiB-aligned large block plus one page. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    void *v = NULL;
    if (posix_memalign(&v, 2 << 20, 3 << 20) != 0) return 98;
    char *p = v;
    memset(p, 1, 3 << 20);
    char *q = ok_mode ? p : p + 4096;
    if (!ok_mode) expect_addr(q);
    free(q);
    return bug_end();
}
