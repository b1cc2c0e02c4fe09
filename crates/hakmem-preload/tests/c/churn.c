/* Thread churn: NTHREADS (default 10000) short threads in batches of 8; each allocates and frees a few
 * hundred blocks of mixed sizes (content-checked), frees the blocks a thread of the previous batch
 * handed over and hands some of its own to the next batch. At the end VmRSS and VmHWM must stay under
 * LIMIT_MIB: per-thread caches must not lose memory when threads exit. */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>

#define BATCH 8
#define HANDOFF 24
static void *handoff[2][BATCH][HANDOFF];
static size_t handoff_sz[2][BATCH][HANDOFF];
static atomic_long total_ops;

struct arg { int gen, idx; uint64_t seed; };

static void *thread_main(void *vp) {
    struct arg *a = vp;
    uint64_t rs = a->seed;
    int in = (a->gen + 1) & 1, out = a->gen & 1;
    /* free what the previous batch left for us (allocated by a thread that has exited) */
    for (int k = 0; k < HANDOFF; k++) {
        void *p = handoff[in][a->idx][k];
        if (!p) continue;
        size_t n = handoff_sz[in][a->idx][k];
        size_t bad = check_block(p, n, addr_seed(p, n));
        if (bad != (size_t)-1) DIE("handed-over block size %zu corrupted at %zu", n, bad);
        free(p);
        handoff[in][a->idx][k] = NULL;
    }
    enum { L = 64 };
    void *live[L] = {0};
    size_t lsz[L] = {0};
    int nops = 200 + (int)(xrand(&rs) % 200);
    for (int op = 0; op < nops; op++) {
        unsigned i = (unsigned)(xrand(&rs) % L);
        if (live[i]) {
            size_t bad = check_block(live[i], lsz[i], addr_seed(live[i], lsz[i]));
            if (bad != (size_t)-1) DIE("block size %zu corrupted at %zu", lsz[i], bad);
            free(live[i]);
        }
        size_t n = rand_size(&rs);
        if (n > 65536) n = 65536 + n % 200000;
        live[i] = malloc(n);
        if (!live[i]) DIE("malloc(%zu) failed", n);
        lsz[i] = n;
        fill_block(live[i], n, addr_seed(live[i], n));
    }
    /* hand some blocks to the next batch, free the rest */
    int h = 0;
    for (unsigned i = 0; i < L; i++) {
        if (!live[i]) continue;
        if (h < HANDOFF && (i & 1)) {
            handoff[out][a->idx][h] = live[i];
            handoff_sz[out][a->idx][h] = lsz[i];
            h++;
        } else {
            free(live[i]);
        }
    }
    atomic_fetch_add(&total_ops, nops);
    return NULL;
}

int main(int argc, char **argv) {
    long nthreads = argc > 1 ? atol(argv[1]) : 10000;
    long limit_mib = argc > 2 ? atol(argv[2]) : 64;
    long rss0 = status_kib("VmRSS");
    struct arg args[BATCH];
    long mid_rss = 0;
    for (long t = 0, gen = 0; t < nthreads; t += BATCH, gen++) {
        pthread_t th[BATCH];
        for (int i = 0; i < BATCH; i++) {
            args[i].gen = (int)gen;
            args[i].idx = i;
            args[i].seed = 0x1234567ull * (uint64_t)(t + i + 1);
            if (pthread_create(&th[i], NULL, thread_main, &args[i]) != 0) DIE("pthread_create at %ld", t);
        }
        for (int i = 0; i < BATCH; i++) pthread_join(th[i], NULL);
        if (t == nthreads / 2 / BATCH * BATCH) mid_rss = status_kib("VmRSS");
    }
    for (int g = 0; g < 2; g++)
        for (int i = 0; i < BATCH; i++)
            for (int k = 0; k < HANDOFF; k++) free(handoff[g][i][k]);
    long rss = status_kib("VmRSS"), hwm = status_kib("VmHWM"), vsz = status_kib("VmSize");
    printf("churn: threads=%ld ops=%ld rss0_kib=%ld mid_rss_kib=%ld rss_kib=%ld hwm_kib=%ld vmsize_kib=%ld\n", nthreads,
           atomic_load(&total_ops), rss0, mid_rss, rss, hwm, vsz);
    CHECK(rss >= 0 && rss < limit_mib * 1024, "VmRSS %ld KiB >= %ld MiB after thread churn", rss, limit_mib);
    CHECK(hwm >= 0 && hwm < limit_mib * 1024, "VmHWM (peak RSS) %ld KiB >= %ld MiB during thread churn", hwm, limit_mib);
    printf("churn: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
}
