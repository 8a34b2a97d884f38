#include "core/gan_step.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/init.hpp"
#include "core/layer_kinds.hpp"
#include "core/precise_bn.hpp"
#include "core/rng.hpp"

namespace dcgan {

namespace {
// Counters per step: room for 64 noise draws and 256 D/G passes in one training step.
constexpr uint64_t kNoisePerStep = 64;
constexpr uint64_t kPassesPerStep = 256;
// Dropout masks of D and G must differ even at equal counters.
constexpr uint64_t kGSeedSalt = 0x9E3779B97F4A7C15ull;
// Steps whose statistics are gathered in backend memory before one download.
constexpr int64_t kStatsChunk = 256;
// Most noise samples precise BatchNorm statistics may pool (a bound on the work one call does).
constexpr int64_t kMaxPreciseBnSamples = int64_t(1) << 24;
// Dropout counters of the precise-statistics forwards: far from any training step's.
constexpr uint64_t kPreciseBnPasses = uint64_t(1) << 39;
// Eager run() steps before a step is recorded: libraries allocate and load kernels on first use.
constexpr int kWarmupSteps = 1;
// Dropout masks of rank r > 0 are keyed by seed ^ r * kRankSalt (rank 0 keeps a lone run's).
constexpr uint64_t kRankSalt = 0xD1B54A32D192ED03ull;

// The counters of one step, uploaded before it runs; operations read them through Counter.
enum CounterSlot { kCtrNoise, kCtrPass, kCtrAdamD, kCtrAdamG, kCountersPerStep };
// Backend memory is allocated in floats: a uint64 takes two.
constexpr int64_t kCounterFloats = kCountersPerStep * 2;
}  // namespace

void TrainState::check() const {
  const std::pair<const char*, int64_t> fields[] = {{"step", step},
                                                    {"adam_t_d", adam_t_d},
                                                    {"adam_t_g", adam_t_g},
                                                    {"epoch", data.epoch},
                                                    {"cursor", data.cursor}};
  for (const auto& f : fields)
    if (f.second < 0 || f.second > kMaxCounter)
      throw InvalidArgument(std::string("training state '") + f.first +
                            "' = " + std::to_string(f.second) + " is outside [0, 2^48]");
}

GanTrainer::GanTrainer(const GanConfig& cfg, std::unique_ptr<Backend> backend,
                       std::unique_ptr<Communicator> comm)
    : cfg_(cfg),
      be_(std::move(backend)),
      comm_(comm ? std::move(comm) : std::make_unique<LocalCommunicator>()) {
  if (cfg_.batch <= 0)
    throw InvalidArgument("batch_size must be positive, got " + std::to_string(cfg_.batch));
  if (cfg_.z_dim <= 0)
    throw InvalidArgument("z_dim must be positive, got " + std::to_string(cfg_.z_dim));
  if (cfg_.image.size() != 3)
    throw InvalidArgument("image shape must be (C, H, W), got " + shape_str(cfg_.image));
  if (cfg_.n_critic < 1 || cfg_.g_steps < 1)
    throw InvalidArgument("n_critic and g_steps must be >= 1");
  if (cfg_.precise_bn_samples <= 0 || cfg_.precise_bn_samples > kMaxPreciseBnSamples)
    throw InvalidArgument("precise_bn_samples must be in [1, " +
                          std::to_string(kMaxPreciseBnSamples) + "], got " +
                          std::to_string(cfg_.precise_bn_samples));
  if (cfg_.joint && (cfg_.n_critic != 1 || cfg_.g_steps != 1))
    throw InvalidArgument("the joint update needs n_critic == 1 and g_steps == 1");
  if (!(cfg_.label_smoothing >= 0.f && cfg_.label_smoothing < 1.f))
    throw InvalidArgument("label_smoothing must be in [0, 1)");
  for (const AdamParams* a : {&cfg_.adam_g, &cfg_.adam_d}) {
    if (!(a->lr > 0.f) || !std::isfinite(a->lr)) throw InvalidArgument("learning rate must be > 0");
    if (!(a->beta1 >= 0.f && a->beta1 < 1.f) || !(a->beta2 >= 0.f && a->beta2 < 1.f))
      throw InvalidArgument("Adam betas must be in [0, 1)");
    if (!(a->eps > 0.f)) throw InvalidArgument("Adam eps must be > 0");
  }
  g_plan_ = plan_network("generator", {cfg_.z_dim}, cfg_.g_layers);
  if (g_plan_.out != cfg_.image)
    throw InvalidArgument("generator output " + shape_str(g_plan_.out) +
                          " does not match the image shape " + shape_str(cfg_.image));
  d_plan_ = plan_network("discriminator", cfg_.image, cfg_.d_layers);
  if (d_plan_.out != Shape{1})
    throw InvalidArgument("discriminator must end in one logit per image, got output " +
                          shape_str(d_plan_.out));
  be_->activate();
  check_memory();
  comm_->attach(*be_);

  g_params_ = be_->make_params(g_plan_.n_params, g_plan_.n_state, 1);
  d_params_ = be_->make_params(d_plan_.n_params, d_plan_.n_state, 2);
  for (int net = 0; net < 2; ++net) {
    const NetPlan& p = plan(net);
    std::vector<float> w(p.n_params), s(p.n_state);
    init_parameters(p, cfg_.seed, static_cast<uint32_t>(net), w.data(), s.data());
    ParamStore& ps = params(net);
    ps.write(Buf::Params, 0, w.data(), p.n_params);
    ps.write(Buf::State, 0, s.data(), p.n_state);
    // Every rank starts from rank 0's weights (they agree already when seeds agree).
    if (comm_->size() > 1) {
      comm_broadcast(ps.params(), p.n_params);
      comm_broadcast(ps.state(), p.n_state);
    }
  }
  const uint64_t rank_salt = static_cast<uint64_t>(comm_->rank()) * kRankSalt;
  g_ = be_->compile(g_plan_, *g_params_, cfg_.batch, cfg_.seed ^ kGSeedSalt ^ rank_salt);
  d_ = be_->compile(d_plan_, *d_params_, cfg_.batch, cfg_.seed ^ rank_salt);
  if (cfg_.sync_bn && comm_->size() > 1) {
    // Fails here, not in the first step, where the backend has no synchronised BatchNorm.
    try {
      g_->set_batch_comm(comm_.get());
      g_->set_batch_comm(nullptr);
    } catch (const InvalidArgument&) {
      throw InvalidArgument("sync_bn=True: the " + be_->name() +
                            " backend has no synchronised BatchNorm yet; use sync_bn=False (each "
                            "rank normalises with its own batch) or the cpu backend");
    }
  }
  index_.resize(cfg_.batch);
  stats_ = DeviceBuffer(*be_, kStatsChunk * kStatsPerStep);
  step_stats_ = DeviceBuffer(*be_, kStatsPerStep);
  counters_ = DeviceBuffer(*be_, kCounterFloats);
}

namespace {
// A lower bound on the bytes a network compiled for `batch` holds: its input, every layer's
// output and output gradient (float32), and its parameter store.
double net_bytes(const NetPlan& p, int64_t batch, int grad_slots) {
  double act = 2.0 * static_cast<double>(numel(p.in));
  for (const auto& L : p.layers) act += 2.0 * static_cast<double>(numel(L.out));
  return 4.0 *
         (static_cast<double>(batch) * act + static_cast<double>(p.n_params) * (3 + grad_slots) +
          static_cast<double>(p.n_state));
}

std::string gigabytes(double b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f GB", b / 1e9);
  return s;
}
}  // namespace

void GanTrainer::check_memory() {
  const double need = net_bytes(g_plan_, cfg_.batch, 1) + net_bytes(d_plan_, cfg_.batch, 2);
  const int64_t have = be_->memory_available();
  if (have >= 0 && need > static_cast<double>(have))
    throw InvalidArgument("batch_size " + std::to_string(cfg_.batch) + " needs at least " +
                          gigabytes(need) + " for the networks' activations and parameters, but " +
                          gigabytes(static_cast<double>(have)) + " are available to the " +
                          be_->name() + " backend; use a smaller batch_size");
}

std::string GanTrainer::non_finite_state() {
  be_->activate();
  for (int net = 0; net < 2; ++net) {
    ParamStore& ps = params(net);
    const std::pair<const char*, Buf> arrays[] = {{"parameters", Buf::Params},
                                                  {"Adam first moments", Buf::AdamM},
                                                  {"Adam second moments", Buf::AdamV},
                                                  {"BatchNorm running statistics", Buf::State}};
    for (const auto& a : arrays)
      if (be_->count_non_finite(ps.data(a.second), ps.size(a.second)) > 0)
        return std::string(net == 0 ? "generator " : "discriminator ") + a.first;
  }
  return "";
}

void GanTrainer::set_use_recording(bool on) {
  use_recording_ = on;
  if (!on) {
    rec_.reset();
    rec_status_ = "eager";
  }
}

void GanTrainer::set_data(std::unique_ptr<BatchSource> source) {
  const ImageFormat& f = source->format();
  if (Shape{f.c, f.h, f.w} != cfg_.image)
    throw InvalidArgument("data images are " + shape_str({f.c, f.h, f.w}) +
                          ", the model's image shape is " + shape_str(cfg_.image));
  auto sampler = std::make_unique<EpochSampler>(source->size(), cfg_.batch, cfg_.seed,
                                                comm_->rank(), comm_->size());
  source_ = std::move(source);
  sampler_ = std::move(sampler);
  // A recording stays valid: stage_batch reports when a new format or size moves the staged
  // batch, and the recording is dropped then.
}

void GanTrainer::drop_recording() {
  rec_.reset();
  eager_steps_ = 0;
  if (rec_status_ == "recorded") rec_status_ = "eager";  // a failure's reason stays
}

int64_t GanTrainer::steps_per_epoch() const { return sampler_ ? sampler_->steps_per_epoch() : 0; }

int64_t GanTrainer::steps_left_in_epoch() const {
  return sampler_ ? sampler_->steps_left(st_.data) : 0;
}

void GanTrainer::in_comm_memory(float* p, int64_t n, const std::function<void(float*)>& op) {
  if (comm_->size() == 1 || n == 0) return;
  if (comm_->host_memory() == be_->host_memory()) return op(p);
  if (!comm_->host_memory())
    throw InvalidArgument("the " + comm_->name() + " communicator needs device memory; the " +
                          be_->name() + " backend's is host memory");
  std::vector<float> h(static_cast<size_t>(n));
  be_->download(h.data(), p, n);
  op(h.data());
  be_->upload(p, h.data(), n);
}

void GanTrainer::comm_mean(float* p, int64_t n) {
  in_comm_memory(p, n, [&](float* q) { comm_->all_reduce_mean(q, n); });
}

void GanTrainer::comm_broadcast(float* p, int64_t n) {
  in_comm_memory(p, n, [&](float* q) { comm_->broadcast(q, n, 0); });
}

void GanTrainer::reduce_grads(ParamStore& p, bool two_slots) {
  if (comm_->size() == 1) return;
  comm_mean(p.grad(0), p.n_params);
  if (two_slots) comm_mean(p.grad(1), p.n_params);
}

namespace {
// FNV-1a over bytes, continuing from h.
uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
  const auto* b = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001B3ull;
  return h;
}
}  // namespace

std::string GanTrainer::replica_mismatch() {
  if (comm_->size() == 1) return "";
  be_->activate();
  uint64_t h = 0xCBF29CE484222325ull;
  for (int net = 0; net < 2; ++net) {
    ParamStore& ps = params(net);
    for (Buf b : {Buf::Params, Buf::AdamM, Buf::AdamV, Buf::State}) {
      std::vector<float> v(static_cast<size_t>(ps.size(b)));
      ps.read(b, 0, v.data(), ps.size(b));
      h = fnv1a(h, v.data(), v.size() * sizeof(float));
    }
  }
  // The hash as two floats' bits (gathers copy bits, they do no arithmetic).
  float mine[2];
  std::memcpy(mine, &h, sizeof h);
  const int world = comm_->size();
  std::vector<float> all(static_cast<size_t>(2 * world));
  if (comm_->host_memory()) {
    comm_->all_gather(mine, all.data(), 2);
  } else {
    DeviceBuffer in(*be_, 2), out(*be_, 2 * world);
    be_->upload(in.get(), mine, 2);
    comm_->all_gather(in.get(), out.get(), 2);
    be_->download(all.data(), out.get(), 2 * world);
  }
  std::string bad;
  for (int r = 1; r < world; ++r)
    if (std::memcmp(&all[2 * r], &all[0], 2 * sizeof(float)) != 0)
      bad += (bad.empty() ? "" : ", ") + std::to_string(r);
  return bad.empty() ? "" : "rank(s) " + bad + " hold other parameters than rank 0";
}

void GanTrainer::train_step(const float* host_batch, float* stats_out, bool may_record) {
  // Host half: this step's counters, and its real batches into staging slots 0..n_critic-1.
  uint64_t ctr[kCountersPerStep];
  ctr[kCtrNoise] = static_cast<uint64_t>(st_.step) * kNoisePerStep;
  ctr[kCtrPass] = static_cast<uint64_t>(st_.step) * kPassesPerStep;
  ctr[kCtrAdamD] = static_cast<uint64_t>(st_.adam_t_d);
  ctr[kCtrAdamG] = static_cast<uint64_t>(st_.adam_t_g);
  be_->upload(counters_.get(), reinterpret_cast<const float*>(ctr), kCounterFloats);
  bool changed = false;
  for (int k = 0; k < cfg_.n_critic; ++k) {
    if (host_batch) {
      ImageFormat f;  // float NCHW, already in the model's range
      f.c = cfg_.image[0], f.h = cfg_.image[1], f.w = cfg_.image[2];
      std::vector<const void*> ptrs(static_cast<size_t>(cfg_.batch));
      for (int64_t i = 0; i < cfg_.batch; ++i) ptrs[i] = host_batch + i * f.numel();
      changed |= be_->stage_batch(k, f, ptrs.data(), cfg_.batch);
    } else {
      sampler_->next(st_.data, index_.data());
      changed |= be_->stage_batch(k, source_->format(), source_->fetch(index_.data(), cfg_.batch),
                                  cfg_.batch);
    }
  }
  if (changed) drop_recording();

  // Device half. A recording holds no host work: gradient reduction and BN statistics across
  // processes go through the communicator on the host, so several processes run eagerly.
  if (may_record && use_recording_ && comm_->size() == 1) {
    if (!rec_ && eager_steps_ >= kWarmupSteps && rec_status_ == "eager") {
      rec_status_.clear();
      rec_ = be_->record([this] { device_step(); }, &rec_status_);
      if (rec_) rec_status_ = "recorded";
    }
    if (rec_) {
      rec_->replay();
    } else {
      device_step();
      ++eager_steps_;
    }
  } else {
    device_step();
  }
  be_->copy(stats_out, step_stats_.get(), kStatsPerStep);

  st_.adam_t_d += cfg_.n_critic;
  st_.adam_t_g += cfg_.g_steps;
  st_.step++;
  ++weights_version_;
}

void GanTrainer::device_step() {
  const int64_t B = cfg_.batch;
  const int64_t n_img = B * numel(cfg_.image);
  const float real_target = 1.f - cfg_.label_smoothing;
  const auto* ctr = reinterpret_cast<const uint64_t*>(counters_.get());
  float* stats = step_stats_.get();
  uint64_t noise_k = 0, pass_k = 0, adam_d_k = 0, adam_g_k = 0;
  auto noise = [&] { return Counter(ctr + kCtrNoise, noise_k++); };
  auto pass = [&] { return Counter(ctr + kCtrPass, pass_k++); };

  // This rank's slice of the global batch's noise.
  const int64_t noise_first = static_cast<int64_t>(comm_->rank()) * B * cfg_.z_dim;
  auto g_forward = [&] {
    be_->fill_noise(g_->input(), B * cfg_.z_dim, cfg_.noise, cfg_.seed,
                    static_cast<uint32_t>(Stream::Noise), noise(), noise_first);
    g_->forward(true, pass());
    be_->copy(d_->input(), g_->output(), n_img);
  };
  auto g_backward_from_d = [&] {
    be_->copy(g_->d_output(), d_->d_input(), n_img);
    g_->backward(false, 0);
    reduce_grads(*g_params_, false);
    be_->adam(*g_params_, cfg_.adam_g, Counter(ctr + kCtrAdamG, ++adam_g_k), g_params_->grad(0),
              nullptr);
  };
  auto d_update = [&] {
    reduce_grads(*d_params_, true);
    be_->adam(*d_params_, cfg_.adam_d, Counter(ctr + kCtrAdamD, ++adam_d_k), d_params_->grad(0),
              d_params_->grad(1));
  };
  // Synchronised BatchNorm for this step's passes only (never for sampling or evaluation).
  struct BatchComm {
    NetExec *g, *d;
    BatchComm(NetExec* g_, NetExec* d_, Communicator* c) : g(g_), d(d_) {
      g->set_batch_comm(c), d->set_batch_comm(c);
    }
    ~BatchComm() { g->set_batch_comm(nullptr), d->set_batch_comm(nullptr); }
  };
  std::unique_ptr<BatchComm> batch_comm;
  if (cfg_.sync_bn && comm_->size() > 1)
    batch_comm = std::make_unique<BatchComm>(g_.get(), d_.get(), comm_.get());
  auto end_step = [&] {
    // BatchNorm running statistics: the mean over ranks (no-op alone; with synchronised
    // BatchNorm they agree already, up to rounding).
    if (comm_->size() > 1) {
      comm_mean(g_params_->state(), g_plan_.n_state);
      comm_mean(d_params_->state(), d_plan_.n_state);
    }
  };

  for (int k = 0; k < cfg_.n_critic; ++k) {
    be_->convert_batch(d_->input(), k);
    d_->forward(true, pass());
    be_->d_loss(cfg_.loss, true, d_->output(), B, real_target, d_->d_output(),
                stats + kStatDLossReal, stats + kStatDReal);
    d_->backward(false, 0);

    g_forward();
    d_->forward(true, pass());
    be_->d_loss(cfg_.loss, false, d_->output(), B, 0.f, d_->d_output(), stats + kStatDLossFake,
                stats + kStatDFake);
    d_->backward(false, 1);

    if (cfg_.joint) {
      // G's gradient through the same forward pass, before D's weights change.
      be_->g_loss(cfg_.loss, d_->output(), B, d_->d_output(), stats + kStatGLoss,
                  stats + kStatScratch);
      d_->backward(true, -1);
      d_update();
      g_backward_from_d();
      end_step();
      return;
    }
    d_update();
  }

  for (int j = 0; j < cfg_.g_steps; ++j) {
    // The first G step reuses the last D step's fakes (D's input still holds them, G's
    // activations are those of that forward), as PyTorch's reference loop does.
    if (j > 0) g_forward();
    d_->forward(true, pass());
    // D's output on the fakes after its update goes to a scratch slot: D(G(z)) reports the
    // D step's value, as before.
    be_->g_loss(cfg_.loss, d_->output(), B, d_->d_output(), stats + kStatGLoss,
                stats + kStatScratch);
    d_->backward(true, -1);
    g_backward_from_d();
  }
  end_step();
}

namespace {
// Kernel taps that land on real (not padding) positions, summed over one spatial axis.
// Conv: output o reads input o*stride - lo + k; ConvT: input i writes output i*stride - lo + k.
double valid_taps(int64_t positions, int64_t stride, int64_t lo, int64_t kernel, int64_t limit) {
  int64_t taps = 0;
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t k = 0; k < kernel; ++k) {
      const int64_t at = p * stride - lo + k;
      taps += at >= 0 && at < limit;
    }
  return static_cast<double>(taps);
}
}  // namespace

double layer_macs(const ResolvedLayer& L, int64_t batch) {
  const LayerSpec& s = L.spec;
  const double b = static_cast<double>(batch);
  const double ic = static_cast<double>(L.in[0]), oc = static_cast<double>(s.out);
  switch (s.kind) {
    case LayerKind::Dense:
      return b * ic * oc;
    case LayerKind::Conv2d:  // output pixel x tap (in bounds) x in-channel x out-channel
      return b * ic * oc * valid_taps(L.out[1], s.stride, L.pad_h.lo, s.kernel, L.in[1]) *
             valid_taps(L.out[2], s.stride, L.pad_w.lo, s.kernel, L.in[2]);
    case LayerKind::ConvTranspose2d:  // input pixel x tap (in bounds) x in- x out-channel
      return b * ic * oc * valid_taps(L.in[1], s.stride, L.pad_h.lo, s.kernel, L.out[1]) *
             valid_taps(L.in[2], s.stride, L.pad_w.lo, s.kernel, L.out[2]);
    default:
      return 0;
  }
}

StepFlops GanTrainer::step_flops() const {
  StepFlops f;
  const int64_t B = cfg_.batch;
  auto forward = [&](const NetPlan& p) {
    for (const ResolvedLayer& L : p.layers) f.forward += 2 * layer_macs(L, B);
  };
  // As NetExec::backward: a layer computes its input gradient when the caller needs the
  // network's (need_d_input) or a layer below it has parameters; weight gradients when slot >= 0.
  auto backward = [&](const NetPlan& p, bool need_d_input, bool weights) {
    bool params_below = false;
    for (const ResolvedLayer& L : p.layers) {
      const double flops = 2 * layer_macs(L, B);
      if (need_d_input || params_below) f.backward_data += flops;
      if (weights) f.backward_weights += flops;
      params_below = params_below || layer_kind(L.spec.kind).has_params;
    }
  };
  // device_step, pass by pass.
  for (int k = 0; k < cfg_.n_critic; ++k) {
    forward(d_plan_), backward(d_plan_, false, true);                    // D on real images
    forward(g_plan_), forward(d_plan_), backward(d_plan_, false, true);  // D on fakes
    if (cfg_.joint) {
      backward(d_plan_, true, false), backward(g_plan_, false, true);  // G through that pass
      return f;
    }
  }
  for (int j = 0; j < cfg_.g_steps; ++j) {
    if (j > 0) forward(g_plan_);
    forward(d_plan_), backward(d_plan_, true, false), backward(g_plan_, false, true);
  }
  return f;
}

void GanTrainer::collect(const float* dev_stats, int64_t steps, StepStats* out) {
  std::vector<float> h(static_cast<size_t>(steps * kStatsPerStep));
  be_->download(h.data(), dev_stats, steps * kStatsPerStep);
  // Global means: every rank's batch has the same size. One collective per chunk of steps.
  if (comm_->size() > 1) {
    if (comm_->host_memory()) {
      comm_->all_reduce_mean(h.data(), steps * kStatsPerStep);
    } else {
      DeviceBuffer d(*be_, steps * kStatsPerStep);
      be_->upload(d.get(), h.data(), steps * kStatsPerStep);
      comm_->all_reduce_mean(d.get(), steps * kStatsPerStep);
      be_->download(h.data(), d.get(), steps * kStatsPerStep);
    }
  }
  for (int64_t i = 0; i < steps; ++i) {
    const float* s = h.data() + i * kStatsPerStep;
    out[i].d_loss = static_cast<float>(static_cast<double>(s[kStatDLossReal]) + s[kStatDLossFake]);
    out[i].g_loss = s[kStatGLoss];
    out[i].d_real = s[kStatDReal];
    out[i].d_fake = s[kStatDFake];
  }
}

StepStats GanTrainer::step(const float* host_batch) {
  if (!host_batch) throw InvalidArgument("step needs a batch");
  be_->activate();
  train_step(host_batch, stats_.get(), /*may_record=*/false);
  StepStats out;
  collect(stats_.get(), 1, &out);
  return out;
}

void GanTrainer::run(int64_t steps, StepStats* out) {
  if (!source_) throw InvalidArgument("no training data: call set_data first");
  be_->activate();
  for (int64_t done = 0; done < steps;) {
    const int64_t k = std::min(kStatsChunk, steps - done);
    for (int64_t i = 0; i < k; ++i)
      train_step(nullptr, stats_.get() + i * kStatsPerStep, /*may_record=*/true);
    collect(stats_.get(), k, out + done);
    done += k;
  }
}

NetExec& GanTrainer::eval_net(int net, int64_t batch) {
  NetExec& train = train_net(net);
  if (batch == train.batch()) return train;
  auto& slot = eval_[{net, batch}];
  if (!slot) {
    slot = net == 0 ? be_->compile(g_plan_, *g_params_, batch, cfg_.seed ^ kGSeedSalt)
                    : be_->compile(d_plan_, *d_params_, batch, cfg_.seed);
  }
  return *slot;
}

void GanTrainer::with_g_state(const float* state, const std::function<void()>& body) {
  const int64_t ns = g_plan_.n_state;
  if (ns == 0) return body();
  std::vector<float> own(static_cast<size_t>(ns));
  g_params_->read(Buf::State, 0, own.data(), ns);
  if (state) g_params_->write(Buf::State, 0, state, ns);
  try {
    body();
  } catch (...) {
    g_params_->write(Buf::State, 0, own.data(), ns);
    throw;
  }
  g_params_->write(Buf::State, 0, own.data(), ns);
}

void GanTrainer::set_bn_inference(BnInference mode, int64_t samples) {
  if (samples > kMaxPreciseBnSamples)
    throw InvalidArgument("precise_bn_samples must be in [1, " +
                          std::to_string(kMaxPreciseBnSamples) + "], got " +
                          std::to_string(samples));
  cfg_.bn_inference = mode;
  if (samples > 0 && samples != cfg_.precise_bn_samples) {
    cfg_.precise_bn_samples = samples;
    precise_version_ = ~uint64_t(0);
  }
}

void GanTrainer::precise_bn_noise(int64_t k, float* host_out) {
  if (k < 0) throw InvalidArgument("k must be >= 0");
  be_->activate();
  const int64_t n = cfg_.batch * cfg_.z_dim;
  be_->fill_noise(g_->input(), n, cfg_.noise, cfg_.seed, static_cast<uint32_t>(Stream::PreciseBn),
                  static_cast<uint64_t>(k));
  be_->download(host_out, g_->input(), n);
}

const std::vector<float>& GanTrainer::precise_bn_state() {
  if (precise_version_ == weights_version_) return precise_;
  be_->activate();
  const int64_t B = cfg_.batch;
  const int64_t batches = (cfg_.precise_bn_samples + B - 1) / B;
  // The training network at the training batch: each BN layer sees its input as in training.
  with_g_state(nullptr, [&] {
    precise_ = pooled_bn_state(
        *be_, g_plan_, *g_, batches,
        [&](int64_t k) {
          be_->fill_noise(g_->input(), B * cfg_.z_dim, cfg_.noise, cfg_.seed,
                          static_cast<uint32_t>(Stream::PreciseBn), static_cast<uint64_t>(k));
        },
        [](int64_t k) { return Counter(kPreciseBnPasses + static_cast<uint64_t>(k)); });
  });
  precise_version_ = weights_version_;
  return precise_;
}

void GanTrainer::generate(int64_t n, uint64_t seed, float* host_out) {
  if (n <= 0) throw InvalidArgument("number of samples must be positive, got " + std::to_string(n));
  be_->activate();
  const int64_t per = numel(cfg_.image);
  const bool batch_stats = cfg_.bn_inference == BnInference::Batch && g_plan_.n_state > 0;
  // Fixed chunks: sample i is the same whatever n is. In inference mode samples are independent
  // of each other; with batch statistics each chunk is one training batch.
  const int64_t chunk = batch_stats ? cfg_.batch : std::min<int64_t>(n, 256);
  NetExec& g = batch_stats ? *g_ : eval_net(0, chunk);
  const float* state = cfg_.bn_inference == BnInference::Precise && g_plan_.n_state > 0
                           ? precise_bn_state().data()
                           : nullptr;
  with_g_state(state, [&] {
    for (int64_t c = 0, done = 0; done < n; ++c) {
      be_->fill_noise(g.input(), chunk * cfg_.z_dim, cfg_.noise, seed,
                      static_cast<uint32_t>(Stream::Generate), static_cast<uint64_t>(c));
      g.forward(batch_stats, Counter(kPreciseBnPasses - 1 - static_cast<uint64_t>(c)));
      const int64_t take = std::min(chunk, n - done);
      be_->download(host_out + done * per, g.output(), take * per);
      done += take;
    }
  });
}

void GanTrainer::noise(int64_t step, float* host_out, int64_t index) {
  if (step < 0) throw InvalidArgument("step must be >= 0");
  if (index < 0 || index >= static_cast<int64_t>(kNoisePerStep))
    throw InvalidArgument("index must be in [0, " + std::to_string(kNoisePerStep) + "), got " +
                          std::to_string(index));
  be_->activate();
  const int64_t n = cfg_.batch * cfg_.z_dim;
  // Same stream and counter as train_step's draw number `index`, into G's input buffer (which
  // every step refills before use).
  be_->fill_noise(g_->input(), n, cfg_.noise, cfg_.seed, static_cast<uint32_t>(Stream::Noise),
                  static_cast<uint64_t>(step) * kNoisePerStep + static_cast<uint64_t>(index),
                  static_cast<int64_t>(comm_->rank()) * n);
  be_->download(host_out, g_->input(), n);
}

void GanTrainer::discriminate(int64_t n, const float* host_images, float* host_logits) {
  if (n <= 0) throw InvalidArgument("number of images must be positive");
  be_->activate();
  const int64_t chunk = std::min<int64_t>(n, 256);
  NetExec& d = eval_net(1, chunk);
  const int64_t per = numel(cfg_.image);
  std::vector<float> pad(chunk * per, 0.f), logits(chunk);
  for (int64_t done = 0; done < n; done += chunk) {
    const int64_t take = std::min(chunk, n - done);
    if (take == chunk) {
      be_->upload(d.input(), host_images + done * per, chunk * per);
    } else {
      std::copy(host_images + done * per, host_images + (done + take) * per, pad.begin());
      be_->upload(d.input(), pad.data(), chunk * per);
    }
    d.forward(false, 0);
    be_->download(logits.data(), d.output(), chunk);
    std::copy(logits.begin(), logits.begin() + take, host_logits + done);
  }
}

}  // namespace dcgan
