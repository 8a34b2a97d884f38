// defines: convert_batch_kernel, the uploaded batch (count images of uint8 or float32, NCHW or
// NHWC, back to back) converted to float NCHW in the model's range with core/elementwise.hpp's
// scale_value. Uploading uint8 moves a quarter of float32's bytes.
#pragma once

#include "core/batch_source.hpp"
#include "core/elementwise.hpp"
#include "cuda/common.cuh"

namespace dcgan::cuda {

template <class T>
__global__ void convert_batch_kernel(float* dst, const T* src, int64_t count, ImageFormat f) {
  const int64_t hw = f.h * f.w, per = f.c * hw, n = count * per;
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < n;
       o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    // o indexes the NCHW output: image b, channel c, pixel p.
    const int64_t b = o / per, r = o % per, c = r / hw, p = r % hw;
    const int64_t s = f.layout == Layout::NCHW ? o : b * per + p * f.c + c;
    dst[o] = scale_value(static_cast<float>(src[s]), f.identity, f.sub, f.mul, f.add);
  }
}

}  // namespace dcgan::cuda
