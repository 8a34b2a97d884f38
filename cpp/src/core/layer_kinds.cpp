#include "core/layer_kinds.hpp"

#include <algorithm>

namespace dcgan {

const std::vector<FieldInfo>& layer_fields() {
  static const std::vector<FieldInfo> fields = {
      {"out", FieldType::Int, "required", "output features (dense) or channels (conv)"},
      {"kernel", FieldType::Int, "required", "square kernel size"},
      {"stride", FieldType::Int, "1", "stride of both spatial dimensions"},
      {"padding", FieldType::Padding, "0",
       "'same' (TensorFlow rule), 'valid' or an int (symmetric, PyTorch rule)"},
      {"output_padding", FieldType::Int, "0", "extra rows/cols at the bottom/right (PyTorch rule)"},
      {"bias", FieldType::Bool, "true", "learn a bias"},
      {"slope", FieldType::Float, "0.01", "negative slope"},
      {"p", FieldType::Float, "0", "probability of zeroing an element"},
      {"momentum", FieldType::Float, "0.1",
       "weight of the new batch in the running statistics (PyTorch convention)"},
      {"eps", FieldType::Float, "1e-5", "added to the variance"},
      {"shape", FieldType::Shape, "required", "target shape without the batch dimension"},
      {"init", FieldType::Init, "normal",
       "weight initialisation: normal, truncated_normal, xavier_uniform, xavier_normal, zeros"},
      {"init_std", FieldType::Float, "0.02", "standard deviation of normal initialisations"},
  };
  return fields;
}

const std::vector<LayerKindInfo>& layer_kinds() {
  using F = LayerFamily;
  static const std::vector<LayerKindInfo> kinds = {
      {LayerKind::Dense,
       "dense",
       F::Weighted,
       true,
       false,
       {"out", "bias", "init", "init_std"},
       "(F,) -> (out,)"},
      {LayerKind::Conv2d,
       "conv2d",
       F::Weighted,
       true,
       false,
       {"out", "kernel", "stride", "padding", "bias", "init", "init_std"},
       "(C, H, W) -> (out, H', W'); 'same': H' = ceil(H / stride)"},
      {LayerKind::ConvTranspose2d,
       "conv_transpose2d",
       F::Weighted,
       true,
       false,
       {"out", "kernel", "stride", "padding", "output_padding", "bias", "init", "init_std"},
       "(C, H, W) -> (out, H', W'); 'same': H' = H * stride"},
      {LayerKind::BatchNorm,
       "batchnorm",
       F::BatchNorm,
       true,
       false,
       {"momentum", "eps", "init", "init_std"},
       "shape kept; over channels (C, H, W) or features (F,)"},
      {LayerKind::ReLU, "relu", F::Eltwise, false, true, {}, "shape kept"},
      {LayerKind::LeakyReLU, "leaky_relu", F::Eltwise, false, true, {"slope"}, "shape kept"},
      {LayerKind::Tanh, "tanh", F::Eltwise, false, true, {}, "shape kept"},
      {LayerKind::Sigmoid, "sigmoid", F::Eltwise, false, true, {}, "shape kept"},
      {LayerKind::Dropout, "dropout", F::Dropout, false, false, {"p"}, "shape kept"},
      {LayerKind::Reshape,
       "reshape",
       F::Reshape,
       false,
       false,
       {"shape"},
       "-> shape (same number of values)"},
      {LayerKind::Flatten, "flatten", F::Reshape, false, false, {}, "(C, H, W) -> (C*H*W,)"},
  };
  return kinds;
}

const LayerKindInfo& layer_kind(LayerKind k) {
  for (const auto& info : layer_kinds())
    if (info.kind == k) return info;
  throw InvalidArgument("unknown layer kind");
}

const FieldInfo& layer_field(const std::string& name) {
  for (const auto& f : layer_fields())
    if (name == f.name) return f;
  throw InvalidArgument("unknown layer field '" + name + "'");
}

const char* kind_name(LayerKind k) {
  for (const auto& info : layer_kinds())
    if (info.kind == k) return info.name;
  return "?";
}

LayerKind kind_from_name(const std::string& name) {
  for (const auto& info : layer_kinds())
    if (name == info.name) return info.kind;
  std::string known;
  for (const auto& info : layer_kinds())
    known += std::string(known.empty() ? "" : ", ") + info.name;
  throw InvalidArgument("unknown layer type '" + name + "'; expected one of: " + known);
}

const char* field_type_name(FieldType t) {
  switch (t) {
    case FieldType::Int:
      return "int";
    case FieldType::Float:
      return "float";
    case FieldType::Bool:
      return "bool";
    case FieldType::Shape:
      return "list of ints";
    case FieldType::Padding:
      return "'same', 'valid' or int";
    case FieldType::Init:
      return "str";
  }
  return "?";
}

}  // namespace dcgan
