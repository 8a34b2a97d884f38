// DCGAN_HD marks functions compiled for both the host and a CUDA device: the element-wise
// arithmetic of the training step is written once (core/elementwise.hpp, core/rng.hpp), run by
// the CPU backend directly and by the CUDA kernels, and unit-tested on the host.
#pragma once

#if defined(__CUDACC__)
#define DCGAN_HD __host__ __device__
#else
#define DCGAN_HD
#endif
