/* Prints the configuration in force (hak_config_get) and whether the mapping of a 4 MiB block is
 * advised transparent huge pages (the "hg" flag in /proc/self/smaps), on one line:
 * "settings: thp_advised=1 purge_delay_ms=50 ...". Run under LD_PRELOAD, linked with -lhakmem. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

/* 1 if the mapping holding p has the VmFlags "hg" (MADV_HUGEPAGE), 0 if not, -1 if not found. */
static int huge_advised(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    char line[1024];
    int inside = 0, result = -1;
    uintptr_t a = (uintptr_t)p;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            inside = a >= lo && a < hi;
        } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            result = strstr(line, " hg") != NULL;
            break;
        }
    }
    fclose(f);
    return result;
}

int main(void) {
    size_t n = 4 << 20;
    char *p = malloc(n);
    if (!p)
        return 1;
    memset(p, 1, n);
    int hg = huge_advised(p);
    struct hak_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    if (hak_config_get(&c) != 0) {
        printf("hak_config_get failed\n");
        return 1;
    }
    printf("settings: thp_advised=%d purge_delay_ms=%llu ss_warm_max=%llu ss_cold_max=%llu "
           "bigcache_bytes=%llu bigcache_enabled=%u safe_free=%u\n",
           hg, (unsigned long long)c.purge_delay_ms, (unsigned long long)c.ss_warm_max,
           (unsigned long long)c.ss_cold_max, (unsigned long long)c.bigcache_bytes,
           c.bigcache_enabled, c.safe_free);
    free(p);
    return 0;
}
