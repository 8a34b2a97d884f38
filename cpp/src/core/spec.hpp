// Backend-neutral description of a network: an ordered list of layer specs, and shape
// inference over it. This is the one place that knows that a 5x5 stride-2 "same" ConvT maps
// 7x7 to 14x14; both backends build their primitives from the shapes computed here.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace dcgan {

// Thrown for anything a caller got wrong (bad config, bad shapes); the bindings map it to
// Python's ValueError.
struct InvalidArgument : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Thrown by a backend when its library fails (a oneDNN or CUDA error); the message names the
// library. The bindings map it to RuntimeError.
struct BackendError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class LayerKind {
  Dense,
  Conv2d,
  ConvTranspose2d,
  BatchNorm,  // over channels (4-D input) or over features (2-D input)
  ReLU,
  LeakyReLU,
  Tanh,
  Sigmoid,
  Dropout,
  Reshape,
  Flatten,
};

// Names of kinds, inits, losses and noise: core/layer_kinds.hpp and core/parse.hpp.
enum class InitKind { Normal, TruncatedNormal, XavierUniform, XavierNormal, Zeros };

enum class NoiseKind { Normal, Uniform };  // N(0, 1) or U(-1, 1)

// Minimax is seed 004's formulation (D maximises log D(x) + log(1 - D(G(z))), G maximises
// log D(G(z))): the same gradients as BCE. Saturating is the GAN paper's literal game, G
// minimising log(1 - D(G(z))).
enum class LossKind { BCE, Minimax, Saturating, LSGAN, Hinge };

struct LayerSpec {
  LayerKind kind = LayerKind::ReLU;
  int64_t out = 0;     // Dense: features; Conv/ConvT: output channels
  int64_t kernel = 0;  // square kernels
  int64_t stride = 1;
  bool same = false;           // TF "same": out = ceil(in/stride) (conv), in*stride (convT)
  int64_t padding = 0;         // explicit symmetric padding when !same
  int64_t output_padding = 0;  // ConvT: extra rows/cols on the bottom/right (PyTorch semantics)
  bool bias = true;
  float slope = 0.01f;    // LeakyReLU
  float p = 0.0f;         // Dropout probability of zeroing
  float momentum = 0.1f;  // BatchNorm, PyTorch convention: running = (1-m) running + m batch
  float eps = 1e-5f;
  std::vector<int64_t> shape;  // Reshape target, without the batch dimension
  // Initialisation of the weight (bias starts at zero; BN gamma ~ N(1, init_std) or 1).
  InitKind init = InitKind::Normal;
  float init_std = 0.02f;
};

// Per-sample shape (no batch dimension): {F} for flat tensors or {C, H, W} for images.
using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
// The product of the sizes; InvalidArgument if it overflows int64.
int64_t numel(const Shape& s);
// Most values one sample's activation may have.
constexpr int64_t kMaxSampleValues = int64_t(1) << 34;

// Padding of one spatial dimension, as the equivalent convolution sees it.
struct Pad {
  int64_t lo = 0, hi = 0;
};

// A parameter tensor of a layer: its name suffix and logical shape (PyTorch layout:
// Dense (out, in); Conv2d (out, in, k, k); ConvTranspose2d (in, out, k, k); BN (C)).
struct ParamSpec {
  std::string name;  // "weight" or "bias"
  Shape shape;
  int64_t offset = 0;  // into the network's flat parameter buffer
};

struct ResolvedLayer {
  LayerSpec spec;
  Shape in, out;
  Pad pad_h, pad_w;  // Conv/ConvT only
  std::vector<ParamSpec> params;
  int64_t state_offset = -1;  // BN running mean at state_offset, running var right after
};

// A network with every shape inferred and every parameter placed in one flat buffer.
struct NetPlan {
  Shape in, out;
  std::vector<ResolvedLayer> layers;
  int64_t n_params = 0;  // trainable floats
  int64_t n_state = 0;   // non-trainable floats (BN running statistics)
};

// Infers shapes; throws InvalidArgument naming the layer and the reason when the spec cannot
// work (a stride the size cannot reach, zero widths, a reshape of the wrong size, ...).
NetPlan plan_network(const std::string& net_name, const Shape& in,
                     const std::vector<LayerSpec>& layers);

}  // namespace dcgan
