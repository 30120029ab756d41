/* tracer profile's fixture for code loaded after start: built twice by the
 * tests (tracer/tests/unwind.rs), `-O2 -fomit-frame-pointer`, once with
 * -DLIB as a shared library, once as the program, which takes the library's
 * path and ms of CPU time: `main` spins 300 ms in `before` (so the process
 * is seen, and its mappings read, before the library exists), then dlopens
 * the library and calls its `lib_outer`, which spins in `lib_leaf`: the
 * chain is main -> lib_outer -> lib_leaf. */
#include <stdlib.h>
#include <time.h>
static volatile unsigned long sink;
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
#ifdef LIB
__attribute__((noinline)) void lib_leaf(unsigned long n) {
    for (unsigned long i = 0; i < n; i++) sink += i * i;
}
__attribute__((noinline)) void lib_outer(double ms) {
    double end = now() + ms;
    while (now() < end) lib_leaf(100000);
    sink++;
}
#else
#include <dlfcn.h>
#include <stdio.h>
__attribute__((noinline)) void before(double ms) {
    double end = now() + ms;
    while (now() < end) sink++;
}
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    before(300);
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    void (*outer)(double) = (void (*)(double))dlsym(lib, "lib_outer");
    if (!outer) return 1;
    outer(atof(argv[2]));
    sink++;
    return 0;
}
#endif
