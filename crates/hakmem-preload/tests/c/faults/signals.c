/* Signals during allocation: a thread allocates and frees (small, medium and large blocks, with
 * content checks) in a loop while the main thread sends it SIGUSR1 10^4 times, each time waiting
 * until the handler has run (the handler only counts; it does not allocate). No deadlock, no
 * corruption; the caller's timeout catches a hang. Prints "signals: delivered=<n> ops=<m>". */
#include "../common.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#define SIGNALS 10000
static atomic_long handled;
static atomic_long ops;
static atomic_int stop;
static atomic_int ready;

static void on_usr1(int sig) {
    (void)sig;
    atomic_fetch_add(&handled, 1);
}

static void *worker(void *arg) {
    (void)arg;
    uint64_t rs = 42;
    enum { L = 256 };
    void *live[L] = {0};
    size_t lsz[L] = {0};
    atomic_store(&ready, 1);
    while (!atomic_load(&stop)) {
        unsigned i = (unsigned)(xrand(&rs) % L);
        if (live[i]) {
            size_t bad = check_block(live[i], lsz[i], addr_seed(live[i], lsz[i]));
            if (bad != (size_t)-1) DIE("block of %zu corrupted at %zu", lsz[i], bad);
            free(live[i]);
            live[i] = NULL;
        } else {
            size_t n = rand_size(&rs);
            void *p = (xrand(&rs) & 7) == 0 ? calloc(1, n) : malloc(n);
            if (!p) DIE("malloc(%zu)", n);
            fill_block(p, n, addr_seed(p, n));
            live[i] = p;
            lsz[i] = n;
        }
        atomic_fetch_add(&ops, 1);
    }
    for (unsigned i = 0; i < L; i++) free(live[i]);
    return NULL;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0) DIE("sigaction");
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) DIE("pthread_create");
    while (!atomic_load(&ready)) sched_yield();
    for (long k = 0; k < SIGNALS; k++) {
        long before = atomic_load(&ops);
        if (pthread_kill(t, SIGUSR1) != 0) DIE("pthread_kill");
        /* wait for the handler, and for the worker to allocate again, so every signal interrupts
         * the worker somewhere new (on a loaded machine it may otherwise not run in between) */
        while (atomic_load(&handled) <= k) sched_yield();
        while (atomic_load(&ops) == before) sched_yield();
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    long h = atomic_load(&handled), o = atomic_load(&ops);
    printf("signals: delivered=%ld ops=%ld\n", h, o);
    CHECK(h == SIGNALS, "handled %ld of %d signals", h, SIGNALS);
    CHECK(o >= SIGNALS, "worker did only %ld operations", o);
    printf("signals: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
}
