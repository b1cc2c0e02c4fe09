/* free(p); free(p) of a large (own mapping) block. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    size_t n = 1 << 20;
    char *p = malloc(n);
    memset(p, 1, n);
    free(p);
    if (!ok_mode) {
        expect_addr(p);
        free(p);
    }
    return bug_end();
}
