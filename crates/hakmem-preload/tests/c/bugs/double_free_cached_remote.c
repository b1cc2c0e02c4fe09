/* A block freed by its owner (it sits in the owner's thread cache), then freed again by another
 * thread: without the check, the next two malloc(80) would both return it. */
#include "bug.h"
static void *again(void *p) {
    if (!ok_mode) free(p);
    return NULL;
}
int main(int argc, char **argv) {
    bug_init(argc, argv);
    char *p = malloc(80);
    memset(p, 1, 80);
    free(p);
    if (!ok_mode) expect_addr(p);
    pthread_t t;
    pthread_create(&t, NULL, again, p);
    pthread_join(t, NULL);
    char *a = malloc(80), *b = malloc(80);
    if (a == b) {
        printf("malloc(80) returned %p twice\n", (void *)a);
        return bug_end();
    }
    free(a);
    free(b);
    return bug_end();
}
