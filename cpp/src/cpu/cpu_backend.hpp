// CPU backend: oneDNN primitives for every layer, OpenMP loops for the element-wise ops.
// Files: cpu_backend.cpp (the Backend, registration, error translation), net.cpp (a network),
// one file per layer family (weighted, batchnorm, eltwise, dropout, reshape), ops.cpp (Adam,
// losses, noise, batch conversion).
#pragma once

#include <dnnl.hpp>
#include <memory>
#include <vector>

#include "core/backend.hpp"

namespace dcgan::cpu {

struct Ctx {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
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

// Adds "cpu" to the backend registry.
void register_cpu_backend();

}  // namespace dcgan::cpu
