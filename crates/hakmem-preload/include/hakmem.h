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

/* malloc(size), recording `site` (any stable value, usually a return address) as the call site. */
void *hak_alloc_at(size_t size, uintptr_t site);

/* free(ptr), recording `site` as the call site. */
void hak_free_at(void *ptr, uintptr_t site);

#ifdef __cplusplus
}
#endif
#endif /* HAKMEM_H */
