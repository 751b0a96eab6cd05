/* Per-core peak of the two instructions behind CPU GEMMs, from registers only (no memory traffic):
 * fp32 FMA (VFMADD231PS zmm: 16 lanes x 2 FLOP) and bf16 dot product (VDPBF16PS zmm: 16 lanes x 2 pairs x 2 FLOP).
 * Their ratio is the most bf16 can gain over fp32 on a CPU without AMX tile units. Needs AVX-512 + AVX512_BF16:
 *
 *     mkdir -p build && gcc -O2 -march=native benchmarks/fma_peak.c -o build/fma_peak && build/fma_peak
 *
 * 24 independent accumulators hide the instructions' latency; the result is printed so nothing is optimised away.
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#define ACC 24
#define ITERS 100000000L

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    __m512 acc[ACC];
    __m512 x = _mm512_set1_ps(1.0001f), y = _mm512_set1_ps(0.9999f);
    for (int i = 0; i < ACC; i++) acc[i] = _mm512_setzero_ps();
    double t = now();
    for (long n = 0; n < ITERS; n++) {
#pragma GCC unroll 24
        for (int i = 0; i < ACC; i++) acc[i] = _mm512_fmadd_ps(x, y, acc[i]);
    }
    double fp32 = ITERS * ACC * 32.0 / (now() - t) / 1e9;
    float sink = 0;
    for (int i = 0; i < ACC; i++) sink += _mm512_reduce_add_ps(acc[i]), acc[i] = _mm512_setzero_ps();

    __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3f80); /* bf16 1.0 */
    t = now();
    for (long n = 0; n < ITERS; n++) {
#pragma GCC unroll 24
        for (int i = 0; i < ACC; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    }
    double bf16 = ITERS * ACC * 64.0 / (now() - t) / 1e9;
    for (int i = 0; i < ACC; i++) sink += _mm512_reduce_add_ps(acc[i]);

    printf("one core: fp32 FMA %.0f GFLOP/s, bf16 dot product %.0f GFLOP/s, ratio %.2fx (checksum %g)\n",
           fp32, bf16, bf16 / fp32, sink);
    return 0;
}
