/* fork in a threaded process: 4 threads allocate/free (with content checks) while the main thread
 * forks NFORK times; each child frees blocks the (vanished) threads left in shared slots, then does
 * 10^5 malloc/free with content checks (and starts a thread of its own) and exits 0. The parent waits
 * for each child with a timeout (a deadlocked child is killed and reported). */
#include "common.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

#define NTHREADS 4
#define NSLOTS 1024
#define NFORK 24
static _Atomic(void *) slots[NSLOTS];
static atomic_int stop;
static atomic_long worker_ops;

static void *worker(void *arg) {
    uint64_t rs = 0x9E3779B97F4A7C15ull * (uintptr_t)(arg + 1);
    enum { L = 256 };
    void *live[L] = {0};
    size_t lsz[L] = {0};
    long ops = 0;
    while (!atomic_load(&stop)) {
        unsigned i = (unsigned)(xrand(&rs) % L);
        if (live[i]) {
            size_t bad = check_block(live[i], lsz[i], addr_seed(live[i], lsz[i]));
            if (bad != (size_t)-1) DIE("worker: block %p size %zu corrupted at %zu", live[i], lsz[i], bad);
            if (xrand(&rs) % 4 == 0) {
                /* hand it to a shared slot (whoever takes it frees it) */
                unsigned s = (unsigned)(xrand(&rs) % NSLOTS);
                void *old = atomic_exchange(&slots[s], live[i]);
                if (old) free(old);
            } else {
                free(live[i]);
            }
            live[i] = NULL;
        } else {
            size_t n = rand_size(&rs) / 4;
            void *p = malloc(n);
            if (!p) DIE("worker: malloc(%zu) failed", n);
            fill_block(p, n, addr_seed(p, n));
            live[i] = p;
            lsz[i] = n;
        }
        ops++;
        if ((ops & 1023) == 0) atomic_fetch_add(&worker_ops, 1024);
    }
    for (unsigned i = 0; i < L; i++) free(live[i]);
    return NULL;
}

static void *child_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 10000; i++) {
        size_t n = (size_t)(i * 131 % 3000);
        void *p = malloc(n);
        if (!p) DIE("child thread malloc");
        fill_block(p, n, 3);
        if (check_block(p, n, 3) != (size_t)-1) DIE("child thread block corrupted");
        free(p);
    }
    return NULL;
}

static int child_main(int k) {
    /* blocks left behind by threads that do not exist in the child: free them here */
    for (unsigned s = 0; s < NSLOTS; s++) {
        void *p = atomic_exchange(&slots[s], NULL);
        if (p) free(p);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0) DIE("child pthread_create");
    uint64_t rs = 77 + (uint64_t)k;
    enum { L = 512 };
    void *live[L] = {0};
    size_t lsz[L] = {0};
    for (int op = 0; op < 100000; op++) {
        unsigned i = (unsigned)(xrand(&rs) % L);
        if (live[i]) {
            size_t bad = check_block(live[i], lsz[i], addr_seed(live[i], lsz[i]));
            if (bad != (size_t)-1) DIE("child %d: block size %zu corrupted at %zu", k, lsz[i], bad);
            free(live[i]);
            live[i] = NULL;
        }
        size_t n = rand_size(&rs) / 8;
        void *p = (op % 10 == 0) ? calloc(1, n) : malloc(n);
        if (!p) DIE("child %d: malloc(%zu) failed", k, n);
        fill_block(p, n, addr_seed(p, n));
        live[i] = p;
        lsz[i] = n;
    }
    for (unsigned i = 0; i < L; i++) {
        if (live[i] && check_block(live[i], lsz[i], addr_seed(live[i], lsz[i])) != (size_t)-1) DIE("child final check");
        free(live[i]);
    }
    pthread_join(t, NULL);
    return 0;
}

int main(void) {
    pthread_t th[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)i) != 0) DIE("pthread_create");
    int failures = 0;
    for (int k = 0; k < NFORK; k++) {
        struct timespec d = {0, 20 * 1000 * 1000};
        nanosleep(&d, NULL);
        /* the main thread allocates too, right before forking */
        void *mine = malloc(1000 + (size_t)k);
        fill_block(mine, 1000 + (size_t)k, 9);
        pid_t pid = fork();
        if (pid < 0) DIE("fork");
        if (pid == 0) {
            if (check_block(mine, 1000 + (size_t)k, 9) != (size_t)-1) DIE("child: parent's block corrupted");
            free(mine);
            exit(child_main(k));
        }
        free(mine);
        int status = 0;
        int waited_ms = 0;
        for (;;) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid) break;
            if (r < 0) DIE("waitpid");
            if (waited_ms > 60000) {
                fprintf(stderr, "FAIL: child %d (pid %d) still running after 60 s: deadlock after fork; killing\n", k, pid);
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                failures++;
                status = 0;
                goto next;
            }
            struct timespec w = {0, 5 * 1000 * 1000};
            nanosleep(&w, NULL);
            waited_ms += 5;
        }
        if (WIFSIGNALED(status)) {
            fprintf(stderr, "FAIL: child %d killed by signal %d\n", k, WTERMSIG(status));
            failures++;
        } else if (WEXITSTATUS(status) != 0) {
            fprintf(stderr, "FAIL: child %d exited with %d\n", k, WEXITSTATUS(status));
            failures++;
        }
    next:;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    for (unsigned s = 0; s < NSLOTS; s++) free(atomic_exchange(&slots[s], NULL));
    long wops = atomic_load(&worker_ops);
    printf("fork: %d forks, %d failed children, worker ops %ld\n", NFORK, failures, wops);
    if (wops < 10000) {
        fprintf(stderr, "FAIL: worker threads did almost nothing (%ld ops): the test did not test\n", wops);
        failures++;
    }
    return failures ? 1 : 0;
}
