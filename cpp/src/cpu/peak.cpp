// The CPU's fp32 peak, measured: each thread times a chain of dependent integer adds (one per
// cycle: its clock) and then independent fused multiply-adds in the widest vectors of the ISA
// oneDNN dispatches to (its FMA throughput). The benchmark divides achieved GFLOP/s by this.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "cpu/cpu_backend.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace dcgan::cpu {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

#if defined(__x86_64__)
// 16 dependent adds per iteration: 16 cycles on every x86 core since the Pentium 4 (the loop's
// own counter and branch run beside them on other ports).
double add_chain_ghz(int64_t iters) {
  uint64_t x = 0;
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < iters; ++i) {
    asm volatile(
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
        : "+r"(x));
  }
  return 16.0 * static_cast<double>(iters) / seconds_since(t0) * 1e-9;
}

// 12 independent accumulators: enough to cover 2 FMA ports x 4-5 cycles of latency.
#define DCGAN_FMA12(FMA)                                                          \
  a0 = FMA(a0, m, c), a1 = FMA(a1, m, c), a2 = FMA(a2, m, c), a3 = FMA(a3, m, c); \
  a4 = FMA(a4, m, c), a5 = FMA(a5, m, c), a6 = FMA(a6, m, c), a7 = FMA(a7, m, c); \
  a8 = FMA(a8, m, c), a9 = FMA(a9, m, c), a10 = FMA(a10, m, c), a11 = FMA(a11, m, c)

__attribute__((target("avx512f"))) float fma_loop_512(int64_t iters) {
  // Distinct starting values: equal ones would let the compiler merge the chains.
  __m512 a0 = _mm512_set1_ps(1.f), a1 = _mm512_set1_ps(1.1f), a2 = _mm512_set1_ps(1.2f),
         a3 = _mm512_set1_ps(1.3f), a4 = _mm512_set1_ps(1.4f), a5 = _mm512_set1_ps(1.5f),
         a6 = _mm512_set1_ps(1.6f), a7 = _mm512_set1_ps(1.7f), a8 = _mm512_set1_ps(1.8f),
         a9 = _mm512_set1_ps(1.9f), a10 = _mm512_set1_ps(2.f), a11 = _mm512_set1_ps(2.1f);
  const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
    DCGAN_FMA12(_mm512_fmadd_ps);
  }
  const __m512 s =
      _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                    _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)),
                                  _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11))));
  // (Not _mm512_reduce_add_ps: GCC 12 warns inside it, and CI builds with -Werror.)
  float out[16];
  _mm512_storeu_ps(out, s);
  float t = 0;
  for (float v : out) t += v;
  return t;
}

__attribute__((target("avx2,fma"))) float fma_loop_256(int64_t iters) {
  __m256 a0 = _mm256_set1_ps(1.f), a1 = _mm256_set1_ps(1.1f), a2 = _mm256_set1_ps(1.2f),
         a3 = _mm256_set1_ps(1.3f), a4 = _mm256_set1_ps(1.4f), a5 = _mm256_set1_ps(1.5f),
         a6 = _mm256_set1_ps(1.6f), a7 = _mm256_set1_ps(1.7f), a8 = _mm256_set1_ps(1.8f),
         a9 = _mm256_set1_ps(1.9f), a10 = _mm256_set1_ps(2.f), a11 = _mm256_set1_ps(2.1f);
  const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
    DCGAN_FMA12(_mm256_fmadd_ps);
  }
  const __m256 s =
      _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                    _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)),
                                  _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11))));
  float out[8];
  _mm256_storeu_ps(out, s);
  float t = 0;
  for (float v : out) t += v;
  return t;
}
#undef DCGAN_FMA12
#endif

}  // namespace

CpuPeak measure_fp32_peak(int threads, double seconds) {
  CpuPeak r;
  r.isa = isa_name(dnnl::get_effective_cpu_isa());
  r.threads = threads > 0 ? threads : omp_get_max_threads();
#if defined(__x86_64__)
  const std::string& isa = r.isa;
  if (isa.rfind("avx512", 0) == 0)
    r.vector_bits = 512;
  else if (isa.rfind("avx2", 0) == 0)
    r.vector_bits = 256;
  else
    return r;  // no FMA: not measured
  const double lanes = r.vector_bits / 32.0;
  const double half = std::max(seconds, 0.02) / 2;
  std::vector<double> ghz(static_cast<size_t>(r.threads)), rate(static_cast<size_t>(r.threads));
  volatile float sink = 0;
#pragma omp parallel num_threads(r.threads)
  {
    const int t = omp_get_thread_num();
    // Calibrate each loop's length to about `half` seconds on this thread.
    int64_t n = 1 << 16;
    double g = add_chain_ghz(n);
    n = std::max<int64_t>(n, static_cast<int64_t>(half * g * 1e9 / 16));
#pragma omp barrier
    ghz[t] = add_chain_ghz(n);
    int64_t m = 1 << 14;
    auto fma = [&](int64_t iters) {
      return r.vector_bits == 512 ? fma_loop_512(iters) : fma_loop_256(iters);
    };
    auto t0 = Clock::now();
    float acc = fma(m);
    m = std::max<int64_t>(m, static_cast<int64_t>(m * half / std::max(seconds_since(t0), 1e-6)));
#pragma omp barrier
    t0 = Clock::now();
    acc += fma(m);
    rate[t] = 12.0 * lanes * 2.0 * static_cast<double>(m) / seconds_since(t0) * 1e-9;
#pragma omp critical
    sink = sink + acc;
  }
  (void)sink;
  for (int t = 0; t < r.threads; ++t) r.gflops += rate[t], r.ghz += ghz[t] / r.threads;
  r.flops_per_cycle = r.gflops / (r.ghz * r.threads);
#endif
  return r;
}

}  // namespace dcgan::cpu
