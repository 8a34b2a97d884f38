#pragma once

#include "core/backend.hpp"

namespace dcgan::cpu {

void adam_update(float* p, float* m, float* v, int64_t n, const AdamParams& h, int64_t t,
                 const float* g0, const float* g1);
Backend::LossOut d_loss(LossKind kind, bool real, const float* logits, int64_t n, float target,
                        float* d_logits);
Backend::LossOut g_loss(LossKind kind, const float* logits, int64_t n, float* d_logits);
void fill_noise(float* dst, int64_t n, NoiseKind kind, uint64_t seed, uint32_t stream,
                uint64_t counter);
void gather(float* dst, const float* data, const int64_t* index, int64_t count, int64_t per);

}  // namespace dcgan::cpu
