#include "core/registry.hpp"

#include <mutex>

namespace dcgan {

// Defined in cpp/src/backends.cpp: calls each built backend's registration function once.
void register_builtin_backends();

namespace {

std::vector<BackendEntry>& entries() {
  static std::vector<BackendEntry> e;
  return e;
}

void ensure_builtins() {
  static std::once_flag once;
  std::call_once(once, [] { register_builtin_backends(); });
}

// Backends this code base knows but that may not be compiled in, and how to get them.
const char* build_hint(const std::string& name) {
  if (name == "cuda")
    return "the CUDA backend is compiled only with -DDCGAN_CUDA=ON (pip install . -C "
           "cmake.define.DCGAN_CUDA=ON, with the CUDA toolkit installed)";
  return nullptr;
}

}  // namespace

void register_backend(BackendEntry entry) {
  for (auto& e : entries())
    if (e.name == entry.name) {
      e = std::move(entry);
      return;
    }
  entries().push_back(std::move(entry));
}

std::vector<BackendInfo> list_backends() {
  ensure_builtins();
  std::vector<BackendInfo> out;
  for (const auto& e : entries()) out.push_back(e.info());
  return out;
}

std::unique_ptr<Backend> make_backend(const std::string& name, const BackendOptions& opts) {
  ensure_builtins();
  std::string available;
  for (const auto& e : entries()) {
    const BackendInfo info = e.info();
    if (info.available) available += std::string(available.empty() ? "" : ", ") + e.name;
  }
  for (const auto& e : entries()) {
    if (e.name != name) continue;
    const BackendInfo info = e.info();
    if (!info.available)
      throw InvalidArgument("device '" + name + "' is built into this dcgan but cannot be used " +
                            "here: " + info.unavailable_reason + "; available: " + available);
    return e.make(opts);
  }
  std::string msg = "unknown device '" + name + "'; available: " + available;
  if (const char* hint = build_hint(name))
    msg = "device '" + name + "' is not built into this dcgan (available: " + available + "); " +
          hint;
  throw InvalidArgument(msg);
}

}  // namespace dcgan
