// The GAN training step, written once for every backend: G forward, D on real and on fake,
// D update, G update through D; n_critic / g_steps alternation and the joint update of
// seeds 001/002. Losses and Adam run through the backend's operations.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.hpp"
#include "core/batch_source.hpp"
#include "core/comm.hpp"
#include "core/spec.hpp"

namespace dcgan {

// Which BatchNorm statistics G uses when it generates samples (inference). Precise: the pooled
// mean and variance of each BN layer's input over fresh noise batches in training mode,
// recomputed when the weights change; Running: the exponential running averages (PyTorch's
// eval()); Batch: each batch's own statistics (PyTorch's train(), as its DCGAN example samples).
enum class BnInference { Precise, Running, Batch };

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
  BnInference bn_inference = BnInference::Precise;
  int64_t precise_bn_samples = 256;  // noise samples the precise statistics pool
  // Data-parallel runs: BatchNorm statistics of training steps over all ranks' batches.
  bool sync_bn = false;
};

// Floating-point operations of one training step's convolutions, transposed convolutions and
// dense layers (2 per multiply-add), by pass, as device_step runs them: which networks run
// forward, which backward passes compute input gradients (none below a network's first
// parameterised layer unless the caller needs them) and which compute weight gradients (none
// for D in the G step). BatchNorm, activations, dropout, losses and Adam are not counted: they
// are memory-bound and under 1% of the multiply-adds of every preset.
struct StepFlops {
  double forward = 0, backward_data = 0, backward_weights = 0;
  double total() const { return forward + backward_data + backward_weights; }
};

// Multiply-adds of one forward pass of a Dense/Conv2d/ConvTranspose2d layer over `batch`
// samples (0 for other layers); backward-data and backward-weights each do as many. Only kernel
// taps over real positions count: those over zero padding are not arithmetic on the data (a
// kernel that skips them does less work, not faster work).
double layer_macs(const ResolvedLayer& L, int64_t batch);

struct StepStats {
  float d_loss = 0, g_loss = 0, d_real = 0, d_fake = 0;
};

// Per-step statistics as the step writes them into backend memory: D's loss on real and on
// fake separately (the host adds them), G's loss, mean D(x), mean D(G(z)), and a slot for
// values nobody reads (the G step's mean D output).
enum StatSlot {
  kStatDLossReal,
  kStatDLossFake,
  kStatGLoss,
  kStatDReal,
  kStatDFake,
  kStatScratch,
  kStatsPerStep
};

// Where training stands: enough, with the parameters and Adam moments, to resume exactly.
struct TrainState {
  int64_t step = 0;  // completed training steps
  int64_t adam_t_d = 0, adam_t_g = 0;
  DataCursor data;  // epoch and position of the data cursor
  // InvalidArgument naming the field unless every counter is in [0, kMaxCounter].
  void check() const;
};

class GanTrainer {
 public:
  // `comm` defaults to a LocalCommunicator (one process).
  GanTrainer(const GanConfig& cfg, std::unique_ptr<Backend> backend,
             std::unique_ptr<Communicator> comm = nullptr);

  const GanConfig& config() const { return cfg_; }
  const NetPlan& plan(int net) const { return net == 0 ? g_plan_ : d_plan_; }
  ParamStore& params(int net) { return net == 0 ? *g_params_ : *d_params_; }
  Backend& backend() { return *be_; }
  Communicator& comm() { return *comm_; }
  TrainState& state() { return st_; }

  // Training data for run(), held as given (see BatchSource); this rank's share of each epoch
  // comes from an EpochSampler over it.
  void set_data(std::unique_ptr<BatchSource> source);
  bool has_data() const { return source_ != nullptr; }
  int64_t steps_per_epoch() const;
  // Steps left in the epoch the next step belongs to.
  int64_t steps_left_in_epoch() const;

  // One step on a caller-given batch (host float32, (batch, *image), already in the model's
  // range); every D step of it uses this batch.
  StepStats step(const float* host_batch);
  // `steps` steps on batches from the data source. Statistics stay in backend memory and come
  // back once per chunk of steps.
  void run(int64_t steps, StepStats* out);
  // n samples from G in inference mode (BN running statistics, no dropout) into host memory.
  void generate(int64_t n, uint64_t seed, float* host_out);
  // G's BatchNorm statistics for the current weights as generate() uses them in Precise mode,
  // laid out as G's state array (per BN layer: mean, then variance). Computed over
  // ceil(precise_bn_samples / batch) training-mode forwards of the training batch on noise
  // batches precise_bn_noise(0), (1), ...; cached until the weights change. Running
  // statistics are left as they were.
  const std::vector<float>& precise_bn_state();
  // Noise batch k (batch, z_dim) of the precise statistics, for tests.
  void precise_bn_noise(int64_t k, float* host_out);
  // Which statistics generate() uses; samples <= 0 keeps the current count.
  void set_bn_inference(BnInference mode, int64_t samples);
  // To be called after the parameters were written from outside a training step (a load):
  // drops the cached precise statistics.
  void weights_changed() { ++weights_version_; }

  // This rank's slice of the latent batch (batch, z_dim) of the `index`-th G forward of training
  // step `step`
  // (0: the first D step's; with n_critic = k, 1..k-1 the later D steps'; then one per extra
  // G step): for tests that replay a step in another framework.
  void noise(int64_t step, float* host_out, int64_t index = 0);
  // D's output (logits) for n host images, inference mode.
  void discriminate(int64_t n, const float* host_images, float* host_logits);

  // The networks as compiled for the training batch; for tests that inspect gradients.
  NetExec& train_net(int net) { return net == 0 ? *g_ : *d_; }

  // Data-parallel runs: "" when every rank holds the same parameters, Adam moments and BN
  // statistics as rank 0 (compared by a 64-bit hash of their bytes), else which ranks differ.
  // A collective: every rank must call it. Synchronises.
  std::string replica_mismatch();

  // The step's FLOPs (see StepFlops), per rank.
  StepFlops step_flops() const;

  // The first of the networks' arrays (parameters, Adam moments, BN statistics) holding NaN or
  // Inf, as "generator parameters" etc., or "" when all are finite. Synchronises.
  std::string non_finite_state();

  // Whether run() replays a recorded step (a CUDA graph) where the backend can: on by default.
  void set_use_recording(bool on);
  // "recorded" once run() replays a recording, "eager" before (or where it may not), or why
  // the backend could not record.
  const std::string& recording_status() const { return rec_status_; }

 private:
  // One training step: the host half (counters, real batches staged), then the device half,
  // issued directly or replayed from a recording; statistics into stats_out (backend memory).
  void train_step(const float* host_batch, float* stats_out, bool may_record);
  // Everything a step does on the backend, reading its counters and batches from backend
  // memory only: the work a recording holds.
  void device_step();
  // Forgets the recording (the staged batches moved or changed format): re-recorded after the
  // next eager warm-up step.
  void drop_recording();
  // InvalidArgument when the networks cannot fit in the backend's free memory at this batch.
  void check_memory();
  void reduce_grads(ParamStore& p, bool two_slots);
  // all_reduce_mean / broadcast on n floats of backend memory, staged through the host where
  // the communicator's memory is not the backend's.
  void comm_mean(float* p, int64_t n);
  void comm_broadcast(float* p, int64_t n);
  void in_comm_memory(float* p, int64_t n, const std::function<void(float*)>& op);
  void collect(const float* dev_stats, int64_t steps, StepStats* out);
  NetExec& eval_net(int net, int64_t batch);
  // Runs `body` with G's state array replaced by `state` (nullptr: G's own, restored after body
  // even where a training-mode forward updates it).
  void with_g_state(const float* state, const std::function<void()>& body);

  GanConfig cfg_;
  std::unique_ptr<Backend> be_;
  std::unique_ptr<Communicator> comm_;
  NetPlan g_plan_, d_plan_;
  std::unique_ptr<ParamStore> g_params_, d_params_;
  std::unique_ptr<NetExec> g_, d_;
  std::map<std::pair<int, int64_t>, std::unique_ptr<NetExec>> eval_;
  TrainState st_;
  std::unique_ptr<BatchSource> source_;
  std::unique_ptr<EpochSampler> sampler_;
  std::vector<int64_t> index_;
  DeviceBuffer stats_;       // kStatsChunk steps of kStatsPerStep floats
  DeviceBuffer step_stats_;  // the current step's kStatsPerStep floats
  DeviceBuffer counters_;    // the current step's StepCounters
  bool use_recording_ = true;
  int eager_steps_ = 0;  // eager run() steps since the recording was dropped
  std::unique_ptr<Recording> rec_;
  std::string rec_status_ = "eager";
  uint64_t weights_version_ = 0;  // bumped by every step and every outside write
  uint64_t precise_version_ = ~uint64_t(0);
  std::vector<float> precise_;
};

}  // namespace dcgan
