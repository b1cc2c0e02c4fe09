/* malloc_usable_size() of a stack address. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    char buf[64];
    sink(buf);
    void *p = ok_mode ? malloc(64) : (void *)(buf + 8);
    if (!ok_mode) expect_addr(p);
    size_t n = malloc_usable_size(p);
    printf("usable %zu\n", n);
    if (ok_mode) free(p);
    return bug_end();
}
