/* free() of a posix_memalign'd pointer plus its alignment (a mismatched aligned free). */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    void *v = NULL;
    if (posix_memalign(&v, 64, 200) != 0) return 98;
    char *p = v;
    memset(p, 1, 200);
    char *q = ok_mode ? p : p + 64;
    if (!ok_mode) expect_addr(q);
    free(q);
    return bug_end();
}
