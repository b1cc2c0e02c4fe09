/* Memory return: allocate ~1 GiB in small blocks (64 B..1 KiB), touch them, free them all; VmRSS
 * must fall back to within start + SLACK_MIB. First freed by the allocating thread, then 3 cycles where
 * another thread frees them (the allocating thread then does a few thousand malloc/free pairs and
 * exits); RSS must not grow from cycle to cycle. */
#include "common.h"
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>

#define TOTAL (1ull << 30)
#define MAXB (TOTAL / 64 + 16)
static void **ptrs;
static size_t *szs;
static size_t nblocks;

static void allocate_all(uint64_t seed) {
    uint64_t rs = seed;
    size_t total = 0, n = 0;
    while (total < TOTAL) {
        size_t sz = 64 + (size_t)(xrand(&rs) % 961);
        unsigned char *p = malloc(sz);
        if (!p) DIE("malloc(%zu) failed after %zu MiB", sz, total >> 20);
        memset(p, (int)(n & 0xff), sz);
        *(uint64_t *)p = (uint64_t)(uintptr_t)p ^ sz;
        ptrs[n] = p;
        szs[n] = sz;
        total += sz;
        n++;
    }
    nblocks = n;
}

static void free_all(void) {
    for (size_t i = 0; i < nblocks; i++) {
        unsigned char *p = ptrs[i];
        if (*(uint64_t *)p != ((uint64_t)(uintptr_t)p ^ szs[i]) || p[szs[i] - 1] != (unsigned char)(i & 0xff))
            DIE("block %zu corrupted", i);
        free(p);
    }
    nblocks = 0;
}

/* A little allocation work: n blocks of 64..1024 B held at once, then freed (so an allocator's
 * slow paths, where deferred work such as purging happens, do run). */
static void churn_a_little(int n) {
    static void *held[5000];
    if (n > 5000) n = 5000;
    for (int i = 0; i < n; i++) {
        held[i] = malloc((size_t)(64 + i % 961));
        if (!held[i]) DIE("malloc");
        memset(held[i], 1, 64);
    }
    for (int i = 0; i < n; i++) free(held[i]);
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stage;

static void *allocator_thread(void *arg) {
    allocate_all((uint64_t)(uintptr_t)arg);
    pthread_mutex_lock(&mu);
    stage = 1;
    pthread_cond_broadcast(&cv);
    while (stage != 2) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    churn_a_little(5000); /* the owner collects remote frees in its slow path */
    return NULL;
}

/* RSS after freeing: give the allocator up to ~2 s (with a little allocation work) to give it back. */
static long settle_rss(long bound_kib) {
    long rss = status_kib("VmRSS");
    for (int i = 0; i < 20 && rss > bound_kib; i++) {
        struct timespec d = {0, 100 * 1000 * 1000};
        nanosleep(&d, NULL);
        churn_a_little(2000);
        rss = status_kib("VmRSS");
    }
    return rss;
}

int main(int argc, char **argv) {
    long slack = argc > 1 ? atol(argv[1]) : 64;
    ptrs = mmap(NULL, MAXB * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    szs = mmap(NULL, MAXB * sizeof(size_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (ptrs == MAP_FAILED || szs == MAP_FAILED) DIE("mmap");
    churn_a_little(1000);
    long start = status_kib("VmRSS");
    long bound = start + slack * 1024;

    allocate_all(1);
    long peak = status_kib("VmRSS");
    CHECK(peak - start > 900 * 1024, "RSS grew only %ld MiB for 1 GiB of touched blocks: test is not measuring", (peak - start) >> 10);
    free_all();
    churn_a_little(5000);
    long after = settle_rss(bound);
    printf("memreturn: same-thread start_kib=%ld peak_kib=%ld after_free_kib=%ld\n", start, peak, after);
    CHECK(after <= bound, "same-thread: RSS %ld MiB after freeing 1 GiB, start %ld MiB (+%ld allowed)", after >> 10, start >> 10, slack);

    long first = -1;
    for (int cycle = 0; cycle < 3; cycle++) {
        pthread_t t;
        stage = 0;
        if (pthread_create(&t, NULL, allocator_thread, (void *)(uintptr_t)(cycle + 7)) != 0) DIE("pthread_create");
        pthread_mutex_lock(&mu);
        while (stage != 1) pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
        peak = status_kib("VmRSS");
        free_all(); /* remote frees: this thread did not allocate them */
        pthread_mutex_lock(&mu);
        stage = 2;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
        pthread_join(t, NULL);
        churn_a_little(5000);
        /* Later cycles settle towards cycle 0's level (not just under the bound), so that the
           growth check below compares settled figures, not wherever the first read fell. */
        after = settle_rss(first < 0 || first + 16 * 1024 > bound ? bound : first + 16 * 1024);
        printf("memreturn: cross-thread cycle=%d peak_kib=%ld after_free_kib=%ld\n", cycle, peak, after);
        CHECK(peak - start > 900 * 1024, "cycle %d: RSS grew only %ld MiB", cycle, (peak - start) >> 10);
        CHECK(after <= bound, "cross-thread cycle %d: RSS %ld MiB after freeing 1 GiB, start %ld MiB (+%ld allowed)",
              cycle, after >> 10, start >> 10, slack);
        if (first < 0) first = after;
        CHECK(after <= first + 16 * 1024, "cross-thread cycle %d: RSS %ld MiB grew from cycle 0 (%ld MiB)", cycle,
              after >> 10, first >> 10);
    }
    printf("memreturn: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
}
