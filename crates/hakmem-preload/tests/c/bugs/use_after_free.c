/* Writes 16 bytes into a freed small block, then allocates the same size a few times. */
#include "bug.h"
int main(int argc, char **argv) {
    bug_init(argc, argv);
    char *p = malloc(48);
    memset(p, 1, 48);
    free(p);
    if (!ok_mode) {
        memset(p, 0x41, 16);
        sink(p);
    }
    void *q[8];
    for (int i = 0; i < 8; i++) {
        q[i] = malloc(48);
        memset(q[i], 2, 48);
    }
    for (int i = 0; i < 8; i++) free(q[i]);
    return bug_end();
}
