/* The hakmem C API, linked with -lhakmem (no LD_PRELOAD): hak_abi_version, hak_abi_check with the
 * right and a wrong version and struct size, hak_stats_get with a full, a header-only and a too
 * small struct_size (the library must not write past struct_size), hak_alloc_at / hak_free_at. */
#include "../common.h"
#include "hakmem.h"

int main(void) {
    CHECK(hak_abi_version() == HAKMEM_ABI_VERSION, "library ABI %u, header %u", hak_abi_version(),
          HAKMEM_ABI_VERSION);
    CHECK(hak_abi_check(HAKMEM_ABI_VERSION, sizeof(struct hak_stats)) == HAK_ABI_OK, "matching ABI refused");
    int r = hak_abi_check(HAKMEM_ABI_VERSION + 1, sizeof(struct hak_stats));
    CHECK(r == HAK_ABI_VERSION_MISMATCH, "version %u + 1 accepted or wrong code: %d", HAKMEM_ABI_VERSION, r);
    r = hak_abi_check(0, sizeof(struct hak_stats));
    CHECK(r == HAK_ABI_VERSION_MISMATCH, "version 0: %d", r);
    r = hak_abi_check(HAKMEM_ABI_VERSION, 8);
    CHECK(r == HAK_ABI_STRUCT_MISMATCH, "struct_size 8: %d", r);

    /* some work so the counters move */
    void *keep[1000];
    for (int i = 0; i < 1000; i++) keep[i] = hak_alloc_at((size_t)(i * 37 % 5000) + 1, (uintptr_t)&main);
    void *big = malloc(8u << 20);
    CHECK(big != NULL, "malloc 8 MiB");
    memset(big, 1, 8u << 20);
    free(big);
    for (int i = 0; i < 1000; i++) hak_free_at(keep[i], (uintptr_t)&main);

    /* full struct, with a guard after it */
    struct {
        struct hak_stats s;
        unsigned char guard[64];
    } full;
    memset(&full, 0xEE, sizeof full);
    full.s.struct_size = sizeof full.s;
    r = hak_stats_get(&full.s);
    CHECK(r == 0, "hak_stats_get full: %d", r);
    CHECK(full.s.struct_size == sizeof full.s, "struct_size changed to %zu", full.s.struct_size);
    CHECK(full.s.abi_version == HAKMEM_ABI_VERSION, "abi_version %u", full.s.abi_version);
    CHECK(full.s.large_allocs >= 1 && full.s.large_frees >= 1, "large allocs %llu frees %llu",
          (unsigned long long)full.s.large_allocs, (unsigned long long)full.s.large_frees);
    CHECK(full.s.superslabs_mapped >= 1, "superslabs_mapped %llu", (unsigned long long)full.s.superslabs_mapped);
    CHECK(full.s.superslabs_live <= full.s.superslabs_mapped, "live %llu > mapped %llu",
          (unsigned long long)full.s.superslabs_live, (unsigned long long)full.s.superslabs_mapped);
    /* The 8 MiB block came and went; the 1000 small blocks are in slabs still. */
    CHECK(full.s.large_bytes_peak >= (8u << 20) && full.s.large_bytes_total >= (8u << 20),
          "large bytes peak %llu total %llu", (unsigned long long)full.s.large_bytes_peak,
          (unsigned long long)full.s.large_bytes_total);
    CHECK(full.s.large_bytes < (8u << 20), "large bytes %llu after the free",
          (unsigned long long)full.s.large_bytes);
    CHECK(full.s.slab_bytes > 0 && full.s.slab_bytes <= full.s.slab_bytes_peak, "slab bytes %llu peak %llu",
          (unsigned long long)full.s.slab_bytes, (unsigned long long)full.s.slab_bytes_peak);
    CHECK(full.s.mapped_bytes_peak >= full.s.large_bytes_peak &&
              full.s.mapped_bytes >= full.s.slab_bytes,
          "mapped %llu peak %llu", (unsigned long long)full.s.mapped_bytes,
          (unsigned long long)full.s.mapped_bytes_peak);
    for (int i = 0; i < 64; i++) CHECK(full.guard[i] == 0xEE, "byte %d after the struct written", i);

    /* header only: ok, nothing written past the header */
    struct hak_stats hdr;
    memset(&hdr, 0xEE, sizeof hdr);
    size_t hsz = offsetof(struct hak_stats, refills);
    hdr.struct_size = hsz;
    r = hak_stats_get(&hdr);
    CHECK(r == 0, "hak_stats_get with the header only (%zu bytes): %d", hsz, r);
    const unsigned char *b = (const unsigned char *)&hdr;
    for (size_t i = hsz; i < sizeof hdr; i++) CHECK(b[i] == 0xEE, "byte %zu past struct_size %zu written", i, hsz);

    /* too small for the header: refused, untouched */
    struct hak_stats small;
    memset(&small, 0xEE, sizeof small);
    small.struct_size = 4;
    r = hak_stats_get(&small);
    CHECK(r == HAK_ABI_STRUCT_MISMATCH, "struct_size 4: %d", r);
    b = (const unsigned char *)&small;
    for (size_t i = sizeof(size_t); i < sizeof small; i++) CHECK(b[i] == 0xEE, "byte %zu written on refusal", i);
    CHECK(hak_stats_get(NULL) == HAK_ABI_STRUCT_MISMATCH, "hak_stats_get(NULL)");

    printf("abi: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
}
