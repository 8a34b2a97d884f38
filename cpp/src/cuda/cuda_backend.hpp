// The CUDA backend ("cuda"): cuDNN convolutions, cuBLAS dense layers and the own kernels of
// cpp/src/cuda/*.cuh, on one stream, with the training step recorded as a CUDA graph. Built with
// -DDCGAN_CUDA=ON; the only header of this folder the rest of the library includes.
#pragma once

#include <string>

namespace dcgan::cuda {

// Whether a CUDA device can be used here; when not, *why says what is missing (no driver, no
// device, a driver older than this build's runtime).
bool cuda_available(std::string* why);

// Adds "cuda" to the backend registry (unavailable, with the reason, where no GPU is usable).
void register_cuda_backend();

}  // namespace dcgan::cuda
