#include "core/classifier.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/init.hpp"
#include "core/precise_bn.hpp"
#include "core/rng.hpp"

namespace dcgan {

namespace {
constexpr int64_t kInferChunk = 256;
// Steps whose loss and accuracy stay in backend memory before one download.
constexpr int64_t kStatsChunk = 256;
}  // namespace

Classifier::Classifier(const ClassifierConfig& cfg, std::unique_ptr<Backend> backend)
    : cfg_(cfg), be_(std::move(backend)) {
  if (cfg_.batch <= 0)
    throw InvalidArgument("batch_size must be positive, got " + std::to_string(cfg_.batch));
  if (cfg_.image.size() != 3)
    throw InvalidArgument("image shape must be (C, H, W), got " + shape_str(cfg_.image));
  if (!(cfg_.adam.lr > 0.f) || !std::isfinite(cfg_.adam.lr))
    throw InvalidArgument("learning rate must be > 0");
  if (cfg_.shift < 0 || cfg_.shift >= std::min(cfg_.image[1], cfg_.image[2]))
    throw InvalidArgument("shift must be in [0, image size), got " + std::to_string(cfg_.shift));
  plan_ = plan_network("classifier", cfg_.image, cfg_.layers);
  if (plan_.out.size() != 1 || plan_.out[0] < 2)
    throw InvalidArgument("a classifier must end in one logit per class (at least 2), got output " +
                          shape_str(plan_.out));
  const int64_t n_layers = static_cast<int64_t>(cfg_.layers.size());
  if (cfg_.feature_layer < 0 || cfg_.feature_layer >= n_layers - 1)
    throw InvalidArgument("feature_layer must index a layer before the last one (0.." +
                          std::to_string(n_layers - 2) + "), got " +
                          std::to_string(cfg_.feature_layer));
  // The feature network is a prefix of the classifier: the planner places parameters and
  // statistics in layer order, so the prefix's offsets are the full network's.
  feature_plan_ = plan_network("features", cfg_.image,
                               std::vector<LayerSpec>(cfg_.layers.begin(),
                                                      cfg_.layers.begin() + cfg_.feature_layer + 1));
  be_->activate();
  params_ = be_->make_params(plan_.n_params, plan_.n_state, 1);
  std::vector<float> w(plan_.n_params), s(plan_.n_state);
  init_parameters(plan_, cfg_.seed, 0, w.data(), s.data());
  params_->write(Buf::Params, 0, w.data(), plan_.n_params);
  params_->write(Buf::State, 0, s.data(), plan_.n_state);
  train_ = be_->compile(plan_, *params_, cfg_.batch, cfg_.seed);
  labels_dev_ = DeviceBuffer(*be_, cfg_.batch);
  stats_ = DeviceBuffer(*be_, 2 * kStatsChunk);
  index_.resize(static_cast<size_t>(cfg_.batch));
  host_labels_.resize(static_cast<size_t>(cfg_.batch));
}

void Classifier::set_data(std::unique_ptr<BatchSource> source, std::vector<int32_t> labels) {
  const ImageFormat& f = source->format();
  if (Shape{f.c, f.h, f.w} != cfg_.image)
    throw InvalidArgument("data images are " + shape_str({f.c, f.h, f.w}) +
                          ", the classifier's image shape is " + shape_str(cfg_.image));
  if (static_cast<int64_t>(labels.size()) != source->size())
    throw InvalidArgument("labels: " + std::to_string(labels.size()) + " labels for " +
                          std::to_string(source->size()) + " images");
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= n_classes())
      throw InvalidArgument("labels: label " + std::to_string(labels[i]) + " at index " +
                            std::to_string(i) + " is outside [0, " + std::to_string(n_classes()) +
                            ")");
  if (source->size() < cfg_.batch)
    throw InvalidArgument("data: " + std::to_string(source->size()) +
                          " images are fewer than one batch of " + std::to_string(cfg_.batch));
  sampler_ = std::make_unique<EpochSampler>(source->size(), cfg_.batch, cfg_.seed, 0, 1);
  source_ = std::move(source);
  labels_ = std::move(labels);
}

int64_t Classifier::steps_per_epoch() const { return sampler_ ? sampler_->steps_per_epoch() : 0; }

void Classifier::recompute_bn_stats(int64_t batches) {
  if (!source_) throw InvalidArgument("no training data: call set_data first");
  if (batches <= 0) throw InvalidArgument("batches must be positive");
  const int64_t B = cfg_.batch;
  if (plan_.n_state == 0) return;
  be_->activate();
  batches = std::min(batches, source_->size() / B);
  std::vector<int64_t> idx(static_cast<size_t>(B));
  const std::vector<float> state = pooled_bn_state(
      *be_, plan_, *train_, batches,
      [&](int64_t k) {
        for (int64_t j = 0; j < B; ++j) idx[j] = k * B + j;
        be_->stage_batch(0, source_->format(), source_->fetch(idx.data(), B), B);
        be_->convert_batch(train_->input(), 0);
      },
      [&](int64_t) { return Counter(static_cast<uint64_t>(st_.step)); });
  params_->write(Buf::State, 0, state.data(), plan_.n_state);
}

void Classifier::set_lr(float lr) {
  if (!(lr > 0.f) || !std::isfinite(lr)) throw InvalidArgument("learning rate must be > 0");
  cfg_.adam.lr = lr;
}

void Classifier::run(int64_t steps, float* loss, float* acc) {
  if (!source_) throw InvalidArgument("no training data: call set_data first");
  be_->activate();
  const int64_t B = cfg_.batch, k = n_classes();
  std::vector<float> h(2 * kStatsChunk);
  for (int64_t i = 0; i < steps; ++i) {
    float* stats = stats_.get() + 2 * (i % kStatsChunk);
    sampler_->next(st_.data, index_.data());
    for (int64_t j = 0; j < B; ++j) host_labels_[j] = static_cast<float>(labels_[index_[j]]);
    const void* const* images = source_->fetch(index_.data(), B);
    if (cfg_.flip || cfg_.shift > 0) images = augment(images);
    be_->stage_batch(0, source_->format(), images, B);
    be_->convert_batch(train_->input(), 0);
    be_->upload(labels_dev_.get(), host_labels_.data(), B);
    train_->forward(true, Counter(static_cast<uint64_t>(st_.step)));
    be_->softmax_xent(train_->output(), labels_dev_.get(), B, k, train_->d_output(),
                      stats, stats + 1);
    train_->backward(false, 0);
    be_->adam(*params_, cfg_.adam, Counter(static_cast<uint64_t>(st_.step + 1)), params_->grad(0),
              nullptr);
    st_.step++;
    if (i % kStatsChunk == kStatsChunk - 1 || i == steps - 1) {
      const int64_t first = i - i % kStatsChunk, k = i - first + 1;
      be_->download(h.data(), stats_.get(), 2 * k);
      for (int64_t j = 0; j < k; ++j) loss[first + j] = h[2 * j], acc[first + j] = h[2 * j + 1];
    }
  }
}

const void* const* Classifier::augment(const void* const* images) {
  const ImageFormat& f = source_->format();
  const int64_t B = cfg_.batch, C = f.c, H = f.h, W = f.w;
  const size_t elem = f.dtype == DType::U8 ? 1 : 4, bytes = static_cast<size_t>(f.bytes());
  aug_.resize(bytes * static_cast<size_t>(B));
  aug_ptrs_.resize(static_cast<size_t>(B));
  const Philox rng(cfg_.seed, Stream::Augment, static_cast<uint64_t>(st_.step));
  const bool nhwc = f.layout == Layout::NHWC;
  for (int64_t i = 0; i < B; ++i) {
    uint32_t w[4];
    rng.block(static_cast<uint64_t>(i), w);
    const bool flip = cfg_.flip && (w[0] & 1u);
    const int64_t span = 2 * cfg_.shift + 1;
    const int64_t dy = cfg_.shift ? static_cast<int64_t>(w[1] % span) - cfg_.shift : 0;
    const int64_t dx = cfg_.shift ? static_cast<int64_t>(w[2] % span) - cfg_.shift : 0;
    const auto* src = static_cast<const unsigned char*>(images[i]);
    unsigned char* dst = aug_.data() + bytes * static_cast<size_t>(i);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y) {
        const int64_t sy = std::clamp<int64_t>(y + dy, 0, H - 1);
        for (int64_t x = 0; x < W; ++x) {
          int64_t sx = std::clamp<int64_t>(x + dx, 0, W - 1);
          if (flip) sx = W - 1 - sx;
          const int64_t to = nhwc ? (y * W + x) * C + c : (c * H + y) * W + x;
          const int64_t from = nhwc ? (sy * W + sx) * C + c : (c * H + sy) * W + sx;
          std::memcpy(dst + static_cast<size_t>(to) * elem, src + static_cast<size_t>(from) * elem, elem);
        }
      }
    aug_ptrs_[static_cast<size_t>(i)] = dst;
  }
  return aug_ptrs_.data();
}

void Classifier::infer(NetExec& net, int64_t n, const float* host_images, float* host_out) {
  const int64_t per = numel(cfg_.image), chunk = net.batch();
  const NetPlan& p = &net == feat_.get() ? feature_plan_ : plan_;
  const int64_t out_per = numel(p.out);
  std::vector<float> pad;
  std::vector<float> out(static_cast<size_t>(chunk * out_per));
  for (int64_t done = 0; done < n; done += chunk) {
    const int64_t take = std::min(chunk, n - done);
    if (take == chunk) {
      be_->upload(net.input(), host_images + done * per, chunk * per);
    } else {
      pad.assign(static_cast<size_t>(chunk * per), 0.f);
      std::copy(host_images + done * per, host_images + (done + take) * per, pad.begin());
      be_->upload(net.input(), pad.data(), chunk * per);
    }
    net.forward(false, 0);
    be_->download(out.data(), net.output(), chunk * out_per);
    std::copy(out.begin(), out.begin() + take * out_per, host_out + done * out_per);
  }
}

void Classifier::logits(int64_t n, const float* host_images, float* host_out) {
  if (n <= 0) throw InvalidArgument("number of images must be positive");
  be_->activate();
  if (!infer_) infer_ = be_->compile(plan_, *params_, kInferChunk, cfg_.seed);
  infer(*infer_, n, host_images, host_out);
}

void Classifier::features(int64_t n, const float* host_images, float* host_out) {
  if (n <= 0) throw InvalidArgument("number of images must be positive");
  be_->activate();
  if (!feat_) feat_ = be_->compile(feature_plan_, *params_, kInferChunk, cfg_.seed);
  infer(*feat_, n, host_images, host_out);
}

}  // namespace dcgan
