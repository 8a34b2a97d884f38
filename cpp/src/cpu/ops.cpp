// Element-wise operations of the GAN step on the CPU: Adam (OpenMP SIMD loops over
// core/elementwise.hpp's adam_element), the losses on D's logits, noise, and the conversion of
// stored images (uint8 or float32, NCHW or NHWC) into the model's float NCHW input.
#include "cpu/ops.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/elementwise.hpp"
#include "core/rng.hpp"

namespace dcgan::cpu {

namespace {
// Below this many elements a loop runs on one thread: a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;
}  // namespace

void adam_update(float* p, float* m, float* v, int64_t n, const AdamParams& h, int64_t t,
                 const float* g0, const float* g1) {
  // adam_element (core/elementwise.hpp), the function the CUDA kernel runs: the CPU and GPU
  // updates agree bit for bit. The loop vectorises (sqrt is exact; -fno-math-errno).
  const AdamScalars a = adam_scalars(h.lr, h.beta1, h.beta2, h.eps, t);
  if (g1) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) adam_element(p[i], m[i], v[i], g0[i] + g1[i], a);
  } else {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) adam_element(p[i], m[i], v[i], g0[i], a);
  }
}

LossOut d_loss(LossKind kind, bool real, const float* logits, int64_t n, float target,
               float* d_logits) {
  double loss = 0, mean_out = 0;
  const double inv_n = 1.0 / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    const LossTerm t = d_loss_term(kind, real, logits[i], target);
    loss += t.loss;
    mean_out += t.out;
    d_logits[i] = static_cast<float>(t.grad * inv_n);
  }
  return {loss * inv_n, mean_out * inv_n};
}

LossOut g_loss(LossKind kind, const float* logits, int64_t n, float* d_logits) {
  double loss = 0, mean_out = 0;
  const double inv_n = 1.0 / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    const LossTerm t = g_loss_term(kind, logits[i]);
    loss += t.loss;
    mean_out += t.out;
    d_logits[i] = static_cast<float>(t.grad * inv_n);
  }
  return {loss * inv_n, mean_out * inv_n};
}

LossOut softmax_xent(const float* logits, const float* labels, int64_t n, int64_t k,
                     float* d_logits) {
  double loss = 0, correct = 0;
  const double inv_n = 1.0 / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    const XentTerm t = softmax_xent_row(logits + i * k, k, static_cast<int64_t>(labels[i]),
                                        d_logits + i * k, inv_n);
    loss += t.loss;
    correct += t.correct ? 1.0 : 0.0;
  }
  return {loss * inv_n, correct * inv_n};
}

void fill_noise(float* dst, int64_t n, NoiseKind kind, uint64_t seed, uint32_t stream,
                uint64_t counter, int64_t first) {
  const Philox rng(seed, static_cast<Stream>(stream), counter);
  const uint64_t f = static_cast<uint64_t>(first);
  if (kind == NoiseKind::Normal) {
#pragma omp parallel for schedule(static) if (n > kParallelMin / 8)
    for (int64_t i = 0; i < n; ++i) dst[i] = rng.normal(f + static_cast<uint64_t>(i));
  } else {
#pragma omp parallel for schedule(static) if (n > kParallelMin / 8)
    for (int64_t i = 0; i < n; ++i) dst[i] = 2.f * rng.uniform(f + static_cast<uint64_t>(i)) - 1.f;
  }
}

namespace {
// One image to float NCHW through scale_value (core/elementwise.hpp).
template <class T>
void convert_image(float* dst, const T* src, const ImageFormat& f) {
  const int64_t hw = f.h * f.w, c = f.c;
  auto scale = [&](T x) {
    return scale_value(static_cast<float>(x), f.identity, f.sub, f.mul, f.add);
  };
  if (f.layout == Layout::NCHW || c == 1) {
    for (int64_t i = 0; i < c * hw; ++i) dst[i] = scale(src[i]);
  } else {
    for (int64_t p = 0; p < hw; ++p)
      for (int64_t ch = 0; ch < c; ++ch) dst[ch * hw + p] = scale(src[p * c + ch]);
  }
}
}  // namespace

void load_batch(float* dst, const ImageFormat& fmt, const void* const* images, int64_t count) {
  const int64_t per = fmt.numel();
#pragma omp parallel for schedule(static) if (count * per > kParallelMin)
  for (int64_t i = 0; i < count; ++i) {
    if (fmt.dtype == DType::U8)
      convert_image(dst + i * per, static_cast<const uint8_t*>(images[i]), fmt);
    else
      convert_image(dst + i * per, static_cast<const float*>(images[i]), fmt);
  }
}

}  // namespace dcgan::cpu
