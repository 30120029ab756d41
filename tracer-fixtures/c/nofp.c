/* tracer profile's fixture without frame pointers: built with
 * `gcc -O2 -fomit-frame-pointer` by the tests (tracer/tests/unwind.rs) and by
 * vm-test. `outer` calls `leaf_a` and `leaf_b`, which spin 2:1, for argv[1]
 * ms of CPU time; the chain is __libc_start_call_main -> main -> outer ->
 * leaf_a | leaf_b -> spin. Every function is noinline. */
#include <stdlib.h>
#include <time.h>
static volatile unsigned long sink;
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
__attribute__((noinline)) void spin(unsigned long n) {
    for (unsigned long i = 0; i < n; i++) sink += i * i;
}
__attribute__((noinline)) void leaf_a(void) { spin(200000); sink++; }
__attribute__((noinline)) void leaf_b(void) { spin(100000); sink++; }
__attribute__((noinline)) void outer(double ms) {
    double end = now() + ms;
    while (now() < end) { leaf_a(); leaf_b(); }
    sink++;
}
int main(int argc, char **argv) {
    outer(argc > 1 ? atof(argv[1]) : 1000);
    return 0;
}
