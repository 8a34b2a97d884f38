// Element-wise operations of the GAN step on the CPU: Adam (Eigen, split across OpenMP
// threads), the losses on D's logits, noise, and the conversion of stored images (uint8 or
// float32, NCHW or NHWC) into the model's float NCHW input.
#include "cpu/ops.hpp"

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/rng.hpp"

namespace dcgan::cpu {

namespace {
// Below this many elements a loop runs on one thread: a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;
// log(1 + exp(x)) without overflow.
inline double softplus(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}
inline double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}
}  // namespace

void adam_update(float* p, float* m, float* v, int64_t n, const AdamParams& h, int64_t t,
                 const float* g0, const float* g1) {
  // PyTorch's Adam (no weight decay, no amsgrad), term for term:
  //   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
  //   p -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
  const double bc1 = 1.0 - std::pow(static_cast<double>(h.beta1), static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(static_cast<double>(h.beta2), static_cast<double>(t));
  const float step = static_cast<float>(h.lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float b1 = h.beta1, b2 = h.beta2, eps = h.eps;
  using Arr = Eigen::Map<Eigen::ArrayXf>;
  using CArr = Eigen::Map<const Eigen::ArrayXf>;
#pragma omp parallel if (n > kParallelMin)
  {
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    // Chunks aligned to 16 floats so each thread's slice vectorises cleanly.
    const int64_t per = ((n + nt - 1) / nt + 15) / 16 * 16;
    const int64_t lo = std::min<int64_t>(n, id * per), hi = std::min<int64_t>(n, lo + per);
    if (hi > lo) {
      const int64_t k = hi - lo;
      Arr P(p + lo, k), M(m + lo, k), V(v + lo, k);
      if (g1) {
        const Eigen::ArrayXf G = CArr(g0 + lo, k) + CArr(g1 + lo, k);
        M = b1 * M + (1.f - b1) * G;
        V = b2 * V + (1.f - b2) * G.square();
      } else {
        CArr G(g0 + lo, k);
        M = b1 * M + (1.f - b1) * G;
        V = b2 * V + (1.f - b2) * G.square();
      }
      P -= step * M / (V.sqrt() * inv_sqrt_bc2 + eps);
    }
  }
}

LossOut d_loss(LossKind kind, bool real, const float* logits, int64_t n, float target,
                        float* d_logits) {
  double loss = 0, mean_out = 0;
  const double inv_n = 1.0 / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    const double x = logits[i];
    double l = 0, g = 0;
    switch (kind) {
      case LossKind::BCE:
      case LossKind::Minimax:
      case LossKind::Saturating:
        // BCE(sigmoid(x), t) = softplus(x) - t x, gradient sigmoid(x) - t.
        l = softplus(x) - target * x;
        g = sigmoid(x) - target;
        mean_out += sigmoid(x);
        break;
      case LossKind::LSGAN:
        // 0.5 (x - t)^2 with t = target (1 - smoothing) for real, 0 for fake.
        l = 0.5 * (x - target) * (x - target);
        g = x - target;
        mean_out += x;
        break;
      case LossKind::Hinge:
        // relu(1 - x) on real, relu(1 + x) on fake.
        if (real) {
          l = std::max(0.0, 1.0 - x);
          g = x < 1.0 ? -1.0 : 0.0;
        } else {
          l = std::max(0.0, 1.0 + x);
          g = x > -1.0 ? 1.0 : 0.0;
        }
        mean_out += x;
        break;
    }
    loss += l;
    d_logits[i] = static_cast<float>(g * inv_n);
  }
  return {loss * inv_n, mean_out * inv_n};
}

LossOut g_loss(LossKind kind, const float* logits, int64_t n, float* d_logits) {
  double loss = 0, mean_out = 0;
  const double inv_n = 1.0 / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    const double x = logits[i];
    double l = 0, g = 0;
    switch (kind) {
      case LossKind::BCE:      // non-saturating: BCE(D(G(z)), 1) = softplus(-x)
      case LossKind::Minimax:  // seed 004: G maximises log D(G(z)), i.e. the same
        l = softplus(-x);
        g = sigmoid(x) - 1.0;
        mean_out += sigmoid(x);
        break;
      case LossKind::Saturating:  // G minimises log(1 - D(G(z))) = -softplus(x)
        l = -softplus(x);
        g = -sigmoid(x);
        mean_out += sigmoid(x);
        break;
      case LossKind::LSGAN:  // 0.5 (x - 1)^2
        l = 0.5 * (x - 1.0) * (x - 1.0);
        g = x - 1.0;
        mean_out += x;
        break;
      case LossKind::Hinge:  // -x
        l = -x;
        g = -1.0;
        mean_out += x;
        break;
    }
    loss += l;
    d_logits[i] = static_cast<float>(g * inv_n);
  }
  return {loss * inv_n, mean_out * inv_n};
}

void fill_noise(float* dst, int64_t n, NoiseKind kind, uint64_t seed, uint32_t stream,
                uint64_t counter) {
  const Philox rng(seed, static_cast<Stream>(stream), counter);
  if (kind == NoiseKind::Normal) {
#pragma omp parallel for schedule(static) if (n > kParallelMin / 8)
    for (int64_t i = 0; i < n; ++i) dst[i] = rng.normal(static_cast<uint64_t>(i));
  } else {
#pragma omp parallel for schedule(static) if (n > kParallelMin / 8)
    for (int64_t i = 0; i < n; ++i) dst[i] = 2.f * rng.uniform(static_cast<uint64_t>(i)) - 1.f;
  }
}

namespace {
// One image to float NCHW: value = (x - sub) * mul + add, the order of operations NumPy used
// when the data was scaled on the host, so results match it bit for bit.
template <class T>
void convert_image(float* dst, const T* src, const ImageFormat& f) {
  const int64_t hw = f.h * f.w, c = f.c;
  const float sub = f.sub, mul = f.mul, add = f.add;
  auto scale = [&](T x) {
    if (f.identity) return static_cast<float>(x);
    const float t = (static_cast<float>(x) - sub) * mul;
    return t + add;
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
