/* free() of a stack address. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    char buf[64];
    memset(buf, 1, sizeof buf);
    sink(buf);
    char *p = ok_mode ? malloc(64) : buf + 16;
    if (!ok_mode) expect_addr(p);
    free(p);
    return bug_end();
}
