// The element-wise arithmetic of the training step, written once for every backend as
// DCGAN_HD functions: the CPU backend calls them in its loops (cpu/ops.cpp, cpu/dropout.cpp),
// the CUDA kernels call them per thread, and tests/test_elementwise.py checks them on the host
// against float64 references and against the CPU backend's own results.
//
// defines: loss terms of D and G on a logit, Adam on one parameter, activations and their
// gradients, inverted-dropout masks, BatchNorm normalisation, running and precise statistics,
// softmax cross-entropy, and the conversion of one stored image value to the model's range.
#pragma once

#include <math.h>

#include <cstdint>

#include "core/hd.hpp"
#include "core/rng.hpp"
#include "core/spec.hpp"

namespace dcgan {

// ---------------------------------------------------------------------------------- losses
// Per-logit terms, in double: loss, d loss / d logit, and the value reported as the mean D
// output (sigmoid of the logit, or the logit itself for lsgan and hinge). The backend averages
// over the batch: loss and output by their mean, the gradient scaled by 1/n.
struct LossTerm {
  double loss, grad, out;
};

// log(1 + exp(x)) without overflow.
DCGAN_HD inline double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
DCGAN_HD inline double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + exp(-x));
  const double e = exp(x);
  return e / (1.0 + e);
}

// D's term on one logit against `target` (1 - smoothing on real images, 0 on fakes).
DCGAN_HD inline LossTerm d_loss_term(LossKind kind, bool real, double x, double target) {
  switch (kind) {
    case LossKind::LSGAN:  // 0.5 (x - t)^2
      return {0.5 * (x - target) * (x - target), x - target, x};
    case LossKind::Hinge:  // relu(1 - x) on real, relu(1 + x) on fake
      if (real) return {x < 1.0 ? 1.0 - x : 0.0, x < 1.0 ? -1.0 : 0.0, x};
      return {x > -1.0 ? 1.0 + x : 0.0, x > -1.0 ? 1.0 : 0.0, x};
    default: {  // BCE, Minimax, Saturating: BCE(sigmoid(x), t) = softplus(x) - t x
      const double s = sigmoid(x);
      return {softplus(x) - target * x, s - target, s};
    }
  }
}

// G's term on D's logit for a fake.
DCGAN_HD inline LossTerm g_loss_term(LossKind kind, double x) {
  switch (kind) {
    case LossKind::Saturating:  // G minimises log(1 - D(G(z))) = -softplus(x)
      return {-softplus(x), -sigmoid(x), sigmoid(x)};
    case LossKind::LSGAN:  // 0.5 (x - 1)^2
      return {0.5 * (x - 1.0) * (x - 1.0), x - 1.0, x};
    case LossKind::Hinge:  // -x
      return {-x, -1.0, x};
    default:  // BCE (non-saturating) and seed 004's Minimax: softplus(-x)
      return {softplus(-x), sigmoid(x) - 1.0, sigmoid(x)};
  }
}

// ---------------------------------------------------------------------------------- Adam
// PyTorch's Adam (no weight decay, no amsgrad) on one parameter, term for term:
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= step * m / (sqrt(v) * inv_sqrt_bc2 + eps)
// with step = lr / (1 - b1^t) and inv_sqrt_bc2 = 1 / sqrt(1 - b2^t), computed once per update.
struct AdamScalars {
  float b1, b2, eps, step, inv_sqrt_bc2;
};

DCGAN_HD inline AdamScalars adam_scalars(float lr, float beta1, float beta2, float eps, int64_t t) {
  const double bc1 = 1.0 - pow(static_cast<double>(beta1), static_cast<double>(t));
  const double bc2 = 1.0 - pow(static_cast<double>(beta2), static_cast<double>(t));
  return {beta1, beta2, eps, static_cast<float>(lr / bc1), static_cast<float>(1.0 / sqrt(bc2))};
}

DCGAN_HD inline void adam_element(float& p, float& m, float& v, float g, const AdamScalars& a) {
  m = a.b1 * m + (1.f - a.b1) * g;
  v = a.b2 * v + (1.f - a.b2) * (g * g);
  p -= a.step * m / (sqrtf(v) * a.inv_sqrt_bc2 + a.eps);
}

// ---------------------------------------------------------------------------------- activations
// Forward, and the input gradient from the output y (the *_use_dst_for_bwd formulation that
// lets the CPU backend run activations in place).
DCGAN_HD inline float activation(LayerKind kind, float x, float slope) {
  switch (kind) {
    case LayerKind::ReLU:
      return x > 0.f ? x : 0.f;
    case LayerKind::LeakyReLU:
      return x > 0.f ? x : x * slope;
    case LayerKind::Tanh:
      return tanhf(x);
    default:  // Sigmoid
      return 1.f / (1.f + expf(-x));
  }
}

DCGAN_HD inline float activation_grad_from_output(LayerKind kind, float y, float dy, float slope) {
  switch (kind) {
    case LayerKind::ReLU:
      return y > 0.f ? dy : 0.f;
    case LayerKind::LeakyReLU:
      return y > 0.f ? dy : dy * slope;
    case LayerKind::Tanh:
      return dy * (1.f - y * y);
    default:  // Sigmoid
      return dy * y * (1.f - y);
  }
}

// ---------------------------------------------------------------------------------- dropout
// The inverted-dropout multiplier of element i of a layer's tensor in one pass: 1/(1-p) with
// probability 1-p, else 0. A pure function of (seed, pass counter, layer, i): the same mask on
// every backend and for any thread count.
// Element i's random word is word i % 4 of Philox block dropout_block(layer, i).
DCGAN_HD inline uint64_t dropout_block(uint64_t layer, int64_t i) {
  return (layer << 36) + static_cast<uint64_t>(i / 4);
}
// The multiplier of a kept element, 1 / (1 - p): computed once per pass, not per element.
DCGAN_HD inline float dropout_scale(float p) { return 1.f / (1.f - p); }
// Whether the element whose random word is `word` is kept.
DCGAN_HD inline bool dropout_kept(uint32_t word, float p) { return Philox::to_unit(word) >= p; }
DCGAN_HD inline float dropout_keep(uint32_t word, float p, float scale) {
  return dropout_kept(word, p) ? scale : 0.f;
}
DCGAN_HD inline float dropout_multiplier(const Philox& rng, uint64_t layer, int64_t i, float p) {
  uint32_t w[4];
  rng.block(dropout_block(layer, i), w);
  return dropout_keep(w[i % 4], p, dropout_scale(p));
}

// ---------------------------------------------------------------------------------- BatchNorm
// Training: y = gamma (x - mean) * inv_std + beta with the batch's biased variance;
// inv_std = 1 / sqrt(var + eps).
DCGAN_HD inline float bn_normalize(float x, float mean, float inv_std, float gamma, float beta) {
  return gamma * ((x - mean) * inv_std) + beta;
}

// dx from dy over a channel of m elements, given the channel's sums sum(dy) and
// sum(dy * xhat) (xhat = (x - mean) * inv_std):
//   dx = gamma * inv_std * (dy - sum_dy / m - xhat * sum_dy_xhat / m)
// and d gamma = sum_dy_xhat, d beta = sum_dy.
DCGAN_HD inline float bn_input_grad(float dy, float xhat, float gamma, float inv_std, float mean_dy,
                                    float mean_dy_xhat) {
  return gamma * inv_std * (dy - mean_dy - xhat * mean_dy_xhat);
}

// PyTorch's running statistics: momentum weights the new batch; the variance is unbiased over
// the channel's m elements.
DCGAN_HD inline void bn_running_update(float& running_mean, float& running_var, float mean,
                                       float var, float momentum, int64_t m) {
  const float unbias = m > 1 ? static_cast<float>(m) / static_cast<float>(m - 1) : 1.f;
  running_mean = (1.f - momentum) * running_mean + momentum * mean;
  running_var = (1.f - momentum) * running_var + momentum * var * unbias;
}

// Precise statistics: one training-mode batch's mean and biased variance of a channel added to
// the sums (mean, var, mean^2) from which PreciseBn (core/gan_step.cpp) forms the pooled mean
// and variance over all batches: mean = E[mean_b], var = E[var_b] + E[mean_b^2] - mean^2.
DCGAN_HD inline void bn_accumulate(float& sum_mean, float& sum_var, float& sum_mean_sq, float mean,
                                   float var) {
  sum_mean += mean;
  sum_var += var;
  sum_mean_sq += mean * mean;
}

// ---------------------------------------------------------------------------------- softmax
// Softmax cross-entropy on one row of k logits against class `label`, in double: writes
// d(mean loss)/d(logits) = (softmax - onehot) * inv_n into dx and returns the row's loss and
// whether its arg-max (the first maximum) is the label.
struct XentTerm {
  double loss;
  bool correct;
};
DCGAN_HD inline XentTerm softmax_xent_row(const float* x, int64_t k, int64_t label, float* dx,
                                          double inv_n) {
  int64_t arg = 0;
  for (int64_t j = 1; j < k; ++j)
    if (x[j] > x[arg]) arg = j;
  const double mx = x[arg];
  double sum = 0;
  for (int64_t j = 0; j < k; ++j) sum += exp(static_cast<double>(x[j]) - mx);
  const double log_sum = log(sum);
  for (int64_t j = 0; j < k; ++j) {
    const double p = exp(static_cast<double>(x[j]) - mx - log_sum);
    dx[j] = static_cast<float>((p - (j == label ? 1.0 : 0.0)) * inv_n);
  }
  return {log_sum + mx - static_cast<double>(x[label]), arg == label};
}

// ---------------------------------------------------------------------------------- data
// One stored image value in the model's range: (x - sub) * mul + add in float32, the order of
// operations NumPy used when fit scaled whole arrays, or x itself when `identity`.
DCGAN_HD inline float scale_value(float x, bool identity, float sub, float mul, float add) {
  if (identity) return x;
  const float t = (x - sub) * mul;
  return t + add;
}

// ---------------------------------------------------------------------------------- padding
// Explicit padding of an (H, W) plane to (H + lo_h + hi_h, W + lo_w + hi_w), for convolutions
// whose padding a library cannot express. Output index o of the padded planes (plane-major)
// reads source index pad_source(o) of the unpadded planes, or zero where that is -1; crop is the
// inverse: output index o of the unpadded planes reads padded index crop_source(o).
struct PadGeometry {
  int64_t H, W, lo_h, hi_h, lo_w, hi_w;
  DCGAN_HD int64_t Hp() const { return H + lo_h + hi_h; }
  DCGAN_HD int64_t Wp() const { return W + lo_w + hi_w; }
};
DCGAN_HD inline int64_t pad_source(int64_t o, const PadGeometry& g) {
  const int64_t plane = o / (g.Hp() * g.Wp()), r = o % (g.Hp() * g.Wp());
  const int64_t h = r / g.Wp() - g.lo_h, w = r % g.Wp() - g.lo_w;
  return (h >= 0 && h < g.H && w >= 0 && w < g.W) ? (plane * g.H + h) * g.W + w : -1;
}
DCGAN_HD inline int64_t crop_source(int64_t o, const PadGeometry& g) {
  const int64_t plane = o / (g.H * g.W), r = o % (g.H * g.W);
  return (plane * g.Hp() + r / g.W + g.lo_h) * g.Wp() + r % g.W + g.lo_w;
}

}  // namespace dcgan
