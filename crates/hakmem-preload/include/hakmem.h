/* hakmem: a self-tuning general-purpose memory allocator.
 *
 * libhakmem.so exports the whole C malloc family (malloc, free, calloc, realloc, reallocarray,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size, free_sized,
 * free_aligned_sized), so `LD_PRELOAD=libhakmem.so prog` replaces the system allocator, and the
 * hak_* functions below. */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this header's ABI. hak_abi_version() returns the library's. */
#define HAKMEM_ABI_VERSION 1u

/* The ABI version the loaded library implements. */
uint32_t hak_abi_version(void);

/* hak_abi_check results. */
#define HAK_ABI_OK 0
#define HAK_ABI_VERSION_MISMATCH 1
#define HAK_ABI_STRUCT_MISMATCH 2

/* 0 (HAK_ABI_OK) if this library serves programs built against `version` whose struct hak_stats
 * is `struct_size` bytes: call as hak_abi_check(HAKMEM_ABI_VERSION, sizeof(struct hak_stats)). */
int hak_abi_check(uint32_t version, size_t struct_size);

/* Exported structs start with their size and ABI version so they can grow: set struct_size to
 * sizeof the struct before a call; the library fills at most that many bytes. */
struct hak_stats {
    size_t struct_size;
    uint32_t abi_version;
    uint32_t reserved;
    uint64_t refills;             /* thread-cache refills from slabs */
    uint64_t flushes;             /* thread-cache flushes back to slabs */
    uint64_t remote_frees;        /* frees of blocks owned by another thread */
    uint64_t slabs_acquired;
    uint64_t slabs_released;
    uint64_t superslabs_mapped;   /* total mapped from the OS so far */
    uint64_t superslabs_unmapped;
    uint64_t superslabs_live;     /* mapped now (in use or cached) */
    uint64_t large_allocs;
    uint64_t large_frees;
    uint64_t bigcache_hits;
    uint64_t bigcache_blocks;     /* cached now */
    uint64_t bigcache_warm_bytes; /* cached now with their pages */
    uint64_t purged_bytes;        /* returned to the OS with MADV_DONTNEED so far */
    uint64_t mmap_failures;
    /* Bytes now, and the most so far (each exact: counted where memory changes hands in bulk). */
    uint64_t mapped_bytes;        /* mapped from the OS: slabs, large blocks, caches, heaps */
    uint64_t mapped_bytes_peak;
    uint64_t slab_bytes;          /* blocks of the slabs threads hold: in use, cached or free */
    uint64_t slab_bytes_peak;
    uint64_t large_bytes;         /* large blocks in use (their mappings, header page included) */
    uint64_t large_bytes_peak;
    uint64_t large_bytes_total;   /* large blocks allocated so far, growth by realloc included */
};

/* Fills *out; returns 0, or HAK_ABI_STRUCT_MISMATCH if out is NULL or struct_size too small.
 * A struct_size from an older, shorter struct hak_stats gets the fields it has. */
int hak_stats_get(struct hak_stats *out);

struct hak_config {
    size_t struct_size;
    uint32_t abi_version;
    uint32_t reserved;
    uint64_t purge_delay_ms;      /* HAKMEM_PURGE_DELAY_MS */
    uint64_t ss_warm_max;         /* HAKMEM_SS_WARM */
    uint64_t ss_cold_max;         /* HAKMEM_SS_COLD */
    uint64_t bigcache_bytes;      /* HAKMEM_BIGCACHE_MB in bytes */
    uint32_t bigcache_enabled;    /* !HAKMEM_DISABLE_BIGCACHE */
    uint32_t safe_free;           /* HAKMEM_SAFE_FREE */
};

/* Fills *out with the configuration in force; returns 0 or HAK_ABI_STRUCT_MISMATCH. */
int hak_config_get(struct hak_config *out);

/* malloc(size), recording `site` (any stable value, usually a return address) as the call site. */
void *hak_alloc_at(size_t size, uintptr_t site);

/* free(ptr), recording `site` as the call site. */
void hak_free_at(void *ptr, uintptr_t site);

/* With learning on (HAKMEM_LEARN=elo|ucb1): one playbook evolution step now (the curator retires
 * proven strategies below the top 6, the generator adds a one- or two-knob challenger). Returns
 * how many were retired, or -1 when learning is off. Epochs also evolve the playbook by themselves. */
int hak_evolve_playbook(void);

#ifdef __cplusplus
}
#endif
#endif /* HAKMEM_H */
