/* free_sized(p, n) twice in a row: the report names free_sized, the function the program called. */
#include "bug.h"
#include <dlfcn.h>
int main(int argc, char **argv) {
    bug_init(argc, argv);
    void (*free_sized)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    if (!free_sized) {
        fprintf(stderr, "no free_sized\n");
        return 2;
    }
    char *p = malloc(32);
    memset(p, 1, 32);
    free_sized(p, 32);
    if (!ok_mode) {
        expect_addr(p);
        free_sized(p, 32);
    }
    return bug_end();
}
