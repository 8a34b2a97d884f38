// CPU backend: oneDNN primitives for every layer, Eigen/OpenMP loops for the element-wise ops.
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

// All of a network's parameter arrays in one 64-byte aligned host allocation.
class HostParams : public ParamStore {
 public:
  HostParams(int64_t n_params, int64_t n_state);
  float* params() override { return p_; }
  float* state() override { return s_; }
  float* grad(int slot) override { return slot == 0 ? g0_ : g1_; }
  float* adam_m() override { return m_; }
  float* adam_v() override { return v_; }

 private:
  std::vector<float> buf_;
  float *p_, *s_, *g0_, *g1_, *m_, *v_;
};

std::unique_ptr<NetExec> compile_net(Ctx& ctx, const NetPlan& plan, ParamStore& params,
                                     int64_t batch, uint64_t seed);

}  // namespace dcgan::cpu
