/* fork() with pthread_atfork handlers that allocate and free (fork_handlers_lib.c: one set of
 * handlers registered before the allocator's own, one after), while two threads allocate and free.
 * Every fork must complete (glibc's malloc completes it); each child checks that its child handlers
 * ran, then fills, checks and frees blocks of every tier, from its main thread and from two new
 * threads, and exits 0. A deadlock is caught by alarm() in the parent and by a time limit on each
 * child. */
#include "common.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

void fork_handlers_register_late(void);
void fork_handlers_runs(int runs[6]);
void fork_handlers_release(void);

#define NFORK 12
#define NWORKERS 2
static atomic_int stop;
static atomic_long worker_ops;

/* Allocates, fills, checks and frees `ops` blocks of random sizes (1% up to 1 MiB), keeping up to
 * 128 live at a time; with `big`, then a 1 MiB and a 64 MiB block, one byte per 64 KiB. */
static void churn(uint64_t seed, long ops, int big, const char *who) {
    enum { L = 128 };
    void *live[L] = {0};
    size_t lsz[L] = {0};
    uint64_t rs = seed;
    for (long op = 0; op < ops; op++) {
        unsigned i = (unsigned)(xrand(&rs) % L);
        if (live[i]) {
            if (check_block(live[i], lsz[i], addr_seed(live[i], lsz[i])) != (size_t)-1)
                DIE("%s: block of %zu bytes corrupted", who, lsz[i]);
            free(live[i]);
        }
        size_t n = rand_size(&rs);
        live[i] = malloc(n);
        if (!live[i]) DIE("%s: malloc(%zu) failed", who, n);
        lsz[i] = n;
        fill_block(live[i], n, addr_seed(live[i], n));
    }
    for (unsigned i = 0; i < L; i++) {
        if (live[i] && check_block(live[i], lsz[i], addr_seed(live[i], lsz[i])) != (size_t)-1)
            DIE("%s: final check", who);
        free(live[i]);
    }
    size_t sizes[] = {1u << 20, 64u << 20};
    for (int k = 0; big && k < 2; k++) {
        char *p = malloc(sizes[k]);
        if (!p) DIE("%s: malloc(%zu) failed", who, sizes[k]);
        for (size_t off = 0; off < sizes[k]; off += 65536) p[off] = (char)(off >> 16);
        for (size_t off = 0; off < sizes[k]; off += 65536)
            if (p[off] != (char)(off >> 16)) DIE("%s: big block corrupted", who);
        free(p);
    }
}

static void *worker(void *arg) {
    uint64_t seed = 0x9E3779B97F4A7C15ull * ((uintptr_t)arg + 1);
    while (!atomic_load(&stop)) {
        churn(seed++, 2000, 0, "worker");
        atomic_fetch_add(&worker_ops, 2000);
    }
    return NULL;
}

static void *child_thread(void *arg) {
    churn(1000 + (uintptr_t)arg, 5000, 1, "child thread");
    return NULL;
}

static int child_main(int k, const int before[6]) {
    int runs[6];
    fork_handlers_runs(runs);
    /* the prepare handlers ran once more before the fork; the child handlers once more in the child */
    if (runs[0] != before[0] + 1 || runs[3] != before[3] + 1) DIE("child %d: a prepare handler did not run", k);
    if (runs[2] != before[2] + 1 || runs[5] != before[5] + 1) DIE("child %d: a child handler did not run", k);
    if (runs[1] != before[1] || runs[4] != before[4]) DIE("child %d: a parent handler ran in the child", k);
    pthread_t t[2];
    for (long i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, child_thread, (void *)i) != 0) DIE("child %d: pthread_create", k);
    churn(77 + (uint64_t)k, 10000, 1, "child");
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    fork_handlers_release();
    return 0;
}

int main(void) {
    alarm(240);
    fork_handlers_register_late();
    pthread_t th[NWORKERS];
    for (long i = 0; i < NWORKERS; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)i) != 0) DIE("pthread_create");
    int failures = 0;
    for (int k = 0; k < NFORK; k++) {
        struct timespec d = {0, 10 * 1000 * 1000};
        nanosleep(&d, NULL);
        int before[6];
        fork_handlers_runs(before);
        pid_t pid = fork();
        if (pid < 0) DIE("fork");
        if (pid == 0) _exit(child_main(k, before));
        int runs[6];
        fork_handlers_runs(runs);
        if (runs[1] != before[1] + 1 || runs[4] != before[4] + 1) DIE("fork %d: a parent handler did not run", k);
        int status = 0;
        int waited_ms = 0;
        for (;;) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid) break;
            if (r < 0) DIE("waitpid");
            if (waited_ms > 60000) {
                fprintf(stderr, "FAIL: child %d (pid %d) still running after 60 s: deadlock after fork; killing\n",
                        k, pid);
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                failures++;
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
    for (int i = 0; i < NWORKERS; i++) pthread_join(th[i], NULL);
    fork_handlers_release();
    printf("fork_handlers: %d forks, %d failed children, worker ops %ld\n", NFORK, failures,
           atomic_load(&worker_ops));
    return failures ? 1 : 0;
}
