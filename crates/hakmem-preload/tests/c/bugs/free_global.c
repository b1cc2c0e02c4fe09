/* free() of a global array. */
#include "bug.h"
static char global_buf[256];
int main(int argc, char **argv) {
    bug_init(argc, argv);
    memset(global_buf, 1, sizeof global_buf);
    char *p = ok_mode ? malloc(256) : global_buf;
    if (!ok_mode) expect_addr(p);
    free(p);
    return bug_end();
}
