/* delete[] of a stack address: the report names operator delete[]. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    char buf[64];
    memset(buf, 1, sizeof buf);
    sink(buf);
    char *p = ok_mode ? new char[64] : buf + 16;
    if (!ok_mode) expect_addr(p);
    delete[] p;
    return bug_end();
}
