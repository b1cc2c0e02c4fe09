/* fork while another thread holds blocks, then threads of the child that reuse that thread's
 * identity: glibc gives a child's new thread the stack, and so the thread pointer, of a parent's
 * thread that does not exist in the child. Each child thread checks and frees the vanished
 * thread's blocks (more than a thread cache holds, of several sizes), then allocates and frees
 * with content checks; the child's main thread does the same afterwards. Prints how many child
 * threads had the vanished thread's identity. */
#include "common.h"
#include <pthread.h>
#include <sys/wait.h>

#define NBLOCKS 6000
#define NCHILD_THREADS 4
static void *blocks[NBLOCKS];
static size_t sizes[NBLOCKS];
static pthread_t holder;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ready, release_holder;

static size_t size_of_block(int i) { return (size_t)(16 + (i % 7) * 40); }

static void *hold(void *arg) {
    (void)arg;
    for (int i = 0; i < NBLOCKS; i++) {
        sizes[i] = size_of_block(i);
        blocks[i] = malloc(sizes[i]);
        if (!blocks[i]) DIE("holder: malloc");
        fill_block(blocks[i], sizes[i], addr_seed(blocks[i], sizes[i]));
    }
    /* free every other block here, so this thread's cache holds some of them at the fork */
    for (int i = 0; i < NBLOCKS; i += 2) {
        free(blocks[i]);
        blocks[i] = NULL;
    }
    pthread_mutex_lock(&mu);
    ready = 1;
    pthread_cond_broadcast(&cv);
    while (!release_holder) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < NBLOCKS; i++) free(blocks[i]);
    return NULL;
}

/* allocate, check and free, keeping up to 512 blocks live */
static void churn(uint64_t seed) {
    enum { L = 512 };
    void *live[L] = {0};
    size_t lsz[L] = {0};
    uint64_t rs = seed;
    for (int op = 0; op < 50000; op++) {
        unsigned i = (unsigned)(xrand(&rs) % L);
        if (live[i]) {
            if (check_block(live[i], lsz[i], addr_seed(live[i], lsz[i])) != (size_t)-1) DIE("child: block corrupted");
            free(live[i]);
        }
        size_t n = size_of_block((int)(xrand(&rs) % 7));
        live[i] = malloc(n);
        if (!live[i]) DIE("child: malloc");
        fill_block(live[i], n, addr_seed(live[i], n));
        lsz[i] = n;
    }
    for (unsigned i = 0; i < L; i++) {
        if (live[i] && check_block(live[i], lsz[i], addr_seed(live[i], lsz[i])) != (size_t)-1) DIE("child: final check");
        free(live[i]);
    }
}

static int same_as_holder;

static void *child_thread(void *arg) {
    long k = (long)arg;
    if (pthread_equal(pthread_self(), holder)) __atomic_add_fetch(&same_as_holder, 1, __ATOMIC_SEQ_CST);
    if (k == 0) {
        for (int i = 0; i < NBLOCKS; i++) {
            if (!blocks[i]) continue;
            if (check_block(blocks[i], sizes[i], addr_seed(blocks[i], sizes[i])) != (size_t)-1) DIE("child: holder's block corrupted");
            free(blocks[i]);
            blocks[i] = NULL;
        }
    }
    churn(100 + (uint64_t)k);
    return NULL;
}

int main(void) {
    if (pthread_create(&holder, NULL, hold, NULL) != 0) DIE("pthread_create");
    pthread_mutex_lock(&mu);
    while (!ready) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    pid_t pid = fork();
    if (pid < 0) DIE("fork");
    if (pid == 0) {
        /* one at a time, so each may get the vanished thread's stack */
        for (long k = 0; k < NCHILD_THREADS; k++) {
            pthread_t t;
            if (pthread_create(&t, NULL, child_thread, (void *)k) != 0) DIE("child pthread_create");
            pthread_join(t, NULL);
        }
        churn(7);
        printf("fork_thread_reuse: %d of %d child threads had the vanished thread's identity\n", same_as_holder, NCHILD_THREADS);
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) DIE("waitpid");
    pthread_mutex_lock(&mu);
    release_holder = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(holder, NULL);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "FAIL: child status %d\n", status);
        return 1;
    }
    printf("fork_thread_reuse: ok\n");
    return 0;
}
