#include "core/parse.hpp"

#include <algorithm>

#include "core/layer_kinds.hpp"

namespace dcgan {

namespace {

struct NamedLoss {
  LossKind kind;
  const char* name;
};
constexpr NamedLoss kLosses[] = {{LossKind::BCE, "bce"},
                                 {LossKind::Minimax, "minimax"},
                                 {LossKind::Saturating, "saturating"},
                                 {LossKind::LSGAN, "lsgan"},
                                 {LossKind::Hinge, "hinge"}};

std::string value_type_name(const FieldValue& v) {
  switch (v.index()) {
    case 0:
      return "bool";
    case 1:
      return "int";
    case 2:
      return "float";
    case 3:
      return "str";
    default:
      return "list";
  }
}

[[noreturn]] void bad(size_t index, const std::string& kind, const std::string& why) {
  throw InvalidArgument("layer " + std::to_string(index) + " (" + kind + "): " + why);
}

}  // namespace

InitKind init_from_name(const std::string& name) {
  if (name == "normal") return InitKind::Normal;
  if (name == "truncated_normal") return InitKind::TruncatedNormal;
  if (name == "xavier_uniform" || name == "glorot_uniform") return InitKind::XavierUniform;
  if (name == "xavier_normal" || name == "glorot_normal") return InitKind::XavierNormal;
  if (name == "zeros") return InitKind::Zeros;
  throw InvalidArgument("unknown init '" + name +
                        "'; expected normal, truncated_normal, xavier_uniform, xavier_normal "
                        "or zeros");
}

LossKind loss_from_name(const std::string& name) {
  for (const auto& l : kLosses)
    if (name == l.name) return l.kind;
  throw InvalidArgument("unknown loss '" + name +
                        "'; expected bce, minimax, saturating, lsgan or hinge");
}

const char* loss_name(LossKind k) {
  for (const auto& l : kLosses)
    if (l.kind == k) return l.name;
  return "?";
}

NoiseKind noise_from_name(const std::string& name) {
  if (name == "normal") return NoiseKind::Normal;
  if (name == "uniform") return NoiseKind::Uniform;
  throw InvalidArgument("noise must be 'normal' or 'uniform', got '" + name + "'");
}

const char* noise_name(NoiseKind k) { return k == NoiseKind::Normal ? "normal" : "uniform"; }

LayerSpec parse_layer(const FieldMap& fields, size_t index) {
  auto type_it = fields.find("type");
  if (type_it == fields.end())
    throw InvalidArgument("layer " + std::to_string(index) + " has no 'type'");
  if (!std::holds_alternative<std::string>(type_it->second))
    throw InvalidArgument("layer " + std::to_string(index) + ": 'type' must be a string");
  LayerSpec s;
  s.kind = kind_from_name(std::get<std::string>(type_it->second));
  const LayerKindInfo& info = layer_kind(s.kind);
  const std::string kind = info.name;

  auto allowed = [&](const std::string& name) {
    return std::find_if(info.fields.begin(), info.fields.end(),
                        [&](const char* f) { return name == f; }) != info.fields.end();
  };
  auto list_fields = [&] {
    std::string out;
    for (const char* f : info.fields) out += std::string(out.empty() ? "" : ", ") + f;
    return out.empty() ? std::string("no fields") : out;
  };
  for (const auto& [name, value] : fields) {
    if (name == "type") continue;
    if (!allowed(name))
      bad(index, kind, "unknown field '" + name + "'; " + kind + " takes " + list_fields());
  }
  for (const char* fname : info.fields) {
    const FieldInfo& f = layer_field(fname);
    auto it = fields.find(fname);
    if (it == fields.end()) {
      if (std::string(f.default_value) == "required")
        bad(index, kind, std::string("needs the field '") + fname + "' (" + f.doc + ")");
      continue;
    }
    const FieldValue& v = it->second;
    auto wrong = [&]() {
      bad(index, kind,
          std::string("field '") + fname + "' must be " + field_type_name(f.type) + ", got " +
              value_type_name(v));
    };
    auto as_int = [&]() -> int64_t {
      if (!std::holds_alternative<int64_t>(v)) wrong();
      return std::get<int64_t>(v);
    };
    auto as_float = [&]() -> float {
      if (std::holds_alternative<double>(v)) return static_cast<float>(std::get<double>(v));
      if (std::holds_alternative<int64_t>(v)) return static_cast<float>(std::get<int64_t>(v));
      wrong();
      return 0.f;  // not reached: wrong() throws
    };
    const std::string n = fname;
    switch (f.type) {
      case FieldType::Int: {
        const int64_t x = as_int();
        if (n == "out") s.out = x;
        if (n == "kernel") s.kernel = x;
        if (n == "stride") s.stride = x;
        if (n == "output_padding") s.output_padding = x;
        break;
      }
      case FieldType::Float: {
        const float x = as_float();
        if (n == "slope") s.slope = x;
        if (n == "p") s.p = x;
        if (n == "momentum") s.momentum = x;
        if (n == "eps") s.eps = x;
        if (n == "init_std") s.init_std = x;
        break;
      }
      case FieldType::Bool:
        if (!std::holds_alternative<bool>(v)) wrong();
        s.bias = std::get<bool>(v);
        break;
      case FieldType::Shape:
        if (!std::holds_alternative<std::vector<int64_t>>(v)) wrong();
        s.shape = std::get<std::vector<int64_t>>(v);
        break;
      case FieldType::Padding:
        if (std::holds_alternative<std::string>(v)) {
          const auto& p = std::get<std::string>(v);
          if (p != "same" && p != "valid")
            bad(index, kind, "padding must be 'same', 'valid' or an int, got '" + p + "'");
          s.same = p == "same";
        } else {
          s.padding = as_int();
        }
        break;
      case FieldType::Init:
        if (!std::holds_alternative<std::string>(v)) wrong();
        s.init = init_from_name(std::get<std::string>(v));
        break;
    }
  }
  return s;
}

}  // namespace dcgan
