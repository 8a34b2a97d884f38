#include "core/precise_bn.hpp"

#include <algorithm>

namespace dcgan {

std::vector<float> pooled_bn_state(Backend& be, const NetPlan& plan, NetExec& net, int64_t batches,
                                   const std::function<void(int64_t)>& fill,
                                   const std::function<Counter(int64_t)>& pass) {
  const int64_t ns = plan.n_state;
  std::vector<float> out(static_cast<size_t>(ns), 0.f);
  if (ns == 0 || batches <= 0) return out;
  DeviceBuffer sums(be, ns), mean_sq(be, ns);
  for (int64_t k = 0; k < batches; ++k) {
    fill(k);
    net.forward(true, pass(k));
    net.accumulate_bn_stats(sums.get(), mean_sq.get());
  }
  std::vector<float> s(static_cast<size_t>(ns)), q(static_cast<size_t>(ns));
  be.download(s.data(), sums.get(), ns);
  be.download(q.data(), mean_sq.get(), ns);
  const double inv = 1.0 / static_cast<double>(batches);
  for (const ResolvedLayer& L : plan.layers) {
    if (L.state_offset < 0) continue;
    const int64_t C = L.in[0], o = L.state_offset;
    for (int64_t c = 0; c < C; ++c) {
      const double mean = s[o + c] * inv;
      const double var = s[o + C + c] * inv + std::max(0.0, q[o + c] * inv - mean * mean);
      out[o + c] = static_cast<float>(mean);
      out[o + C + c] = static_cast<float>(var);
    }
  }
  return out;
}

}  // namespace dcgan
