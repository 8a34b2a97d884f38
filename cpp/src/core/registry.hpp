// Backends by name. Each backend folder registers itself ("cpu" always, "cuda" when built);
// the bindings and the trainer ask for a backend by the name in Config.device and never name a
// backend library themselves.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.hpp"

namespace dcgan {

struct BackendInfo {
  std::string name;
  std::string library;  // e.g. "oneDNN 3.2.0"
  std::string detail;   // e.g. the ISA oneDNN dispatches to, or the GPU's name
  bool available = true;
  std::string unavailable_reason;  // when !available (built, but no device here)
};

struct BackendEntry {
  std::string name;
  std::function<BackendInfo()> info;
  std::function<std::unique_ptr<Backend>(const BackendOptions&)> make;
};

void register_backend(BackendEntry entry);
// The backends built into this library, in registration order.
std::vector<BackendInfo> list_backends();
// A new backend; InvalidArgument naming what is available (and how to build a missing one)
// when `name` is not built or not usable here.
std::unique_ptr<Backend> make_backend(const std::string& name, const BackendOptions& opts);

}  // namespace dcgan
