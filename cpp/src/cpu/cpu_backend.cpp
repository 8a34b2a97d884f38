#include "cpu/cpu_backend.hpp"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "cpu/ops.hpp"

namespace dcgan::cpu {

HostParams::HostParams(int64_t n_params, int64_t n_state) {
  this->n_params = n_params;
  this->n_state = n_state;
  // Each array starts on a 64-byte boundary.
  const int64_t np = (n_params + 15) / 16 * 16, ns = (n_state + 15) / 16 * 16;
  buf_.assign(static_cast<size_t>(5 * np + ns + 16), 0.f);
  float* base = buf_.data();
  base += (16 - (reinterpret_cast<uintptr_t>(base) / sizeof(float)) % 16) % 16;
  p_ = base, g0_ = p_ + np, g1_ = g0_ + np, m_ = g1_ + np, v_ = m_ + np, s_ = v_ + np;
}

namespace {

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(int threads) {
    if (threads > 0) set_threads(threads);
  }
  std::string name() const override { return "cpu"; }
  void set_threads(int n) override {
    if (n > 0) omp_set_num_threads(n);
  }
  std::unique_ptr<ParamStore> make_params(int64_t n_params, int64_t n_state) override {
    return std::make_unique<HostParams>(n_params, n_state);
  }
  std::unique_ptr<NetExec> compile(const NetPlan& plan, ParamStore& params, int64_t batch,
                                   uint64_t seed) override {
    return compile_net(ctx_, plan, params, batch, seed);
  }
  void upload(float* dst, const float* host, int64_t n) override {
    std::memcpy(dst, host, static_cast<size_t>(n) * sizeof(float));
  }
  void download(float* host, const float* src, int64_t n) override {
    std::memcpy(host, src, static_cast<size_t>(n) * sizeof(float));
  }
  void copy(float* dst, const float* src, int64_t n) override {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
  }
  void gather(float* dst, const float* host_data, const int64_t* index, int64_t count,
              int64_t per) override {
    cpu::gather(dst, host_data, index, count, per);
  }
  void fill_noise(float* dst, int64_t n, NoiseKind kind, uint64_t seed, uint32_t stream,
                  uint64_t counter) override {
    cpu::fill_noise(dst, n, kind, seed, stream, counter);
  }
  LossOut d_loss(LossKind kind, bool real, const float* logits, int64_t n, float target,
                 float* d_logits) override {
    return cpu::d_loss(kind, real, logits, n, target, d_logits);
  }
  LossOut g_loss(LossKind kind, const float* logits, int64_t n, float* d_logits) override {
    return cpu::g_loss(kind, logits, n, d_logits);
  }
  void adam(ParamStore& p, const AdamParams& h, int64_t t, const float* g0,
            const float* g1) override {
    adam_update(p.params(), p.adam_m(), p.adam_v(), p.n_params, h, t, g0, g1);
  }

 private:
  Ctx ctx_;
};

}  // namespace

}  // namespace dcgan::cpu

namespace dcgan {
std::unique_ptr<Backend> make_cpu_backend(int threads) {
  return std::make_unique<cpu::CpuBackend>(threads);
}
}  // namespace dcgan
