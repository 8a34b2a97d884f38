// Everything a user writes as a name or a loosely typed value becomes a core type here: layer
// specs (checked against the layer-kind table), initialisations, losses and noise kinds. The
// bindings only turn Python objects into FieldValues; every check and message lives here.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "core/spec.hpp"

namespace dcgan {

using FieldValue = std::variant<bool, int64_t, double, std::string, std::vector<int64_t>>;
using FieldMap = std::map<std::string, FieldValue>;

// A layer from its fields ("type" plus the kind's fields). Unknown fields, wrong types and
// missing required fields raise InvalidArgument naming layer `index` and what was expected.
LayerSpec parse_layer(const FieldMap& fields, size_t index);

InitKind init_from_name(const std::string& name);
LossKind loss_from_name(const std::string& name);
NoiseKind noise_from_name(const std::string& name);
const char* loss_name(LossKind k);
const char* noise_name(NoiseKind k);

}  // namespace dcgan
