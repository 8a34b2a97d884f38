// The CUDA backend's shared pieces: the library handles of one backend (Ctx), device memory that
// frees itself, the device ParamStore, and the layer base class every family implements.
// Files: cuda_backend.cpp (the Backend, staging, recording, registration), net.cpp (a network),
// one file per layer family (conv.cpp: Conv2d and ConvTranspose2d on cuDNN; dense.cpp: Dense on
// cuBLAS; batchnorm.cpp, eltwise.cpp, dropout.cpp, reshape.cpp on the kernels of ops.hpp).
//
// Activations are plain row-major (NCHW, or (N, F)) device arrays throughout: the layout the
// core's NetPlan describes, so a layer's output needs no reorder for the next one.
#pragma once

// The toolkit's runtime header before the libraries' (which may sit beside a newer runtime's).
#include <cuda_runtime.h>
// clang-format off
#include <cublas_v2.h>
#include <cudnn.h>
// clang-format on

#include <cstdint>
#include <memory>
#include <string>

#include "core/backend.hpp"
#include "cuda/cuda_backend.hpp"

namespace dcgan::cuda {

void check_cudnn(cudnnStatus_t s, const char* what, const char* file, int line);
void check_cublas(cublasStatus_t s, const char* what, const char* file, int line);
void check_cuda(cudaError_t e, const char* what, const char* file, int line);
#define DCGAN_CUDNN(call) ::dcgan::cuda::check_cudnn((call), #call, __FILE__, __LINE__)
#define DCGAN_CUBLAS(call) ::dcgan::cuda::check_cublas((call), #call, __FILE__, __LINE__)
#define DCGAN_CUDA_OK(call) ::dcgan::cuda::check_cuda((call), #call, __FILE__, __LINE__)

// What every layer of one backend shares: its stream and library handles.
struct Ctx {
  int device = 0;
  cudaStream_t stream = nullptr;
  cudnnHandle_t dnn = nullptr;
  cublasHandle_t blas = nullptr;
  bool tf32 = false;
  size_t workspace_limit = size_t(512) << 20;  // per convolution algorithm
};

// Device memory for n floats, zero-filled, freed on destruction.
class DevMem {
 public:
  DevMem() = default;
  explicit DevMem(int64_t n);
  DevMem(const DevMem&) = delete;
  DevMem& operator=(const DevMem&) = delete;
  DevMem(DevMem&& o) noexcept { *this = std::move(o); }
  DevMem& operator=(DevMem&& o) noexcept {
    std::swap(p_, o.p_), std::swap(n_, o.n_);
    return *this;
  }
  ~DevMem();
  float* get() const { return p_; }
  int64_t size() const { return n_; }

 private:
  float* p_ = nullptr;
  int64_t n_ = 0;
};

// All of a network's parameter arrays in one device allocation.
class DeviceParams : public ParamStore {
 public:
  DeviceParams(Ctx& c, int64_t n_params, int64_t n_state, int grad_slots);
  float* data(Buf b) override;
  void write(Buf b, int64_t offset, const float* host, int64_t n) override;
  void read(Buf b, int64_t offset, float* host, int64_t n) override;

 private:
  Ctx& c_;
  DevMem buf_;
  float *p_, *s_, *g0_, *g1_, *m_, *v_;
};

// Per-network scratch for cuDNN, sized to the largest algorithm's need once every layer is
// built, and allocated once.
struct Workspace {
  size_t bytes = 0;  // requested so far
  DevMem mem;
  void* ptr() const { return mem.get(); }
};

class Layer {
 public:
  virtual ~Layer() = default;
  // Allocates out / d_out for input buffers `in` / `d_in` (batch, *L.in), plain layout;
  // d_in is written by backward.
  virtual void build(float* in, float* d_in) = 0;
  virtual void forward(bool training, Counter ctr) = 0;
  virtual void backward(bool need_d_in, int slot) = 0;
  virtual bool has_params() const { return false; }
  // BatchNorm: its batch statistics into the precise-statistics sums (NetExec).
  virtual void accumulate_stats(float* /*sums*/, float* /*mean_sq*/) {}
  float* out = nullptr;
  float* d_out = nullptr;

 protected:
  float* in_ = nullptr;
  float* d_in_ = nullptr;
  DevMem out_mem_, d_out_mem_;
  void alloc_outputs(int64_t n) {
    out_mem_ = DevMem(n), d_out_mem_ = DevMem(n);
    out = out_mem_.get(), d_out = d_out_mem_.get();
  }
};

// One factory per family.
std::unique_ptr<Layer> make_conv_layer(Ctx& c, const ResolvedLayer& L, DeviceParams& ps,
                                       int64_t batch, Workspace& ws);
std::unique_ptr<Layer> make_dense_layer(Ctx& c, const ResolvedLayer& L, DeviceParams& ps,
                                        int64_t batch);
std::unique_ptr<Layer> make_batchnorm_layer(Ctx& c, const ResolvedLayer& L, DeviceParams& ps,
                                            int64_t batch);
std::unique_ptr<Layer> make_eltwise_layer(Ctx& c, const ResolvedLayer& L, int64_t batch);
std::unique_ptr<Layer> make_dropout_layer(Ctx& c, const ResolvedLayer& L, int64_t batch,
                                          uint64_t seed, uint64_t layer_index);
std::unique_ptr<Layer> make_reshape_layer(Ctx& c, const ResolvedLayer& L, int64_t batch);

std::unique_ptr<NetExec> compile_net(Ctx& c, const NetPlan& plan, DeviceParams& params,
                                     int64_t batch, uint64_t seed);

}  // namespace dcgan::cuda
