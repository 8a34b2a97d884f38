// A network on the CUDA backend: the layers of a NetPlan chained through plain device arrays,
// each built by its family's factory (the family comes from the layer-kind table), with one
// cuDNN workspace sized for the largest algorithm once every layer is built.
#include <vector>

#include "core/layer_kinds.hpp"
#include "cuda/layer.hpp"

namespace dcgan::cuda {

namespace {

class CudaNet : public NetExec {
 public:
  CudaNet(Ctx& c, const NetPlan& plan, DeviceParams& ps, int64_t batch, uint64_t seed)
      : batch_(batch) {
    if (batch <= 0) throw InvalidArgument("batch must be positive");
    in_ = DevMem(batch * numel(plan.in));
    d_in_ = DevMem(batch * numel(plan.in));
    float* cur = in_.get();
    float* cur_d = d_in_.get();
    bool params_below = false;
    for (size_t i = 0; i < plan.layers.size(); ++i) {
      const ResolvedLayer& L = plan.layers[i];
      std::unique_ptr<Layer> layer;
      switch (layer_kind(L.spec.kind).family) {
        case LayerFamily::Weighted:
          layer = L.spec.kind == LayerKind::Dense ? make_dense_layer(c, L, ps, batch)
                                                  : make_conv_layer(c, L, ps, batch, ws_);
          break;
        case LayerFamily::BatchNorm:
          layer = make_batchnorm_layer(c, L, ps, batch);
          break;
        case LayerFamily::Eltwise:
          layer = make_eltwise_layer(c, L, batch);
          break;
        case LayerFamily::Dropout:
          layer = make_dropout_layer(c, L, batch, seed, i);
          break;
        case LayerFamily::Reshape:
          layer = make_reshape_layer(c, L, batch);
          break;
      }
      layer->build(cur, cur_d);
      // Does anything below this layer need the gradient of its input?
      below_has_params_.push_back(params_below);
      params_below = params_below || layer->has_params();
      cur = layer->out;
      cur_d = layer->d_out;
      layers_.push_back(std::move(layer));
    }
    out_ = cur;
    d_out_ = cur_d;
    if (ws_.bytes) ws_.mem = DevMem(static_cast<int64_t>((ws_.bytes + 3) / 4));
  }

  int64_t batch() const override { return batch_; }
  float* input() override { return in_.get(); }
  const float* output() override { return out_; }
  float* d_output() override { return d_out_; }
  const float* d_input() override { return d_in_.get(); }

  void forward(bool training, Counter ctr) override {
    for (auto& l : layers_) l->forward(training, ctr);
  }
  void accumulate_bn_stats(float* sums, float* mean_sq) override {
    for (auto& l : layers_) l->accumulate_stats(sums, mean_sq);
  }
  void backward(bool need_d_input, int slot) override {
    for (size_t i = layers_.size(); i-- > 0;)
      layers_[i]->backward(need_d_input || below_has_params_[i], slot);
  }

 private:
  int64_t batch_;
  DevMem in_, d_in_;
  Workspace ws_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<bool> below_has_params_;
  float* out_ = nullptr;
  float* d_out_ = nullptr;
};

}  // namespace

std::unique_ptr<NetExec> compile_net(Ctx& c, const NetPlan& plan, DeviceParams& params,
                                     int64_t batch, uint64_t seed) {
  return std::make_unique<CudaNet>(c, plan, params, batch, seed);
}

}  // namespace dcgan::cuda
