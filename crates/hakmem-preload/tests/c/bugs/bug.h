/* Planted-bug programs for tests/misuse.rs. Each program has one bug; run with the argument "ok"
 * it runs the same steps without the bug and must exit 0. Before the bug, a program prints
 * "expect-addr 0x<16 hex>" on stdout when it knows the address the report must name. */
#ifndef HAKMEM_BUG_H
#define HAKMEM_BUG_H
#ifndef _GNU_SOURCE /* g++ defines it */
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int ok_mode = 0;

/* Call first: sets ok_mode from argv[1] == "ok". */
static inline void bug_init(int argc, char **argv) { ok_mode = argc > 1 && strcmp(argv[1], "ok") == 0; }

/* The address the report must name, written and flushed before the bug. */
static inline void expect_addr(const void *p) {
    printf("expect-addr 0x%016lx\n", (unsigned long)(uintptr_t)p);
    fflush(stdout);
}

/* Reached only when the bug was not caught (or in ok mode). */
static inline int bug_end(void) {
    if (ok_mode) {
        printf("ok\n");
        return 0;
    }
    printf("bug not detected\n");
    return 3;
}

/* Keeps the compiler from dropping stores into freed memory. */
static inline void sink(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }
#endif
