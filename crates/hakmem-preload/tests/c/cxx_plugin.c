/* A C program (no C++ runtime of its own) that loads a C++ plugin with dlopen(RTLD_LOCAL) and runs
 * its checks: the plugin's new and delete bind to the preloaded library, and its failing new must
 * still throw std::bad_alloc from the runtime the plugin brought. Prints "cxx_plugin: ok". */
#include "common.h"

int main(int argc, char **argv) {
    if (argc < 2) DIE("usage: cxx_plugin PLUGIN.so");
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) DIE("dlopen %s: %s", argv[1], dlerror());
    int (*checks)(void) = (int (*)(void))dlsym(h, "plugin_checks");
    if (!checks) DIE("no plugin_checks in %s", argv[1]);
    CHECK(dlsym(RTLD_DEFAULT, "_ZSt9terminatev") == NULL, "the C++ runtime is in the global scope");
    int failed = checks();
    CHECK(failed == 0, "plugin check %d failed", failed);
    if (g_failures == 0) printf("cxx_plugin: ok\n");
    return g_failures != 0;
}
