/* Memory held while idle. Each mode prints `idle: rss_kib=N` (VmRSS when the program is done) and
 * its own figures; the test compares them with bounds, or with the same program under glibc.
 *   idle mixed     8 threads each allocate, touch and free 20,000 blocks of mixed sizes (16 B to
 *                  2 MiB, log-uniform, up to 64 live at once), then join; the program idles 1.2 s,
 *                  makes malloc/free calls of sizes 16 B to 4 MiB for 100 ms, idles 1 s.
 *   idle orphans   3 rounds: 16 threads each allocate 2,000 blocks of mixed sizes and exit; main
 *                  frees them all, idles 0.5 s and makes calls for 100 ms.
 *   idle hold N S  N threads each malloc and touch one block of S bytes, keep it, and sit idle; then
 *                  they free it and sit idle again, main calls malloc_trim(0) and idles 0.3 s.
 *                  Prints rss_kib while the blocks are held (held_kib) and after (rss_kib), as
 *                  increases over the RSS before the threads started.
 *   idle scatter [thread]
 *                  allocates and writes 2 MiB of blocks of each of 16, 24, 40, 64, 96, 160 and
 *                  256 KiB, frees all but every eighth, idles 0.2 s three times with 60 ms of work in
 *                  small blocks after each; prints the RSS with every block written (full_kib) and at the end
 *                  (rss_kib) as increases over the start, and the bytes still held (kept_kib). With
 *                  `thread`, a thread allocates and frees the blocks and exits before the idling (its
 *                  slabs are orphans), and main frees the kept blocks at the end. Either way, as
 *                  many blocks again are then written, checked and freed. */
#include "common.h"
#include <malloc.h>
#include <pthread.h>
#include <time.h>

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1) break;
    fclose(f);
    return v;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static size_t mixed_size(uint64_t *rs) {
    /* log-uniform over 2^4 .. 2^21 */
    unsigned shift = 4 + (unsigned)(xrand(rs) % 17);
    size_t lo = (size_t)1 << shift;
    return lo + (size_t)(xrand(rs) % lo);
}

static void touch(unsigned char *p, size_t n, unsigned char v) {
    for (size_t i = 0; i < n; i += 4096) p[i] = v;
    p[n - 1] = v;
}

static void verify(unsigned char *p, size_t n, unsigned char v) {
    for (size_t i = 0; i < n; i += 4096)
        if (p[i] != v) DIE("block %p of %zu bytes corrupted at %zu", (void *)p, n, i);
    if (p[n - 1] != v) DIE("block %p of %zu bytes corrupted at its end", (void *)p, n);
}

#define LIVE 64
static void *mixed_worker(void *arg) {
    uint64_t rs = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    unsigned char *live[LIVE] = {0};
    size_t len[LIVE] = {0};
    for (int i = 0; i < 20000; i++) {
        int k = (int)(xrand(&rs) % LIVE);
        if (live[k]) {
            verify(live[k], len[k], (unsigned char)k);
            free(live[k]);
        }
        len[k] = mixed_size(&rs);
        live[k] = malloc(len[k]);
        if (!live[k]) DIE("malloc(%zu)", len[k]);
        touch(live[k], len[k], (unsigned char)k);
    }
    for (int k = 0; k < LIVE; k++) {
        if (live[k]) verify(live[k], len[k], (unsigned char)k);
        free(live[k]);
    }
    return NULL;
}

/* The program at work again for a while: 200 malloc/free calls over every size from 16 B to
 * 4 MiB, 0.5 ms apart (100 ms; the purge delay counts the time a program runs, not the time it
 * sleeps). */
static void a_while_of_calls(void) {
    for (int i = 0; i < 200; i++) {
        size_t n = (size_t)16 << (i % 19);
        n += (size_t)(i * 37) % n;
        unsigned char *p = malloc(n);
        if (!p) DIE("malloc(%zu)", n);
        touch(p, n, 7);
        verify(p, n, 7);
        free(p);
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
}

static int mode_mixed(void) {
    pthread_t t[8];
    for (long i = 0; i < 8; i++) pthread_create(&t[i], NULL, mixed_worker, (void *)(i + 1));
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    printf("idle: after_join_kib=%ld\n", rss_kib());
    sleep_ms(1200);
    a_while_of_calls();
    sleep_ms(1000);
    printf("idle: rss_kib=%ld\n", rss_kib());
    return 0;
}

#define ORPHAN_BLOCKS 2000
static void *orphan_worker(void *arg) {
    void **out = arg;
    uint64_t rs = (uint64_t)(uintptr_t)out;
    for (int i = 0; i < ORPHAN_BLOCKS; i++) {
        size_t n = mixed_size(&rs) / 32 + 1; /* 1 B .. 64 KiB */
        unsigned char *p = malloc(n);
        if (!p) DIE("malloc(%zu)", n);
        touch(p, n, (unsigned char)i);
        out[i] = p;
        out[ORPHAN_BLOCKS + i] = (void *)n;
    }
    return NULL;
}

static int mode_orphans(void) {
    static void *blocks[16][2 * ORPHAN_BLOCKS];
    for (int round = 0; round < 3; round++) {
        pthread_t t[16];
        for (int i = 0; i < 16; i++) pthread_create(&t[i], NULL, orphan_worker, blocks[i]);
        for (int i = 0; i < 16; i++) pthread_join(t[i], NULL);
        for (int i = 0; i < 16; i++)
            for (int j = 0; j < ORPHAN_BLOCKS; j++) {
                verify(blocks[i][j], (size_t)blocks[i][ORPHAN_BLOCKS + j], (unsigned char)j);
                free(blocks[i][j]);
            }
        sleep_ms(500);
        a_while_of_calls();
        printf("idle: round=%d rss_kib=%ld\n", round, rss_kib());
    }
    sleep_ms(300);
    a_while_of_calls();
    printf("idle: rss_kib=%ld\n", rss_kib());
    return 0;
}

static size_t hold_size;
static pthread_barrier_t held, go_free, freed, go_exit;
static void *hold_worker(void *arg) {
    (void)arg;
    unsigned char *p = malloc(hold_size);
    if (!p) DIE("malloc(%zu)", hold_size);
    memset(p, 0x5a, hold_size);
    pthread_barrier_wait(&held);
    pthread_barrier_wait(&go_free);
    for (size_t i = 0; i < hold_size; i++)
        if (p[i] != 0x5a) DIE("byte %zu of a held block changed", i);
    free(p);
    pthread_barrier_wait(&freed);
    pthread_barrier_wait(&go_exit);
    return NULL;
}

static int mode_hold(int n, size_t size) {
    pthread_t t[1024];
    if (n > 1024) n = 1024;
    hold_size = size;
    pthread_barrier_init(&held, NULL, (unsigned)n + 1);
    pthread_barrier_init(&go_free, NULL, (unsigned)n + 1);
    pthread_barrier_init(&freed, NULL, (unsigned)n + 1);
    pthread_barrier_init(&go_exit, NULL, (unsigned)n + 1);
    /* Warm up this thread and the thread machinery, so the baseline holds the fixed costs. */
    free(malloc(size));
    long base = rss_kib();
    for (int i = 0; i < n; i++) {
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, 64 * 1024);
        if (pthread_create(&t[i], &a, hold_worker, NULL)) DIE("pthread_create");
    }
    pthread_barrier_wait(&held);
    long with_blocks = rss_kib();
    pthread_barrier_wait(&go_free);
    pthread_barrier_wait(&freed);
    malloc_trim(0);
    sleep_ms(300);
    malloc_trim(0);
    long after = rss_kib();
    pthread_barrier_wait(&go_exit);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    printf("idle: held_kib=%ld\n", with_blocks - base);
    printf("idle: rss_kib=%ld\n", after - base);
    return 0;
}

/* Some work in small blocks for about 60 ms: twenty times 4,000 blocks of 64 B held at once, then
 * freed, 3 ms apart (so the allocator's slow paths, where deferred work such as purging happens,
 * run while the program does). */
static void some_work(void) {
    static void *held[4000];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 4000; i++) {
            held[i] = malloc(64);
            if (!held[i]) DIE("malloc(64)");
            memset(held[i], i, 64);
        }
        for (int i = 0; i < 4000; i++) free(held[i]);
        sleep_ms(3);
    }
}

#define SCATTER_SIZES 7
static const size_t sizes[SCATTER_SIZES] = {16 << 10, 24 << 10, 40 << 10, 64 << 10,
                                            96 << 10, 160 << 10, 256 << 10};
static unsigned char *blocks[SCATTER_SIZES][128];
static int count[SCATTER_SIZES];
static long kept, full;

/* Writes the blocks, then frees all but every eighth. */
static void *scatter_blocks(void *arg) {
    (void)arg;
    for (int s = 0; s < SCATTER_SIZES; s++) {
        count[s] = (int)((2u << 20) / sizes[s]);
        for (int i = 0; i < count[s]; i++) {
            blocks[s][i] = malloc(sizes[s]);
            if (!blocks[s][i]) DIE("malloc(%zu)", sizes[s]);
            memset(blocks[s][i], (unsigned char)(s * 16 + i), sizes[s]);
        }
    }
    full = rss_kib();
    for (int s = 0; s < SCATTER_SIZES; s++)
        for (int i = 0; i < count[s]; i++) {
            if (i % 8 == 0) {
                kept += (long)(sizes[s] >> 10);
                continue;
            }
            free(blocks[s][i]);
        }
    return NULL;
}

static int mode_scatter(int in_thread) {
    free(malloc(64));
    long base = rss_kib();
    if (in_thread) {
        pthread_t t;
        if (pthread_create(&t, NULL, scatter_blocks, NULL)) DIE("pthread_create");
        pthread_join(t, NULL);
    } else {
        scatter_blocks(NULL);
    }
    for (int round = 0; round < 3; round++) {
        sleep_ms(200);
        some_work();
    }
    long after = rss_kib();
    for (int s = 0; s < SCATTER_SIZES; s++)
        for (int i = 0; i < count[s]; i += 8) {
            unsigned char *p = blocks[s][i];
            for (size_t k = 0; k < sizes[s]; k++)
                if (p[k] != (unsigned char)(s * 16 + i)) DIE("byte %zu of a kept block changed", k);
            free(p);
        }
    /* The purged blocks serve again (from the orphans, which this thread adopts, in `thread`
     * mode): every one written whole and checked. */
    for (int s = 0; s < SCATTER_SIZES; s++) {
        for (int i = 0; i < count[s]; i++) {
            blocks[s][i] = malloc(sizes[s]);
            if (!blocks[s][i]) DIE("malloc(%zu)", sizes[s]);
            memset(blocks[s][i], (unsigned char)(s + i), sizes[s]);
        }
        for (int i = 0; i < count[s]; i++) {
            for (size_t k = 0; k < sizes[s]; k++)
                if (blocks[s][i][k] != (unsigned char)(s + i)) DIE("byte %zu of a block reused changed", k);
            free(blocks[s][i]);
        }
    }
    printf("idle: full_kib=%ld\n", full - base);
    printf("idle: kept_kib=%ld\n", kept);
    printf("idle: rss_kib=%ld\n", after - base);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "mixed")) return mode_mixed();
    if (argc >= 2 && !strcmp(argv[1], "orphans")) return mode_orphans();
    if (argc >= 2 && !strcmp(argv[1], "scatter"))
        return mode_scatter(argc >= 3 && !strcmp(argv[2], "thread"));
    if (argc >= 4 && !strcmp(argv[1], "hold")) return mode_hold(atoi(argv[2]), (size_t)atol(argv[3]));
    fprintf(stderr, "usage: idle mixed | orphans | scatter [thread] | hold THREADS SIZE\n");
    return 2;
}
