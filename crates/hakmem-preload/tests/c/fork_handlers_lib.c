/* A library whose pthread_atfork handlers allocate and free (built with -shared, linked by
 * fork_handlers.c). Set "early" is registered by its constructor: the program's libraries are
 * initialised before LD_PRELOAD ones, so this is before the allocator registers its own handlers,
 * and "early"'s prepare handler runs after the allocator's, its parent and child handlers before
 * the allocator's. Set "late" is registered by fork_handlers_register_late(), called from main,
 * after the allocator's: its prepare handler runs first, its parent and child handlers last.
 *
 * Each handler frees what the set's previous handler kept (checking it first), then allocates
 * small blocks of several classes (enough of each that the thread cache must refill), mid blocks,
 * a 1 MiB and a 64 MiB block, fills and checks them, frees about half and keeps the rest. */
#include "common.h"
#include <pthread.h>

enum { PREPARE, PARENT, CHILD };

struct held {
    void *p;
    size_t n;
};

#define HELD 1024
struct set {
    const char *name;
    struct held held[HELD];
    int nheld;
    int runs[3];
    uint64_t seed;
};

static struct set early = {.name = "early", .seed = 1};
static struct set late = {.name = "late", .seed = 2};

/* Blocks above 1 MiB are filled one word per 64 KiB (a 64 MiB block touched in full in every
 * handler of every fork would make the test slow for nothing). */
static void fill_any(void *p, size_t n, uint64_t seed) {
    if (n <= (1u << 20)) {
        fill_block(p, n, seed);
        return;
    }
    for (size_t off = 0; off + 8 <= n; off += 65536) *(uint64_t *)((char *)p + off) = wpat(seed, off);
}

static int check_any(const void *p, size_t n, uint64_t seed) {
    if (n <= (1u << 20)) return check_block(p, n, seed) == (size_t)-1;
    for (size_t off = 0; off + 8 <= n; off += 65536)
        if (*(const uint64_t *)((const char *)p + off) != wpat(seed, off)) return 0;
    return 1;
}

static void release_held(struct set *s, const char *when) {
    for (int i = 0; i < s->nheld; i++) {
        struct held h = s->held[i];
        if (!check_any(h.p, h.n, addr_seed(h.p, h.n)))
            DIE("%s %s handler: block %p of %zu bytes kept by the previous handler is corrupted", s->name, when,
                h.p, h.n);
        free(h.p);
    }
    s->nheld = 0;
}

static void exercise(struct set *s, int which) {
    static const char *names[] = {"prepare", "parent", "child"};
    const char *when = names[which];
    release_held(s, when);
    static const size_t sizes[] = {24, 40, 72, 136, 520, 2000, 7000, 20000, 70000, 200000, 1u << 20, 64u << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        int count = n <= 7000 ? 150 : n < (1u << 20) ? 4 : 1;
        for (int i = 0; i < count; i++) {
            size_t m = n - (size_t)(xrand(&s->seed) % 8);
            void *p = malloc(m);
            if (!p) DIE("%s %s handler: malloc(%zu) failed", s->name, when, m);
            fill_any(p, m, addr_seed(p, m));
            if (!check_any(p, m, addr_seed(p, m))) DIE("%s %s handler: fresh block corrupted", s->name, when);
            if (i % 2 == 0 && s->nheld < HELD) {
                s->held[s->nheld].p = p;
                s->held[s->nheld].n = m;
                s->nheld++;
            } else {
                free(p);
            }
        }
    }
    s->runs[which]++;
}

static void early_prepare(void) { exercise(&early, PREPARE); }
static void early_parent(void) { exercise(&early, PARENT); }
static void early_child(void) { exercise(&early, CHILD); }
static void late_prepare(void) { exercise(&late, PREPARE); }
static void late_parent(void) { exercise(&late, PARENT); }
static void late_child(void) { exercise(&late, CHILD); }

__attribute__((constructor)) static void register_early(void) {
    if (pthread_atfork(early_prepare, early_parent, early_child) != 0) DIE("pthread_atfork (early)");
}

void fork_handlers_register_late(void) {
    if (pthread_atfork(late_prepare, late_parent, late_child) != 0) DIE("pthread_atfork (late)");
}

/* How often each set's handlers ran: runs[0..3] = early prepare, parent, child; runs[3..6] = late. */
void fork_handlers_runs(int runs[6]) {
    for (int i = 0; i < 3; i++) {
        runs[i] = early.runs[i];
        runs[3 + i] = late.runs[i];
    }
}

/* Frees what the handlers still hold (at the end of the parent and of each child). */
void fork_handlers_release(void) {
    release_held(&early, "final");
    release_held(&late, "final");
}
