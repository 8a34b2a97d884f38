// A supervised image classifier on the same layers and backends as the GAN: softmax
// cross-entropy, Adam, shuffled epochs over a BatchSource with integer labels. It is the
// feature network of the evaluation metrics (python/dcgan/features.py): trained by the engine
// itself, so FID and the class histogram of samples need no downloaded weights.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend.hpp"
#include "core/batch_source.hpp"
#include "core/spec.hpp"

namespace dcgan {

struct ClassifierConfig {
  Shape image;  // (C, H, W)
  std::vector<LayerSpec> layers;  // ending in one logit per class
  int64_t feature_layer = -1;     // features = the output of layers[feature_layer]
  int64_t batch = 128;
  AdamParams adam{1e-3f, 0.9f, 0.999f, 1e-8f};
  uint64_t seed = 0;
  // Training-time augmentation, drawn per image from the seed and the step: a horizontal flip
  // with probability 1/2, and a shift by up to `shift` pixels each way (edges replicated).
  bool flip = false;
  int64_t shift = 0;
};

struct ClassifierState {
  int64_t step = 0;
  DataCursor data;
};

class Classifier {
 public:
  Classifier(const ClassifierConfig& cfg, std::unique_ptr<Backend> backend);

  const ClassifierConfig& config() const { return cfg_; }
  const NetPlan& plan() const { return plan_; }
  const NetPlan& feature_plan() const { return feature_plan_; }
  int64_t n_classes() const { return plan_.out[0]; }
  ParamStore& params() { return *params_; }
  Backend& backend() { return *be_; }
  ClassifierState& state() { return st_; }

  // Labelled training data: `labels` holds one class index in [0, n_classes) per image.
  void set_data(std::unique_ptr<BatchSource> source, std::vector<int32_t> labels);
  int64_t steps_per_epoch() const;
  // `steps` training steps; the mean loss and accuracy of each step's batch into loss / acc.
  void run(int64_t steps, float* loss, float* acc);
  // Inference on n host images (float, the model's range): logits (n, n_classes) or features
  // (n, *feature shape).
  void logits(int64_t n, const float* host_images, float* host_out);
  void features(int64_t n, const float* host_images, float* host_out);
  // Precise BatchNorm statistics: replaces the running averages by the pooled mean and variance
  // of each BN layer's input over the first min(n, batches * batch) training images (in order,
  // without augmentation), in training mode. Inference then sees statistics of the final
  // weights rather than averages lagging behind them.
  void recompute_bn_stats(int64_t batches);
  // A change of learning rate (a schedule); Adam's moments stay.
  void set_lr(float lr);

 private:
  void infer(NetExec& net, int64_t n, const float* host_images, float* host_out);
  // The batch's images flipped and shifted into aug_, in the source's format.
  const void* const* augment(const void* const* images);

  ClassifierConfig cfg_;
  std::unique_ptr<Backend> be_;
  NetPlan plan_, feature_plan_;
  std::unique_ptr<ParamStore> params_;
  std::unique_ptr<NetExec> train_, infer_, feat_;
  std::unique_ptr<BatchSource> source_;
  std::vector<int32_t> labels_;
  std::unique_ptr<EpochSampler> sampler_;
  std::vector<int64_t> index_;
  std::vector<float> host_labels_;
  std::vector<unsigned char> aug_;
  std::vector<const void*> aug_ptrs_;
  DeviceBuffer labels_dev_, stats_;
  ClassifierState st_;
};

}  // namespace dcgan
