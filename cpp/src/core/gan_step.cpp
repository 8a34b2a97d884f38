#include "core/gan_step.hpp"

#include <algorithm>
#include <cmath>

#include "core/init.hpp"
#include "core/rng.hpp"

namespace dcgan {

namespace {
// Counters per step: room for 64 noise draws and 256 D/G passes in one training step.
constexpr uint64_t kNoisePerStep = 64;
constexpr uint64_t kPassesPerStep = 256;
// Dropout masks of D and G must differ even at equal counters.
constexpr uint64_t kGSeedSalt = 0x9E3779B97F4A7C15ull;
}  // namespace

GanTrainer::GanTrainer(const GanConfig& cfg, std::unique_ptr<Backend> backend)
    : cfg_(cfg), be_(std::move(backend)) {
  if (cfg_.batch <= 0)
    throw InvalidArgument("batch_size must be positive, got " + std::to_string(cfg_.batch));
  if (cfg_.z_dim <= 0)
    throw InvalidArgument("z_dim must be positive, got " + std::to_string(cfg_.z_dim));
  if (cfg_.image.size() != 3)
    throw InvalidArgument("image shape must be (C, H, W), got " + shape_str(cfg_.image));
  if (cfg_.n_critic < 1 || cfg_.g_steps < 1)
    throw InvalidArgument("n_critic and g_steps must be >= 1");
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
  if (cfg_.threads > 0) be_->set_threads(cfg_.threads);

  g_params_ = be_->make_params(g_plan_.n_params, g_plan_.n_state);
  d_params_ = be_->make_params(d_plan_.n_params, d_plan_.n_state);
  for (int net = 0; net < 2; ++net) {
    const NetPlan& p = plan(net);
    std::vector<float> w(p.n_params), s(p.n_state);
    init_parameters(p, cfg_.seed, static_cast<uint32_t>(net), w.data(), s.data());
    ParamStore& ps = params(net);
    be_->upload(ps.params(), w.data(), p.n_params);
    if (p.n_state) be_->upload(ps.state(), s.data(), p.n_state);
    ps.version++;
  }
  g_ = be_->compile(g_plan_, *g_params_, cfg_.batch, cfg_.seed ^ kGSeedSalt);
  d_ = be_->compile(d_plan_, *d_params_, cfg_.batch, cfg_.seed);
  index_.resize(cfg_.batch);
}

void GanTrainer::set_data(const float* data, int64_t n) {
  if (n < cfg_.batch)
    throw InvalidArgument("need at least one batch of data: got " + std::to_string(n) +
                          " images for batch_size " + std::to_string(cfg_.batch));
  data_ = data;
  n_data_ = n;
  perm_epoch_ = -1;
}

int64_t GanTrainer::steps_per_epoch() const { return n_data_ / cfg_.batch; }

void GanTrainer::next_batch_index(int64_t* index) {
  const int64_t B = cfg_.batch;
  if (st_.cursor + B > n_data_) {
    st_.epoch++;
    st_.cursor = 0;
  }
  if (perm_epoch_ != st_.epoch) {
    // Fisher-Yates with the epoch's own stream: the order depends on (seed, epoch) only.
    perm_.resize(n_data_);
    for (int64_t i = 0; i < n_data_; ++i) perm_[i] = i;
    const Philox rng(cfg_.seed, Stream::Shuffle, static_cast<uint64_t>(st_.epoch));
    for (int64_t i = n_data_ - 1; i > 0; --i) {
      uint32_t w[4];
      rng.block(static_cast<uint64_t>(i), w);
      const uint64_t r = (static_cast<uint64_t>(w[0]) << 32) | w[1];
      std::swap(perm_[i], perm_[static_cast<int64_t>(r % static_cast<uint64_t>(i + 1))]);
    }
    perm_epoch_ = st_.epoch;
  }
  std::copy(perm_.begin() + st_.cursor, perm_.begin() + st_.cursor + B, index);
  st_.cursor += B;
}

void GanTrainer::load_real(const float* host_batch) {
  const int64_t per = numel(cfg_.image);
  if (host_batch) {
    be_->upload(d_->input(), host_batch, cfg_.batch * per);
  } else {
    next_batch_index(index_.data());
    be_->gather(d_->input(), data_, index_.data(), cfg_.batch, per);
  }
}

StepStats GanTrainer::train_step(const float* host_batch) {
  const int64_t B = cfg_.batch;
  const int64_t n_img = B * numel(cfg_.image);
  const float real_target = 1.f - cfg_.label_smoothing;
  uint64_t noise_ctr = static_cast<uint64_t>(st_.step) * kNoisePerStep;
  uint64_t pass_ctr = static_cast<uint64_t>(st_.step) * kPassesPerStep;
  StepStats out;

  auto g_forward = [&] {
    be_->fill_noise(g_->input(), B * cfg_.z_dim, cfg_.noise, cfg_.seed,
                    static_cast<uint32_t>(Stream::Noise), noise_ctr++);
    g_->forward(true, pass_ctr++);
    be_->copy(d_->input(), g_->output(), n_img);
  };
  auto g_backward_from_d = [&] {
    be_->copy(g_->d_output(), d_->d_input(), n_img);
    g_->backward(false, 0);
    be_->adam(*g_params_, cfg_.adam_g, ++st_.adam_t_g, g_params_->grad(0), nullptr);
    g_params_->version++;
  };

  for (int k = 0; k < cfg_.n_critic; ++k) {
    load_real(host_batch);
    d_->forward(true, pass_ctr++);
    const auto r = be_->d_loss(cfg_.loss, true, d_->output(), B, real_target, d_->d_output());
    d_->backward(false, 0);

    g_forward();
    d_->forward(true, pass_ctr++);
    const auto f = be_->d_loss(cfg_.loss, false, d_->output(), B, 0.f, d_->d_output());
    d_->backward(false, 1);
    out.d_loss = static_cast<float>(r.loss + f.loss);
    out.d_real = static_cast<float>(r.mean_out);
    out.d_fake = static_cast<float>(f.mean_out);

    if (cfg_.joint) {
      // G's gradient through the same forward pass, before D's weights change.
      const auto g = be_->g_loss(cfg_.loss, d_->output(), B, d_->d_output());
      d_->backward(true, -1);
      be_->adam(*d_params_, cfg_.adam_d, ++st_.adam_t_d, d_params_->grad(0), d_params_->grad(1));
      d_params_->version++;
      g_backward_from_d();
      out.g_loss = static_cast<float>(g.loss);
      st_.step++;
      return out;
    }
    be_->adam(*d_params_, cfg_.adam_d, ++st_.adam_t_d, d_params_->grad(0), d_params_->grad(1));
    d_params_->version++;
  }

  for (int j = 0; j < cfg_.g_steps; ++j) {
    // The first G step reuses the last D step's fakes (D's input still holds them, G's
    // activations are those of that forward), as PyTorch's reference loop does.
    if (j > 0) g_forward();
    d_->forward(true, pass_ctr++);
    const auto g = be_->g_loss(cfg_.loss, d_->output(), B, d_->d_output());
    d_->backward(true, -1);
    g_backward_from_d();
    out.g_loss = static_cast<float>(g.loss);
  }
  st_.step++;
  return out;
}

StepStats GanTrainer::step(const float* host_batch) {
  if (cfg_.threads > 0) be_->set_threads(cfg_.threads);
  return train_step(host_batch);
}

void GanTrainer::run(int64_t steps, StepStats* out) {
  if (!data_) throw InvalidArgument("no training data: call set_data first");
  if (cfg_.threads > 0) be_->set_threads(cfg_.threads);
  for (int64_t i = 0; i < steps; ++i) out[i] = train_step(nullptr);
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

void GanTrainer::generate(int64_t n, uint64_t seed, float* host_out) {
  if (n <= 0) throw InvalidArgument("number of samples must be positive, got " + std::to_string(n));
  if (cfg_.threads > 0) be_->set_threads(cfg_.threads);
  // Fixed chunks: sample i is the same whatever n is (inference mode has no batch coupling).
  const int64_t chunk = std::min<int64_t>(n, 256);
  NetExec& g = eval_net(0, chunk);
  const int64_t per = numel(cfg_.image);
  for (int64_t c = 0, done = 0; done < n; ++c) {
    be_->fill_noise(g.input(), chunk * cfg_.z_dim, cfg_.noise, seed,
                    static_cast<uint32_t>(Stream::Generate), static_cast<uint64_t>(c));
    g.forward(false, 0);
    const int64_t take = std::min(chunk, n - done);
    be_->download(host_out + done * per, g.output(), take * per);
    done += take;
  }
}

void GanTrainer::noise(int64_t step, float* host_out, int64_t index) {
  if (step < 0) throw InvalidArgument("step must be >= 0");
  if (index < 0 || index >= static_cast<int64_t>(kNoisePerStep))
    throw InvalidArgument("index must be in [0, " + std::to_string(kNoisePerStep) + "), got " +
                          std::to_string(index));
  const int64_t n = cfg_.batch * cfg_.z_dim;
  // Same stream and counter as train_step's draw number `index`, into G's input buffer (which
  // every step refills before use).
  be_->fill_noise(g_->input(), n, cfg_.noise, cfg_.seed, static_cast<uint32_t>(Stream::Noise),
                  static_cast<uint64_t>(step) * kNoisePerStep + static_cast<uint64_t>(index));
  be_->download(host_out, g_->input(), n);
}

void GanTrainer::discriminate(int64_t n, const float* host_images, float* host_logits) {
  if (n <= 0) throw InvalidArgument("number of images must be positive");
  if (cfg_.threads > 0) be_->set_threads(cfg_.threads);
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
