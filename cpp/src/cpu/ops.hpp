// Element-wise operations of the GAN step on the CPU.
#pragma once

#include "core/backend.hpp"
#include "core/elementwise.hpp"

namespace dcgan::cpu {

struct LossOut {
  double loss, mean_out;
};

void adam_update(float* p, float* m, float* v, int64_t n, const AdamParams& h, int64_t t,
                 const float* g0, const float* g1);
LossOut d_loss(LossKind kind, bool real, const float* logits, int64_t n, float target,
               float* d_logits);
LossOut g_loss(LossKind kind, const float* logits, int64_t n, float* d_logits);
// Softmax cross-entropy over n rows of k logits; mean_out is the fraction classified correctly.
LossOut softmax_xent(const float* logits, const float* labels, int64_t n, int64_t k,
                     float* d_logits);
void fill_noise(float* dst, int64_t n, NoiseKind kind, uint64_t seed, uint32_t stream,
                uint64_t counter, int64_t first = 0);
// Converts `count` images (dtype and layout of fmt) to float NCHW in fmt's range.
void load_batch(float* dst, const ImageFormat& fmt, const void* const* images, int64_t count);

}  // namespace dcgan::cpu
