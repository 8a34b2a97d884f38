// The layer kinds, described once: name, the fields a layer of that kind takes, whether it has
// parameters, and how a backend executes it. The planner (spec.cpp), the parser (parse.cpp),
// every backend's network builder and the Python model builder (through dcgan._core.layer_kinds())
// read this table; adding a kind starts here.
#pragma once

#include <string>
#include <vector>

#include "core/spec.hpp"

namespace dcgan {

// How a backend runs a kind: one implementation file per family in each backend folder
// (cpu/weighted.cpp, cpu/batchnorm.cpp, cpu/eltwise.cpp, cpu/dropout.cpp, cpu/reshape.cpp).
enum class LayerFamily { Weighted, BatchNorm, Eltwise, Dropout, Reshape };

enum class FieldType { Int, Float, Bool, Shape, Padding, Init };

struct FieldInfo {
  const char* name;
  FieldType type;
  const char* default_value;  // as the user would write it
  const char* doc;
};

struct LayerKindInfo {
  LayerKind kind;
  const char* name;
  LayerFamily family;
  bool has_params;
  // The backward pass reads the layer's own output (eltwise *_use_dst_for_bwd): the next layer
  // must not overwrite it in place.
  bool backward_reads_output;
  std::vector<const char*> fields;  // names into layer_fields()
  const char* shape_rule;           // the planner's rule, for documentation and error messages
};

const std::vector<LayerKindInfo>& layer_kinds();
const LayerKindInfo& layer_kind(LayerKind k);
const std::vector<FieldInfo>& layer_fields();
const FieldInfo& layer_field(const std::string& name);

const char* kind_name(LayerKind k);
LayerKind kind_from_name(const std::string& name);
const char* field_type_name(FieldType t);

}  // namespace dcgan
