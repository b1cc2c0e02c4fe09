/* malloc_usable_size() of a large block already freed (kept mapped by the cache). */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    size_t n = 1 << 20;
    char *p = malloc(n);
    memset(p, 1, n);
    if (!ok_mode) {
        free(p);
        expect_addr(p);
    }
    size_t u = malloc_usable_size(p);
    printf("usable %zu\n", u);
    if (ok_mode) free(p);
    return bug_end();
}
