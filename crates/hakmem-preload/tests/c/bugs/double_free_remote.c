/* Another thread frees a block twice in a row (the remote-free path, default mode). */
#include "bug.h"
static void *twice(void *p) {
    free(p);
    if (!ok_mode) free(p);
    return NULL;
}
int main(int argc, char **argv) {
    bug_init(argc, argv);
    char *p = malloc(40);
    memset(p, 1, 40);
    if (!ok_mode) expect_addr(p);
    pthread_t t;
    pthread_create(&t, NULL, twice, p);
    pthread_join(t, NULL);
    return bug_end();
}
