/* tracer profile's C++ fixture without frame pointers: built with
 * `g++ -O2 -fomit-frame-pointer` by the tests (tracer/tests/unwind.rs).
 * `run` alternates between `compute` (a loop over an inlined helper) and
 * exceptions: `throw_and_catch` calls `thrower`, which recurses 3 deep and
 * throws, so a good part of the samples are inside libstdc++'s __cxa_throw
 * and libgcc's unwinder; every one of them must still unwind to main. Runs
 * for argv[1] ms of CPU time. */
#include <cstdlib>
#include <ctime>
#include <stdexcept>
static volatile unsigned long sink;
static double now() {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
static inline unsigned long mix(unsigned long x) { return (x * 2654435761u) ^ (x >> 13); }
__attribute__((noinline)) void compute(unsigned long n) {
    for (unsigned long i = 0; i < n; i++) sink += mix(i);
}
__attribute__((noinline)) void thrower(int depth) {
    if (depth == 0) throw std::runtime_error("thrown");
    thrower(depth - 1);
    sink++;
}
__attribute__((noinline)) void throw_and_catch() {
    try {
        thrower(3);
    } catch (const std::exception &e) {
        sink += e.what()[0];
    }
}
__attribute__((noinline)) void run(double ms) {
    double end = now() + ms;
    while (now() < end) {
        compute(20000);
        for (int i = 0; i < 20; i++) throw_and_catch();
    }
}
int main(int argc, char **argv) {
    run(argc > 1 ? atof(argv[1]) : 1000);
    return 0;
}
