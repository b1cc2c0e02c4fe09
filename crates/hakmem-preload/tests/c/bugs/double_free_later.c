/* free(a); free(b); free(a): a double free with another free in between. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    char *a = malloc(48), *b = malloc(48), *c = malloc(100);
    memset(a, 1, 48);
    memset(b, 2, 48);
    free(a);
    free(b);
    free(c);
    if (!ok_mode) {
        expect_addr(a);
        free(a);
    }
    return bug_end();
}
