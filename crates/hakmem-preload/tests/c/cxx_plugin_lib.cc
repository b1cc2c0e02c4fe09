/* A C++ plugin for cxx_plugin.c: new and delete inside a library that a C program loads with
 * dlopen(RTLD_LOCAL), so the C++ runtime it brings is outside the process's global scope. */
#include <cstdint>
#include <cstring>
#include <new>

/* Returns 0 if blocks made with new keep their contents and a failing new throws std::bad_alloc
 * (and the nothrow form returns null), else the number of the check that failed. */
extern "C" int plugin_checks(void) {
    for (int r = 0; r < 1000; r++) {
        size_t n = 1 + (size_t)r * 37 % 5000;
        unsigned char *p = new unsigned char[n];
        memset(p, r & 0xff, n);
        for (size_t i = 0; i < n; i++)
            if (p[i] != (unsigned char)(r & 0xff)) return 1;
        delete[] p;
    }
    volatile size_t huge = (size_t)1 << 62;
    bool threw = false;
    try {
        char *p = new char[huge];
        delete[] p;
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    if (!threw) return 2;
    if (::operator new(huge, std::nothrow) != nullptr) return 3;
    return 0;
}
