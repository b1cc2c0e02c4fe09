/* A block freed by its owner, then freed again by another thread (the remote-free path). */
#include "bug.h"
static void *again(void *p) {
    if (!ok_mode) free(p);
    return NULL;
}
int main(int argc, char **argv) {
    bug_init(argc, argv);
    char *p = malloc(64);
    memset(p, 1, 64);
    void *other = malloc(64); /* so p is not at the head of the thread's free list alone */
    free(p);
    free(other);
    if (!ok_mode) expect_addr(p);
    pthread_t t;
    pthread_create(&t, NULL, again, p);
    pthread_join(t, NULL);
    return bug_end();
}
