/* Shared helpers for the hakmem C ABI tests. Run with LD_PRELOAD=<lib>. */
#ifndef HAKMEM_TEST_COMMON_H
#define HAKMEM_TEST_COMMON_H
#ifndef _GNU_SOURCE /* g++ defines it */
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((unused)) static int g_failures = 0;
__attribute__((unused)) static int g_checks = 0;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        g_checks++;                                                             \
        if (!(cond)) {                                                          \
            g_failures++;                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
        }                                                                       \
    } while (0)

/* A check of behaviour hakmem promises beyond what common allocators do (errno on failure, C17
 * aligned_alloc): a failure only when the hakmem library is loaded, otherwise a warning. */
static int is_hakmem(void);
#define CHECK_STRICT(cond, ...)                                                 \
    do {                                                                        \
        g_checks++;                                                             \
        if (!(cond)) {                                                          \
            int h_ = is_hakmem();                                               \
            g_failures += h_;                                                   \
            fprintf(stderr, "%s %s:%d: %s: ", h_ ? "FAIL" : "WARN(not hakmem)", \
                    __FILE__, __LINE__, #cond);                                 \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
        }                                                                       \
    } while (0)

#define DIE(...)                                                                \
    do {                                                                        \
        fprintf(stderr, "FATAL %s:%d: ", __FILE__, __LINE__);                   \
        fprintf(stderr, __VA_ARGS__);                                           \
        fprintf(stderr, "\n");                                                  \
        exit(99);                                                               \
    } while (0)

/* Pattern byte for offset i of a block at address p of size n. */
static inline unsigned char pat(const void *p, size_t n, size_t i) {
    uint64_t x = (uint64_t)(uintptr_t)p ^ ((uint64_t)n * 0x9E3779B97F4A7C15ull) ^ (uint64_t)i;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return (unsigned char)x;
}

/* Fast word pattern (for big blocks): word j of a block with seed s. */
static inline uint64_t wpat(uint64_t s, size_t j) { return (s + j) * 0x9E3779B97F4A7C15ull; }

static inline void fill_block(void *p, size_t n, uint64_t seed) {
    uint64_t *w = (uint64_t *)p;
    size_t nw = n / 8;
    for (size_t j = 0; j < nw; j++) w[j] = wpat(seed, j);
    unsigned char *b = (unsigned char *)p;
    for (size_t i = nw * 8; i < n; i++) b[i] = (unsigned char)(seed + i);
}

/* Returns the first bad offset, or (size_t)-1 if the whole block matches. */
static inline size_t check_block(const void *p, size_t n, uint64_t seed) {
    const uint64_t *w = (const uint64_t *)p;
    size_t nw = n / 8;
    for (size_t j = 0; j < nw; j++)
        if (w[j] != wpat(seed, j)) return j * 8;
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = nw * 8; i < n; i++)
        if (b[i] != (unsigned char)(seed + i)) return i;
    return (size_t)-1;
}

static inline uint64_t addr_seed(const void *p, size_t n) {
    return (uint64_t)(uintptr_t)p * 0x2545F4914F6CDD1Dull ^ (uint64_t)n;
}

static inline uint64_t xrand(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* Random size: 90% 0..1 KiB, 9% ..64 KiB, 1% ..1 MiB. */
static inline size_t rand_size(uint64_t *s) {
    uint64_t r = xrand(s);
    unsigned k = (unsigned)(r % 100);
    r = xrand(s);
    if (k < 90) return (size_t)(r % 1025);
    if (k < 99) return (size_t)(r % (64 * 1024 + 1));
    return (size_t)(r % (1024 * 1024 + 1));
}

/* VmRSS / VmHWM / VmSize in KiB from /proc/self/status (reads with a static buffer, no malloc). */
__attribute__((unused)) static long status_kib(const char *field) {
    static char buf[8192];
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    size_t fl = strlen(field);
    char *p = buf;
    while ((p = strstr(p, field)) != NULL) {
        if ((p == buf || p[-1] == '\n') && p[fl] == ':') return strtol(p + fl + 1, NULL, 10);
        p += fl;
    }
    return -1;
}

/* Is the library exporting the hakmem API loaded (LD_PRELOAD=libhakmem.so)? */
__attribute__((unused)) static int is_hakmem(void) { return dlsym(RTLD_DEFAULT, "hak_abi_version") != NULL; }

#endif
