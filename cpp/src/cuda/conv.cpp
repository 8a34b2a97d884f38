// Conv2d and ConvTranspose2d on cuDNN's convolution API: forward, backward-data and
// backward-filter, NCHW float, algorithms chosen once per shape by cuDNN's heuristics (the first
// deterministic one within the workspace limit, fp32 FMA math unless Config.tf32), and one
// workspace per network sized for the largest.
//
// Both layers are one convolution seen from two sides. Its "big" side is the convolution's input
// (Conv2d's x, ConvTranspose2d's y) and its "small" side the output; the filter is (small
// channels, big channels, k, k), which is PyTorch's layout for both layers. Conv2d runs
// forward / backward-data / backward-filter; ConvTranspose2d runs backward-data as its forward,
// forward as its backward-data, and backward-filter with the sides swapped.
//
// cuDNN pads symmetrically. Where the plan's padding is not (TensorFlow's "same" with an odd
// total, PyTorch's output_padding) the big side goes through an explicitly padded buffer:
// pad2d before a read of it, crop2d after a write to it (pad.cuh).
#include <algorithm>

#include "cuda/layer.hpp"
#include "cuda/ops.hpp"

namespace dcgan::cuda {

namespace {

struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc() { DCGAN_CUDNN(cudnnCreateTensorDescriptor(&d)); }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  void set(int64_t n, int64_t c, int64_t h, int64_t w) {
    DCGAN_CUDNN(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, i32(n), i32(c),
                                           i32(h), i32(w)));
  }
  static int i32(int64_t v) {
    if (v <= 0 || v > 0x7fffffff) throw InvalidArgument("convolution dimension out of range");
    return static_cast<int>(v);
  }
};

struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  FilterDesc() { DCGAN_CUDNN(cudnnCreateFilterDescriptor(&d)); }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
};

struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  ConvDesc() { DCGAN_CUDNN(cudnnCreateConvolutionDescriptor(&d)); }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d); }
};

// The first heuristic choice that succeeded, is deterministic (the same seed must give the same
// losses), uses the requested math (no tensor-core TF32 unless allowed) and fits the limit; or,
// when the heuristics list none, `fallback` with FMA math (the implicit-GEMM family, which
// supports every shape here deterministically).
template <class Perf, class Algo>
Perf pick(const Perf* perf, int n, bool tf32, size_t limit, Algo fallback) {
  for (int i = 0; i < n; ++i) {
    const Perf& p = perf[i];
    if (p.status != CUDNN_STATUS_SUCCESS || p.determinism != CUDNN_DETERMINISTIC) continue;
    // CUDNN_DEFAULT_MATH permits TF32 on Ampere and later: fp32 needs CUDNN_FMA_MATH.
    if (!tf32 && p.mathType != CUDNN_FMA_MATH) continue;
    if (p.memory > limit) continue;
    return p;
  }
  Perf p{};
  p.algo = fallback;
  p.status = CUDNN_STATUS_SUCCESS;
  p.determinism = CUDNN_DETERMINISTIC;
  p.mathType = CUDNN_FMA_MATH;
  p.memory = 0;
  return p;
}

class ConvLayer : public Layer {
 public:
  ConvLayer(Ctx& c, const ResolvedLayer& L, DeviceParams& ps, int64_t batch, Workspace& ws)
      : c_(c), L_(L), ps_(ps), ws_(ws), N_(batch), transposed_(L.spec.kind != LayerKind::Conv2d) {
    // Big side: the convolution's input. Small side: its output.
    const Shape& big = transposed_ ? L.out : L.in;
    const Shape& small = transposed_ ? L.in : L.out;
    Cb_ = big[0], Hb_ = big[1], Wb_ = big[2];
    Cs_ = small[0], Hs_ = small[1], Ws_ = small[2];
    k_ = L.spec.kernel;
    explicit_pad_ = L.pad_h.lo != L.pad_h.hi || L.pad_w.lo != L.pad_w.hi;
    Hp_ = Hb_ + (explicit_pad_ ? L.pad_h.lo + L.pad_h.hi : 0);
    Wp_ = Wb_ + (explicit_pad_ ? L.pad_w.lo + L.pad_w.hi : 0);
  }
  bool has_params() const override { return true; }

  void build(float* in, float* d_in) override {
    in_ = in, d_in_ = d_in;
    alloc_outputs(N_ * numel(L_.out));
    if (explicit_pad_) {
      big_pad_ = DevMem(N_ * Cb_ * Hp_ * Wp_);
      if (!transposed_) d_big_pad_ = DevMem(N_ * Cb_ * Hp_ * Wp_);  // conv's backward-data
    }

    big_.set(N_, Cb_, Hp_, Wp_);
    small_.set(N_, Cs_, Hs_, Ws_);
    DCGAN_CUDNN(cudnnSetFilter4dDescriptor(w_.d, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                           TensorDesc::i32(Cs_), TensorDesc::i32(Cb_),
                                           TensorDesc::i32(k_), TensorDesc::i32(k_)));
    const int ph = explicit_pad_ ? 0 : static_cast<int>(L_.pad_h.lo);
    const int pw = explicit_pad_ ? 0 : static_cast<int>(L_.pad_w.lo);
    const int s = static_cast<int>(L_.spec.stride);
    DCGAN_CUDNN(cudnnSetConvolution2dDescriptor(conv_.d, ph, pw, s, s, 1, 1,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    DCGAN_CUDNN(
        cudnnSetConvolutionMathType(conv_.d, c_.tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
    // The plan's shapes must be what cuDNN computes for this convolution.
    int n, ch, h, w;
    DCGAN_CUDNN(cudnnGetConvolution2dForwardOutputDim(conv_.d, big_.d, w_.d, &n, &ch, &h, &w));
    if (n != N_ || ch != Cs_ || h != Hs_ || w != Ws_)
      throw BackendError("cuDNN computes a " + std::to_string(h) + "x" + std::to_string(w) +
                         " output for a layer the plan gives " + std::to_string(Hs_) + "x" +
                         std::to_string(Ws_));
    choose_algorithms();
  }

  void forward(bool, Counter) override {
    if (!transposed_) {
      run_fwd(big_in(in_), w(), out);
    } else {
      run_bwd_data(in_, w(), explicit_pad_ ? big_pad_.get() : out);
      if (explicit_pad_) crop(big_pad_.get(), out);
    }
    if (L_.spec.bias) add_bias(c_.stream, out, b(), N_, L_.spec.out, numel(L_.out) / L_.spec.out);
  }

  void backward(bool need_d_in, int slot) override {
    if (!transposed_) {
      const float* x = explicit_pad_ ? big_pad_.get() : in_;  // padded by forward
      if (need_d_in) {
        run_bwd_data(d_out, w(), explicit_pad_ ? d_big_pad_.get() : d_in_);
        if (explicit_pad_) crop(d_big_pad_.get(), d_in_);
      }
      if (slot >= 0) run_bwd_filter(x, d_out, slot);
    } else {
      const float* dy = big_in(d_out);  // the big side's gradient, padded where needed
      if (need_d_in) run_fwd(dy, w(), d_in_);
      if (slot >= 0) run_bwd_filter(dy, in_, slot);
    }
    if (slot >= 0 && L_.spec.bias)
      bias_grad(c_.stream, d_out, ps_.grad(slot) + L_.params[1].offset, N_, L_.spec.out,
                numel(L_.out) / L_.spec.out);
  }

 private:
  void choose_algorithms() {
    int max_n = 0, got = 0;
    const size_t limit = c_.workspace_limit;
    {
      DCGAN_CUDNN(cudnnGetConvolutionForwardAlgorithmMaxCount(c_.dnn, &max_n));
      std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(max_n);
      DCGAN_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(c_.dnn, big_.d, w_.d, conv_.d, small_.d,
                                                         max_n, &got, perf.data()));
      const auto p =
          pick(perf.data(), got, c_.tf32, limit, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
      fwd_ = p.algo, fwd_math_ = p.mathType;
      size_t b = 0;
      DCGAN_CUDNN(cudnnSetConvolutionMathType(conv_.d, fwd_math_));
      DCGAN_CUDNN(cudnnGetConvolutionForwardWorkspaceSize(c_.dnn, big_.d, w_.d, conv_.d, small_.d,
                                                          fwd_, &b));
      need(std::max(b, p.memory));
    }
    {
      DCGAN_CUDNN(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(c_.dnn, &max_n));
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(max_n);
      DCGAN_CUDNN(cudnnGetConvolutionBackwardDataAlgorithm_v7(c_.dnn, w_.d, small_.d, conv_.d,
                                                              big_.d, max_n, &got, perf.data()));
      const auto p = pick(perf.data(), got, c_.tf32, limit, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1);
      bwd_data_ = p.algo, bwd_data_math_ = p.mathType;
      size_t b = 0;
      DCGAN_CUDNN(cudnnSetConvolutionMathType(conv_.d, bwd_data_math_));
      DCGAN_CUDNN(cudnnGetConvolutionBackwardDataWorkspaceSize(c_.dnn, w_.d, small_.d, conv_.d,
                                                               big_.d, bwd_data_, &b));
      need(std::max(b, p.memory));
    }
    {
      DCGAN_CUDNN(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(c_.dnn, &max_n));
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(max_n);
      DCGAN_CUDNN(cudnnGetConvolutionBackwardFilterAlgorithm_v7(c_.dnn, big_.d, small_.d, conv_.d,
                                                                w_.d, max_n, &got, perf.data()));
      const auto p = pick(perf.data(), got, c_.tf32, limit, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1);
      bwd_filter_ = p.algo, bwd_filter_math_ = p.mathType;
      size_t b = 0;
      DCGAN_CUDNN(cudnnSetConvolutionMathType(conv_.d, bwd_filter_math_));
      DCGAN_CUDNN(cudnnGetConvolutionBackwardFilterWorkspaceSize(c_.dnn, big_.d, small_.d, conv_.d,
                                                                 w_.d, bwd_filter_, &b));
      need(std::max(b, p.memory));
    }
  }
  void need(size_t bytes) {
    if (bytes > ws_.bytes) ws_.bytes = bytes;
  }

  // The big side as cuDNN reads it: padded into big_pad_ where the padding is explicit.
  const float* big_in(const float* x) {
    if (!explicit_pad_) return x;
    pad2d(c_.stream, x, big_pad_.get(), N_, Cb_, Hb_, Wb_, L_.pad_h.lo, L_.pad_h.hi, L_.pad_w.lo,
          L_.pad_w.hi);
    return big_pad_.get();
  }
  void crop(const float* padded, float* x) {
    crop2d(c_.stream, padded, x, N_, Cb_, Hb_, Wb_, L_.pad_h.lo, L_.pad_h.hi, L_.pad_w.lo,
           L_.pad_w.hi);
  }

  void run_fwd(const float* big, const float* w, float* small) {
    const float one = 1.f, zero = 0.f;
    DCGAN_CUDNN(cudnnSetConvolutionMathType(conv_.d, fwd_math_));
    DCGAN_CUDNN(cudnnConvolutionForward(c_.dnn, &one, big_.d, big, w_.d, w, conv_.d, fwd_,
                                        ws_.ptr(), ws_.bytes, &zero, small_.d, small));
  }
  void run_bwd_data(const float* small, const float* w, float* big) {
    const float one = 1.f, zero = 0.f;
    DCGAN_CUDNN(cudnnSetConvolutionMathType(conv_.d, bwd_data_math_));
    DCGAN_CUDNN(cudnnConvolutionBackwardData(c_.dnn, &one, w_.d, w, small_.d, small, conv_.d,
                                             bwd_data_, ws_.ptr(), ws_.bytes, &zero, big_.d, big));
  }
  // Weight gradient into the slot (overwritten).
  void run_bwd_filter(const float* big, const float* small, int slot) {
    const float one = 1.f, zero = 0.f;
    DCGAN_CUDNN(cudnnSetConvolutionMathType(conv_.d, bwd_filter_math_));
    DCGAN_CUDNN(cudnnConvolutionBackwardFilter(c_.dnn, &one, big_.d, big, small_.d, small, conv_.d,
                                               bwd_filter_, ws_.ptr(), ws_.bytes, &zero, w_.d,
                                               ps_.grad(slot) + L_.params[0].offset));
  }
  const float* w() { return ps_.params() + L_.params[0].offset; }
  const float* b() { return ps_.params() + L_.params[1].offset; }

  Ctx& c_;
  const ResolvedLayer& L_;
  DeviceParams& ps_;
  Workspace& ws_;
  int64_t N_;
  bool transposed_, explicit_pad_ = false;
  int64_t Cb_, Hb_, Wb_, Cs_, Hs_, Ws_, k_, Hp_, Wp_;
  TensorDesc big_, small_;
  FilterDesc w_;
  ConvDesc conv_;
  cudnnConvolutionFwdAlgo_t fwd_{};
  cudnnConvolutionBwdDataAlgo_t bwd_data_{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter_{};
  // The math each algorithm was chosen with, set on the descriptor before each call.
  cudnnMathType_t fwd_math_ = CUDNN_FMA_MATH, bwd_data_math_ = CUDNN_FMA_MATH,
                  bwd_filter_math_ = CUDNN_FMA_MATH;
  DevMem big_pad_, d_big_pad_;
};

}  // namespace

std::unique_ptr<Layer> make_conv_layer(Ctx& c, const ResolvedLayer& L, DeviceParams& ps,
                                       int64_t batch, Workspace& ws) {
  return std::make_unique<ConvLayer>(c, L, ps, batch, ws);
}

}  // namespace dcgan::cuda
