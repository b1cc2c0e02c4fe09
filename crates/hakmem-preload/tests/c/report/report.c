/* A program for the exit report tests (tests/exit_report.rs). Each argument is a step, run in
 * order:
 *   big          64 blocks of 1 MiB (large blocks) alive at once, every page written, then freed
 *   sites        allocate_here() calls malloc for 256 large blocks, each freed at once
 *   small        allocate_small_here() calls malloc for 20000 blocks of 48 bytes, all alive at
 *                once (the thread cache misses every batch), then frees them
 *   close        fclose(stderr), as coreutils do before they exit
 *   reuse FILE   close(2), then open FILE, which gets descriptor 2, and write "data only\n" to it
 * It prints "report: ok" on stdout when every step worked. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The call site the report must name: module (this executable) + offset inside this function. */
__attribute__((noinline)) void *allocate_here(size_t n) {
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}

/* The same for sizes that malloc's fast path serves from the thread cache (its misses take the
 * site). */
__attribute__((noinline)) void *allocate_small_here(size_t n) {
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}

static int small(void) {
    enum { N = 20000 };
    static char *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = allocate_small_here(48);
        if (!blocks[i]) return 0;
        memset(blocks[i], i & 0xff, 48);
    }
    int ok = 1;
    for (int i = 0; i < N; i++) ok &= blocks[i][47] == (char)(i & 0xff);
    for (int i = 0; i < N; i++) free(blocks[i]);
    return ok;
}

static int big(void) {
    enum { N = 64, SIZE = 1 << 20 };
    char *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(SIZE);
        if (!blocks[i]) return 0;
        memset(blocks[i], i + 1, SIZE);
    }
    long sum = 0;
    for (int i = 0; i < N; i++) sum += blocks[i][SIZE - 1];
    for (int i = 0; i < N; i++) free(blocks[i]);
    return sum == (long)N * (N + 1) / 2;
}

static int sites(void) {
    for (int i = 0; i < 256; i++) {
        char *p = allocate_here(300000);
        if (!p) return 0;
        p[i] = 1;
        free(p);
    }
    return 1;
}

static int reuse(const char *path) {
    close(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd != 2) return 0;
    return write(fd, "data only\n", 10) == 10;
}

int main(int argc, char **argv) {
    int ok = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "big")) ok &= big();
        else if (!strcmp(argv[i], "sites")) ok &= sites();
        else if (!strcmp(argv[i], "small")) ok &= small();
        else if (!strcmp(argv[i], "close")) ok &= fclose(stderr) == 0;
        else if (!strcmp(argv[i], "reuse") && i + 1 < argc) ok &= reuse(argv[++i]);
        else ok = 0;
    }
    printf("report: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
