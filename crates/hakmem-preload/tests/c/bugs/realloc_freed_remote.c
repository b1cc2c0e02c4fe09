/* realloc() of a block another thread has just freed. */
#include "bug.h"
static void *free_it(void *p) {
    free(p);
    return NULL;
}
int main(int argc, char **argv) {
    bug_init(argc, argv);
    char *p = malloc(40);
    memset(p, 1, 40);
    char *keep = malloc(40); /* p is not the only block around */
    pthread_t t;
    if (pthread_create(&t, NULL, free_it, p) != 0) return 98;
    pthread_join(t, NULL);
    if (ok_mode) p = malloc(40);
    else expect_addr(p);
    p = realloc(p, 80);
    free(p);
    free(keep);
    return bug_end();
}
