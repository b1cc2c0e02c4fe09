/* Call-site profiles through the C API: three explicit sites with different sizes and lifetimes
 * (hak_alloc_at / hak_free_at), plus large blocks from malloc whose caller is sampled. Every block
 * is filled and checked before it is freed. The exit report (HAKMEM_STATS=json, written to
 * HAKMEM_STATS_FILE) is checked by tests/learning.rs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hakmem.h"

static int failures;

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i += 97) p[i] = (unsigned char)(seed + i);
}

static void check(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i += 97)
        if (p[i] != (unsigned char)(seed + i)) { failures++; return; }
}

__attribute__((noinline)) static void *big(size_t n) { return malloc(n); }

int main(void) {
    enum { N = 200000, KEEP = 64 };
    static void *ring[KEEP];
    static size_t ring_size[KEEP];
    for (unsigned i = 0; i < N; i++) {
        /* site 0x1000: 48-byte blocks freed at once; 0x2000: 1000 bytes, kept for 64 rounds;
         * 0x3000: 20000 bytes, freed at once. */
        unsigned char *a = hak_alloc_at(48, 0x1000);
        fill(a, 48, i);
        check(a, 48, i);
        hak_free_at(a, 0x1000);
        unsigned slot = i % KEEP;
        if (ring[slot]) {
            check(ring[slot], ring_size[slot], i - KEEP);
            hak_free_at(ring[slot], 0x2000);
        }
        ring[slot] = hak_alloc_at(1000, 0x2000);
        ring_size[slot] = 1000;
        fill(ring[slot], 1000, i);
        if (i % 4 == 0) {
            unsigned char *c = hak_alloc_at(20000, 0x3000);
            fill(c, 20000, i);
            check(c, 20000, i);
            hak_free_at(c, 0x3000);
        }
        if (i % 64 == 0) {
            unsigned char *d = big(600000);
            fill(d, 600000, i);
            check(d, 600000, i);
            free(d);
        }
    }
    for (unsigned s = 0; s < KEEP; s++) hak_free_at(ring[s], 0x2000);
    int evolved = hak_evolve_playbook();
    const char *learn = getenv("HAKMEM_LEARN");
    if ((learn == NULL) != (evolved == -1)) {
        printf("hak_evolve_playbook returned %d with HAKMEM_LEARN=%s\n", evolved, learn ? learn : "(unset)");
        failures++;
    }
    printf("sites: %d failures\n", failures);
    return failures != 0;
}
