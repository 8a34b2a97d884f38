// The CUDA backend ("cuda"): cuDNN convolutions, cuBLAS dense layers and the own kernels of
// cpp/src/cuda/*.cuh, on one stream, with the training step recorded as a CUDA graph. Built with
// -DDCGAN_CUDA=ON; the only header of this folder the rest of the library includes.
#pragma once

#include <memory>
#include <string>

#include "core/comm.hpp"

namespace dcgan::cuda {

// Whether a CUDA device can be used here; when not, *why says what is missing (no driver, no
// device, a driver older than this build's runtime).
bool cuda_available(std::string* why);

// Adds "cuda" to the backend registry (unavailable, with the reason, where no GPU is usable).
void register_cuda_backend();

// NCCL (built where nccl.h is found: DCGAN_WITH_NCCL): a new unique id (rank 0 makes it, every
// rank receives it), and a communicator on device `device` (-1: the current one) whose
// collectives run on the stream of the backend it is attached to.
std::string nccl_unique_id();
std::unique_ptr<Communicator> make_nccl_communicator(const std::string& id, int rank, int size,
                                                     int device);
std::string nccl_version();

}  // namespace dcgan::cuda
