// defines: adam_kernel, Adam fused over a network's flat buffers (parameters, both moments and
// one or two gradient slots) with core/elementwise.hpp's adam_element, the CPU backend's update
// operation for operation (compiled with --fmad=false). The step count t is read on the device
// (a Counter), so a recorded step replays with the current t. The bias corrections come from
// double-precision pow, which CUDA computes within 2 ulp of double and glibc within 1: after
// rounding to float they agree except in the rare case where that float rounding is a tie.
#pragma once

#include "core/counter.hpp"
#include "core/elementwise.hpp"
#include "cuda/common.cuh"

namespace dcgan::cuda {

__global__ void adam_kernel(float* p, float* m, float* v, int64_t n, const float* g0,
                            const float* g1, float lr, float beta1, float beta2, float eps,
                            Counter t) {
  const AdamScalars a = adam_scalars(lr, beta1, beta2, eps, static_cast<int64_t>(t.value()));
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = g1 ? g0[i] + g1[i] : g0[i];
    adam_element(p[i], m[i], v[i], g, a);
  }
}

}  // namespace dcgan::cuda
