/* free(p); free(p) of a small block. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    char *p = malloc(32);
    memset(p, 1, 32);
    free(p);
    if (!ok_mode) {
        expect_addr(p);
        free(p);
    }
    return bug_end();
}
