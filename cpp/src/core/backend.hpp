// The small interface every backend implements: networks compiled for a batch size, and the
// handful of element-wise operations the GAN step needs. Pointers returned here live in the
// backend's memory (host memory for the CPU backend, device memory for CUDA).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/spec.hpp"

namespace dcgan {

// Parameters of one network, shared by all its compiled batch sizes. `version` changes whenever
// the values change (Adam, load), so compiled networks know when to re-lay-out their weights.
struct ParamStore {
  virtual ~ParamStore() = default;
  int64_t n_params = 0, n_state = 0;
  uint64_t version = 0;
  virtual float* params() = 0;
  virtual float* state() = 0;         // BN running statistics
  virtual float* grad(int slot) = 0;  // two slots: D's real and fake passes write separately
  virtual float* adam_m() = 0;
  virtual float* adam_v() = 0;
};

// A network compiled for a fixed batch size. All buffers are fixed at construction.
class NetExec {
 public:
  virtual ~NetExec() = default;
  virtual int64_t batch() const = 0;
  virtual float* input() = 0;          // (batch, *in), plain row-major
  virtual const float* output() = 0;   // (batch, *out), plain; valid after forward
  virtual float* d_output() = 0;       // filled by the caller before backward
  virtual const float* d_input() = 0;  // valid after backward(need_d_input = true)
  // `dropout_counter` selects this pass's dropout masks (Stream::Dropout of the net's seed).
  virtual void forward(bool training, uint64_t dropout_counter) = 0;
  // Back-propagates d_output. Weight gradients overwrite grad(grad_slot); -1 skips them.
  // Forward state is left intact, so backward may run again with another d_output.
  virtual void backward(bool need_d_input, int grad_slot) = 0;
};

enum class NoiseKind { Normal, Uniform };  // N(0, 1) or U(-1, 1)

// Minimax is seed 004's formulation (D maximises log D(x) + log(1 - D(G(z))), G maximises
// log D(G(z))): the same gradients as BCE. Saturating is the GAN paper's literal game, G
// minimising log(1 - D(G(z))).
enum class LossKind { BCE, Minimax, Saturating, LSGAN, Hinge };

struct AdamParams {
  float lr = 2e-4f, beta1 = 0.5f, beta2 = 0.999f, eps = 1e-8f;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual void set_threads(int n) = 0;
  virtual std::unique_ptr<ParamStore> make_params(int64_t n_params, int64_t n_state) = 0;
  // `seed` keys the dropout masks.
  virtual std::unique_ptr<NetExec> compile(const NetPlan& plan, ParamStore& params, int64_t batch,
                                           uint64_t seed) = 0;

  virtual void upload(float* dst, const float* host, int64_t n) = 0;
  virtual void download(float* host, const float* src, int64_t n) = 0;
  virtual void copy(float* dst, const float* src, int64_t n) = 0;
  // dst[i*per .. (i+1)*per) = host_data[index[i]*per ..] for i < count.
  virtual void gather(float* dst, const float* host_data, const int64_t* index, int64_t count,
                      int64_t per) = 0;
  virtual void fill_noise(float* dst, int64_t n, NoiseKind kind, uint64_t seed, uint32_t stream,
                          uint64_t counter) = 0;

  // Discriminator loss term on logits (n of them) against `target` (1 - smoothing for real,
  // 0 for fake): writes d(mean loss)/d(logits) * scale into `d_logits` and returns
  // {loss, mean D output}.
  struct LossOut {
    double loss, mean_out;
  };
  virtual LossOut d_loss(LossKind kind, bool real, const float* logits, int64_t n, float target,
                         float* d_logits) = 0;
  // Generator loss on D's logits for fakes; gradient into d_logits.
  virtual LossOut g_loss(LossKind kind, const float* logits, int64_t n, float* d_logits) = 0;

  // One Adam step (PyTorch's formula) with gradient g0 (+ g1 when g1 != nullptr); `t` is the
  // 1-based step count for bias correction.
  virtual void adam(ParamStore& p, const AdamParams& h, int64_t t, const float* g0,
                    const float* g1) = 0;
  // BN running statistics update, done by NetExec itself; nothing here.
};

std::unique_ptr<Backend> make_cpu_backend(int threads);

}  // namespace dcgan
