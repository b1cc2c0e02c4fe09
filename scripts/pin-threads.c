// Takes the scheduler out of a two-core comparison: an LD_PRELOAD shim that pins each thread a
// program creates to one CPU, alternating 0, 1, 0, ..., and a thread created by a pinned thread to
// its creator's CPU (so Larson's chains of successor threads each keep one core). Run it before the
// allocator, with scripts/live-peak.c between them if wanted:
//
//   gcc -O2 -shared -fPIC -o /tmp/pin-threads.so scripts/pin-threads.c -ldl
//   LD_PRELOAD="/tmp/pin-threads.so target/release/libhakmem.so" PROGRAM
//
// The main thread is left as it is. On a machine with more than two CPUs, only CPUs 0 and 1 are used.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

struct start {
    void *(*fn)(void *);
    void *arg;
    int cpu;
};

static int created;

static void *pinned_start(void *p) {
    struct start s = *(struct start *)p;
    free(p);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(s.cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
    return s.fn(s.arg);
}

int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
    static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (!real)
        real = dlsym(RTLD_NEXT, "pthread_create");
    struct start *s = malloc(sizeof *s);
    if (!s)
        return real(th, attr, fn, arg);
    s->fn = fn;
    s->arg = arg;
    cpu_set_t mine;
    CPU_ZERO(&mine);
    if (sched_getaffinity(0, sizeof mine, &mine) == 0 && CPU_COUNT(&mine) == 1)
        s->cpu = CPU_ISSET(0, &mine) ? 0 : 1;
    else
        s->cpu = __atomic_fetch_add(&created, 1, __ATOMIC_RELAXED) % 2;
    int rc = real(th, attr, pinned_start, s);
    if (rc != 0)
        free(s);
    return rc;
}
