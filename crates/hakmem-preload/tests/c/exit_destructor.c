/* Threads whose pthread key destructor allocates after the allocator's own thread-exit work: the
 * destructor re-arms itself (pthread_setspecific from inside it), so it runs in each of glibc's
 * PTHREAD_DESTRUCTOR_ITERATIONS rounds; it allocates and frees in every round, and in the last one
 * also hands a block to the main thread, which frees it. NTHREADS (default 4000) such threads run
 * one after another. What the allocator keeps must stay bounded: after the first WARM threads,
 * VmRSS may grow by at most RSS_SLACK_MIB, and with hakmem (hak_stats_get) the live slabs by at
 * most SLAB_SLACK and the mapped SuperSlabs by at most SS_SLACK. */
#include "common.h"
#include "hakmem.h"
#include <limits.h>
#include <pthread.h>

#define WARM 200
#define RSS_SLACK_MIB 8
#define SLAB_SLACK 64
#define SS_SLACK 4

static pthread_key_t key;
static void *handed;
static size_t handed_n;

static void churn_a_little(uint64_t seed) {
    static const size_t sizes[] = {16, 80, 200, 1000, 5000, 40000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k] + (size_t)(seed % 8);
        void *p = malloc(n);
        if (!p) DIE("malloc(%zu) failed", n);
        fill_block(p, n, addr_seed(p, n));
        if (check_block(p, n, addr_seed(p, n)) != (size_t)-1) DIE("block of %zu bytes corrupted", n);
        free(p);
    }
}

static void destructor(void *v) {
    uintptr_t round = (uintptr_t)v;
    churn_a_little(round);
    if (round < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(key, (void *)(round + 1));
        return;
    }
    size_t n = 48 + round;
    handed = malloc(n);
    if (!handed) DIE("malloc in the last destructor round failed");
    handed_n = n;
    fill_block(handed, n, addr_seed(handed, n));
}

static void *thread_main(void *arg) {
    churn_a_little((uintptr_t)arg);
    pthread_setspecific(key, (void *)1);
    return NULL;
}

typedef int (*stats_fn)(struct hak_stats *);

/* Live slabs and mapped SuperSlabs, or -1s when the library is not hakmem. */
static void live(stats_fn get, long *slabs, long *superslabs) {
    *slabs = *superslabs = -1;
    if (!get) return;
    struct hak_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    if (get(&s) != 0) DIE("hak_stats_get");
    *slabs = (long)(s.slabs_acquired - s.slabs_released);
    *superslabs = (long)s.superslabs_live;
}

int main(int argc, char **argv) {
    long nthreads = argc > 1 ? atol(argv[1]) : 4000;
    stats_fn get = (stats_fn)dlsym(RTLD_DEFAULT, "hak_stats_get");
    if (pthread_key_create(&key, destructor) != 0) DIE("pthread_key_create");
    long rss0 = 0, slabs0 = 0, ss0 = 0;
    for (long t = 0; t < nthreads; t++) {
        pthread_t th;
        if (pthread_create(&th, NULL, thread_main, (void *)t) != 0) DIE("pthread_create at %ld", t);
        pthread_join(th, NULL);
        if (!handed) DIE("thread %ld: the destructor's last round did not run", t);
        if (check_block(handed, handed_n, addr_seed(handed, handed_n)) != (size_t)-1)
            DIE("thread %ld: the block from the last destructor round is corrupted", t);
        free(handed);
        handed = NULL;
        if (t + 1 == WARM) {
            rss0 = status_kib("VmRSS");
            live(get, &slabs0, &ss0);
        }
    }
    long rss = status_kib("VmRSS"), slabs, ss;
    live(get, &slabs, &ss);
    printf("exit_destructor: threads=%ld rss0_kib=%ld rss_kib=%ld slabs0=%ld slabs=%ld superslabs0=%ld superslabs=%ld\n",
           nthreads, rss0, rss, slabs0, slabs, ss0, ss);
    CHECK(rss - rss0 <= RSS_SLACK_MIB * 1024, "VmRSS grew by %ld KiB over %ld threads", rss - rss0, nthreads - WARM);
    if (get) {
        CHECK(slabs - slabs0 <= SLAB_SLACK, "live slabs grew from %ld to %ld", slabs0, slabs);
        CHECK(ss - ss0 <= SS_SLACK, "mapped SuperSlabs grew from %ld to %ld", ss0, ss);
    }
    printf("exit_destructor: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
}
