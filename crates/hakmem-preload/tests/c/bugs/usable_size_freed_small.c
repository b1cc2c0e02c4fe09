/* malloc_usable_size() of a small block just freed. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    char *p = malloc(40);
    memset(p, 1, 40);
    char *keep = malloc(40); /* p is not the only block around */
    free(p);
    if (ok_mode) p = malloc(40);
    else expect_addr(p);
    size_t u = malloc_usable_size(p);
    printf("usable %zu\n", u);
    if (ok_mode) free(p);
    free(keep);
    return bug_end();
}
