// The GAN training step, written once for every backend: G forward, D on real and on fake,
// D update, G update through D; n_critic / g_steps alternation and the joint update of
// seeds 001/002. Losses and Adam run through the backend's operations.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "core/backend.hpp"
#include "core/spec.hpp"

namespace dcgan {

struct GanConfig {
  int64_t z_dim = 100;
  Shape image;  // (C, H, W) of the data and of G's output
  std::vector<LayerSpec> g_layers, d_layers;
  int64_t batch = 64;
  LossKind loss = LossKind::BCE;
  float label_smoothing = 0.f;  // real target = 1 - label_smoothing
  int n_critic = 1;             // D steps per training step
  int g_steps = 1;              // G steps per training step
  bool joint = false;           // one D forward on fakes feeds both updates
  AdamParams adam_g, adam_d;
  NoiseKind noise = NoiseKind::Normal;
  uint64_t seed = 0;
  int threads = 0;  // 0: the backend's default
};

struct StepStats {
  float d_loss = 0, g_loss = 0, d_real = 0, d_fake = 0;
};

// Where training stands: enough, with the parameters and Adam moments, to resume exactly.
struct TrainState {
  int64_t step = 0;  // completed training steps
  int64_t adam_t_d = 0, adam_t_g = 0;
  int64_t epoch = 0;   // epoch of the data cursor
  int64_t cursor = 0;  // next position in this epoch's permutation
};

class GanTrainer {
 public:
  GanTrainer(const GanConfig& cfg, std::unique_ptr<Backend> backend);

  const GanConfig& config() const { return cfg_; }
  const NetPlan& plan(int net) const { return net == 0 ? g_plan_ : d_plan_; }
  ParamStore& params(int net) { return net == 0 ? *g_params_ : *d_params_; }
  Backend& backend() { return *be_; }
  TrainState& state() { return st_; }

  // Training data for run(): n images of cfg.image, host memory, not copied: the caller keeps
  // it alive and unchanged until the next set_data.
  void set_data(const float* data, int64_t n);
  int64_t steps_per_epoch() const;

  // One step on a caller-given batch (host, (batch, *image)); every D step of it uses this batch.
  StepStats step(const float* host_batch);
  // `steps` steps drawing batches from the data in a seeded per-epoch shuffle (the last
  // incomplete batch of an epoch is dropped).
  void run(int64_t steps, StepStats* out);
  // n samples from G in inference mode (BN running statistics, no dropout) into host memory.
  void generate(int64_t n, uint64_t seed, float* host_out);
  // The latent batch (batch, z_dim) of the `index`-th G forward of training step `step`
  // (0: the first D step's; with n_critic = k, 1..k-1 the later D steps'; then one per extra
  // G step): for tests that replay a step in another framework.
  void noise(int64_t step, float* host_out, int64_t index = 0);
  // D's output (logits) for n host images, inference mode.
  void discriminate(int64_t n, const float* host_images, float* host_logits);

  // The networks as compiled for the training batch; for tests that inspect gradients.
  NetExec& train_net(int net) { return net == 0 ? *g_ : *d_; }

 private:
  StepStats train_step(const float* host_batch);
  void load_real(const float* host_batch);
  void next_batch_index(int64_t* index);
  NetExec& eval_net(int net, int64_t batch);

  GanConfig cfg_;
  std::unique_ptr<Backend> be_;
  NetPlan g_plan_, d_plan_;
  std::unique_ptr<ParamStore> g_params_, d_params_;
  std::unique_ptr<NetExec> g_, d_;
  std::map<std::pair<int, int64_t>, std::unique_ptr<NetExec>> eval_;
  TrainState st_;
  const float* data_ = nullptr;
  int64_t n_data_ = 0;
  std::vector<int64_t> perm_;
  int64_t perm_epoch_ = -1;
  std::vector<int64_t> index_;
};

}  // namespace dcgan
