/* C++'s operator new and delete under the preload: every form binds to the library that provides
 * malloc, contents survive (one thread, and blocks made by one thread and deleted by another), and
 * failure behaves as the standard says: std::bad_alloc after the new-handler, nullptr from the
 * nothrow forms, for the plain and the aligned forms alike. Prints "cxx: N checks, M failures". */
#include "common.h"

#include <atomic>
#include <new>
#include <pthread.h>

static const char *object_of(const char *symbol) {
    Dl_info info;
    void *f = dlsym(RTLD_DEFAULT, symbol);
    if (!f || !dladdr(f, &info) || !info.dli_fname) return "?";
    return info.dli_fname;
}

static void check_bindings(void) {
    const char *malloc_from = object_of("malloc");
    const char *forms[] = {"_Znwm",
                           "_Znam",
                           "_ZnwmRKSt9nothrow_t",
                           "_ZnamRKSt9nothrow_t",
                           "_ZnwmSt11align_val_t",
                           "_ZnamSt11align_val_t",
                           "_ZnwmSt11align_val_tRKSt9nothrow_t",
                           "_ZnamSt11align_val_tRKSt9nothrow_t",
                           "_ZdlPv",
                           "_ZdaPv",
                           "_ZdlPvm",
                           "_ZdaPvm",
                           "_ZdlPvRKSt9nothrow_t",
                           "_ZdaPvRKSt9nothrow_t",
                           "_ZdlPvSt11align_val_t",
                           "_ZdaPvSt11align_val_t",
                           "_ZdlPvmSt11align_val_t",
                           "_ZdaPvmSt11align_val_t",
                           "_ZdlPvSt11align_val_tRKSt9nothrow_t",
                           "_ZdaPvSt11align_val_tRKSt9nothrow_t"};
    for (const char *f : forms)
        CHECK_STRICT(strcmp(object_of(f), malloc_from) == 0, "%s is from %s, malloc from %s", f,
                     object_of(f), malloc_from);
}

/* new[] and delete[] of random sizes, contents checked before each delete. */
static void churn(uint64_t seed, int rounds) {
    enum { SLOTS = 512 };
    char *slot[SLOTS] = {};
    size_t len[SLOTS] = {};
    for (int r = 0; r < rounds; r++) {
        int i = (int)(xrand(&seed) % SLOTS);
        if (slot[i]) {
            size_t bad = check_block(slot[i], len[i], addr_seed(slot[i], len[i]));
            CHECK(bad == (size_t)-1, "block of %zu bytes changed at %zu", len[i], bad);
            if (xrand(&seed) & 1)
                delete[] slot[i];
            else
                ::operator delete[](slot[i], len[i]);
        }
        len[i] = rand_size(&seed);
        slot[i] = new char[len[i]];
        fill_block(slot[i], len[i], addr_seed(slot[i], len[i]));
    }
    for (int i = 0; i < SLOTS; i++)
        if (slot[i]) {
            CHECK(check_block(slot[i], len[i], addr_seed(slot[i], len[i])) == (size_t)-1,
                  "final check of %zu bytes", len[i]);
            delete[] slot[i];
        }
}

static void *churn_thread(void *arg) {
    churn((uint64_t)(uintptr_t)arg, 200000);
    return NULL;
}

/* One thread makes objects with new, another checks and deletes them. */
struct Node {
    size_t n;
    uint64_t words[30];
};
enum { HANDOFF = 100000 };
static std::atomic<Node *> handoff[64];

static void *producer(void *) {
    for (int k = 0; k < HANDOFF; k++) {
        Node *x = new Node;
        x->n = (size_t)k;
        for (int j = 0; j < 30; j++) x->words[j] = wpat((uint64_t)k, (size_t)j);
        std::atomic<Node *> &s = handoff[k % 64];
        Node *expected = nullptr;
        while (!s.compare_exchange_weak(expected, x)) expected = nullptr;
    }
    return NULL;
}

static void *consumer(void *) {
    for (int k = 0; k < HANDOFF; k++) {
        std::atomic<Node *> &s = handoff[k % 64];
        Node *x;
        while (!(x = s.exchange(nullptr))) {}
        CHECK(x->n == (size_t)k, "node %d arrived as %zu", k, x->n);
        for (int j = 0; j < 30; j++)
            if (x->words[j] != wpat((uint64_t)k, (size_t)j)) {
                CHECK(0, "node %d word %d changed", k, j);
                break;
            }
        delete x;
    }
    return NULL;
}

struct alignas(64) Line {
    char b[64];
};
struct alignas(4096) Page {
    char b[100];
};

static int handler_calls;
static void handler(void) {
    handler_calls++;
    std::set_new_handler(nullptr); /* next failure throws */
}

static void check_failure(void) {
    volatile size_t huge = (size_t)1 << 62;
    bool threw = false;
    try {
        void *p = ::operator new(huge);
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw, "operator new(2^62) did not throw std::bad_alloc");

    threw = false;
    try {
        char *p = new char[huge];
        delete[] p;
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw, "new char[2^62] did not throw std::bad_alloc");

    handler_calls = 0;
    std::set_new_handler(handler);
    threw = false;
    try {
        void *p = ::operator new(huge);
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw && handler_calls == 1, "with a new-handler: threw %d, handler called %d times",
          (int)threw, handler_calls);
    std::set_new_handler(nullptr);

    CHECK(::operator new(huge, std::nothrow) == nullptr, "nothrow new(2^62) is not null");
    CHECK(::operator new[](huge, std::nothrow) == nullptr, "nothrow new[](2^62) is not null");

    threw = false;
    try {
        void *p = ::operator new(huge, std::align_val_t(64));
        ::operator delete(p, std::align_val_t(64));
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw, "aligned operator new(2^62) did not throw std::bad_alloc");
    threw = false;
    try {
        void *p = ::operator new[](huge, std::align_val_t(4096));
        ::operator delete[](p, std::align_val_t(4096));
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw, "aligned operator new[](2^62) did not throw std::bad_alloc");
    CHECK(::operator new(huge, std::align_val_t(64), std::nothrow) == nullptr,
          "aligned nothrow new(2^62) is not null");
    CHECK(::operator new[](huge, std::align_val_t(4096), std::nothrow) == nullptr,
          "aligned nothrow new[](2^62) is not null");

    /* The nothrow forms call the new-handler too before they give up. */
    handler_calls = 0;
    std::set_new_handler(handler);
    CHECK(::operator new[](huge, std::nothrow) == nullptr && handler_calls == 1,
          "nothrow new[] with a new-handler: handler called %d times", handler_calls);
    std::set_new_handler(nullptr);

    /* After all that, allocation still works. */
    char *p = new char[100];
    fill_block(p, 100, 7);
    CHECK(check_block(p, 100, 7) == (size_t)-1, "block after failures");
    delete[] p;
}

static void check_aligned(void) {
    for (int r = 0; r < 1000; r++) {
        Line *l = new Line[3];
        Page *g = new Page;
        Page *h = new (std::nothrow) Page[2];
        CHECK(((uintptr_t)l & 63) == 0, "Line at %p", (void *)l);
        CHECK(((uintptr_t)g & 4095) == 0, "Page at %p", (void *)g);
        CHECK(h && ((uintptr_t)h & 4095) == 0, "Page[2] at %p", (void *)h);
        memset(l, 0x5a, sizeof(Line) * 3);
        memset(g->b, 0xa5, sizeof g->b);
        CHECK(((unsigned char *)l)[191] == 0x5a && (unsigned char)g->b[99] == 0xa5, "aligned contents");
        delete[] l;
        delete g;
        delete[] h;
    }
    void *z1 = ::operator new(0), *z2 = ::operator new(0);
    CHECK(z1 && z2 && z1 != z2, "operator new(0) twice: %p %p", z1, z2);
    ::operator delete(z1, (size_t)0);
    ::operator delete(z2);
    ::operator delete(nullptr);
    ::operator delete[](nullptr);
}

int main(void) {
    check_bindings();
    churn(1, 200000);
    pthread_t t[4];
    pthread_create(&t[0], NULL, churn_thread, (void *)(uintptr_t)2);
    pthread_create(&t[1], NULL, churn_thread, (void *)(uintptr_t)3);
    pthread_create(&t[2], NULL, producer, NULL);
    pthread_create(&t[3], NULL, consumer, NULL);
    for (pthread_t x : t) pthread_join(x, NULL);
    check_aligned();
    /* Some allocators' own operator new aborts on failure (mimalloc built as C): the failure
     * checks run where hakmem or the C++ runtime provides it. */
    if (is_hakmem() || strstr(object_of("_Znwm"), "libstdc++"))
        check_failure();
    else
        printf("cxx: failure checks skipped: operator new is %s's\n", object_of("_Znwm"));
    printf("cxx: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures != 0;
}
