// Peak multiply-add rate of one core, register-only (no memory traffic): 24 independent accumulators of
// vfmadd231ps (float32, 16 lanes: 32 flops per instruction) and of vdpbf16ps (bf16 pairs into float32, 16 lanes:
// 64 flops per instruction) where the compiler targets AVX-512 (BF16). The ceiling any product kernel on this
// machine can reach; bench/seq-epoch.ts uses it for the full-catalogue epoch's lower bound. Prints one JSON line.
//   g++ -O2 -march=native bench/native/peak-flops.cc -o build/peak-flops && build/peak-flops
#include <chrono>
#include <cstdio>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

int main() {
#if defined(__AVX512F__)
  const long iters = 20000000;
  double best32 = 0, best16 = 0;
  for (int rep = 0; rep < 5; ++rep) {
    __m512 acc[24];
    for (int i = 0; i < 24; i++) acc[i] = _mm512_setzero_ps();
    __m512 a = _mm512_set1_ps(1.0001f), b = _mm512_set1_ps(0.9999f);
    auto t0 = std::chrono::steady_clock::now();
    for (long it = 0; it < iters / 24; it++) {
#pragma GCC unroll 24
      for (int i = 0; i < 24; i++) acc[i] = _mm512_fmadd_ps(a, b, acc[i]);
      __asm__ volatile("" : "+v"(a));
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    float sink = 0;
    for (int i = 0; i < 24; i++) sink += _mm512_reduce_add_ps(acc[i]);
    if (sink == 1.f) std::printf(" ");
    const double g = double(iters / 24) * 24.0 * 32.0 / s / 1e9;
    if (g > best32) best32 = g;
#if defined(__AVX512BF16__)
    for (int i = 0; i < 24; i++) acc[i] = _mm512_setzero_ps();
    __m512bh ab = (__m512bh)_mm512_set1_epi32(0x3f803f80), bb = (__m512bh)_mm512_set1_epi32(0x3f803f80);
    t0 = std::chrono::steady_clock::now();
    for (long it = 0; it < iters / 24; it++) {
#pragma GCC unroll 24
      for (int i = 0; i < 24; i++) acc[i] = _mm512_dpbf16_ps(acc[i], ab, bb);
      __asm__ volatile("" : "+v"(ab));
    }
    s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sink = 0;
    for (int i = 0; i < 24; i++) sink += _mm512_reduce_add_ps(acc[i]);
    if (sink == 1.f) std::printf(" ");
    const double h = double(iters / 24) * 24.0 * 64.0 / s / 1e9;
    if (h > best16) best16 = h;
#endif
  }
  char b16[32] = "null";
  if (best16 > 0) std::snprintf(b16, sizeof b16, "%.1f", best16);
  std::printf("{\"fp32GflopsPerCore\":%.1f,\"bf16GflopsPerCore\":%s}\n", best32, b16);
#else
  std::printf("{\"fp32GflopsPerCore\":null,\"bf16GflopsPerCore\":null,\"note\":\"no AVX-512 at compile time\"}\n");
#endif
  return 0;
}
