// CPU backend: oneDNN primitives for every layer, OpenMP loops for the element-wise ops.
// Files: cpu_backend.cpp (the Backend, registration, error translation), net.cpp (a network),
// one file per layer family (weighted, batchnorm, eltwise, dropout, reshape), ops.cpp (Adam,
// losses, noise, batch conversion).
#pragma once

#include <dnnl.hpp>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.hpp"

namespace dcgan::cpu {

// Memories over one shared, growing host buffer: when a request needs more than the buffer
// has, it is reallocated and every live earlier memory re-pointed. Requests are made while
// networks are compiled, never inside a step; only weak references are held, so a freed
// network's memories drop out. Users must read the data handle when they run, not keep it.
class Arena {
 public:
  std::shared_ptr<dnnl::memory> get(const dnnl::engine& eng, const dnnl::memory::desc& desc);

 private:
  std::vector<std::weak_ptr<dnnl::memory>> users_;
  std::shared_ptr<void> buf_;
  size_t size_ = 0;
};

struct Ctx {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  // Data type of the activations, their gradients and the weights as the convolutions and
  // inner products read them: f32, or bf16 for Config.precision="bf16" (weights, their
  // gradients, BN statistics and Adam stay f32; networks take and give f32 at their edges).
  dnnl::memory::data_type act = dnnl::memory::data_type::f32;

  // Every primitive is created with a user-managed scratchpad (attr()) and runs with a memory
  // from scratch(): all of them share one buffer (they run one at a time on this context), so
  // no execution allocates, as oneDNN's own scratchpads would on every call.
  dnnl::primitive_attr attr() const {
    dnnl::primitive_attr a;
    a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return a;
  }
  std::shared_ptr<dnnl::memory> scratch(const dnnl::memory::desc& desc) {
    return scratch_.get(eng, desc);
  }
  // Work buffers of the passes the backend computes itself around oneDNN primitives (the
  // Winograd domain of winograd.cpp), alive during one pass: shared by every layer, and apart
  // from the primitives' scratchpads, which those passes' primitives use meanwhile.
  std::shared_ptr<dnnl::memory> work(const dnnl::memory::desc& desc) {
    return work_.get(eng, desc);
  }

 private:
  Arena scratch_, work_;
};

// All of a network's parameter arrays in one 64-byte aligned host allocation. `version()`
// changes whenever the parameter values change (Adam, a write), so compiled networks know
// when to re-lay-out their weights for oneDNN.
class HostParams : public ParamStore {
 public:
  HostParams(int64_t n_params, int64_t n_state, int grad_slots);
  float* data(Buf b) override;
  void write(Buf b, int64_t offset, const float* host, int64_t n) override;
  void read(Buf b, int64_t offset, float* host, int64_t n) override;
  uint64_t version() const { return version_; }
  void touch() { ++version_; }

 private:
  std::vector<float> buf_;
  float *p_, *s_, *g0_, *g1_, *m_, *v_;
  uint64_t version_ = 0;
};

std::unique_ptr<NetExec> compile_net(Ctx& ctx, const NetPlan& plan, ParamStore& params,
                                     int64_t batch, uint64_t seed);

// Whether the backward-weights of Conv2d/ConvTranspose2d layer L runs as matrix products
// (gemm_weights.cpp) rather than on oneDNN's own kernel in a network of the given precision,
// as this process would compile it (DCGAN_CPU_BWDW, the shape, the precision, the ISA).
bool use_gemm_weights(bool bf16, const ResolvedLayer& L);

// Whether Conv2d/ConvTranspose2d layer L runs its few-channel pass (a ConvTranspose2d's forward
// into at most 4 channels, a Conv2d's backward-data into at most 4) as a matrix product and a
// gather (thin_conv.cpp) rather than on oneDNN's own kernel, as this process would compile it
// (DCGAN_CPU_THIN, the shape).
bool use_thin_scatter(const ResolvedLayer& L);

// Whether Conv2d/ConvTranspose2d layer L runs as a Winograd convolution (winograd.cpp: a
// stride-2 layer as F(4x4, 3x3) of its phase images, a 'same' stride-1 layer as F(4x4, 5x5) or
// F(4x4, 3x3); forward, backward-data and backward-weights) rather than on oneDNN's own kernels,
// as this process would compile it (DCGAN_CPU_WINO, the shape, fp32 only).
bool use_winograd(bool bf16, const ResolvedLayer& L);
// Whether such a layer's backward-weights is Winograd's too: unless DCGAN_CPU_BWDW names a path
// ("gemm" or "native"), which then takes it.
bool use_winograd_weights(bool bf16, const ResolvedLayer& L);

// The ISA oneDNN dispatches to ("avx2", "avx512_core_bf16", ...).
const char* isa_name(dnnl::cpu_isa isa);

// The fp32 peak of `threads` threads (0: OpenMP's default), measured (peak.cpp): their mean
// clock from a chain of dependent adds, and their summed FMA throughput in the vector width of
// the ISA oneDNN dispatches to. gflops is 0 where that ISA has no FMA or the CPU is not x86.
struct CpuPeak {
  std::string isa;
  int threads = 0, vector_bits = 0;
  double ghz = 0, gflops = 0, flops_per_cycle = 0;  // flops_per_cycle: per core
};
CpuPeak measure_fp32_peak(int threads, double seconds);

// Adds "cpu" to the backend registry.
void register_cpu_backend();

}  // namespace dcgan::cpu
