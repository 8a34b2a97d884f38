#include "core/init.hpp"

#include <cmath>

#include "core/rng.hpp"

namespace dcgan {

void init_parameters(const NetPlan& plan, uint64_t seed, uint32_t net_id, float* params,
                     float* state) {
  for (size_t li = 0; li < plan.layers.size(); ++li) {
    const ResolvedLayer& L = plan.layers[li];
    const LayerSpec& s = L.spec;
    // One counter per (net, layer): changing one layer's size leaves the others' draws alone.
    const Philox rng(seed, Stream::Init, (static_cast<uint64_t>(net_id) << 20) | li);
    if (L.state_offset >= 0) {
      const int64_t c = L.in[0];
      for (int64_t i = 0; i < c; ++i) {
        state[L.state_offset + i] = 0.f;
        state[L.state_offset + c + i] = 1.f;
      }
    }
    for (const ParamSpec& p : L.params) {
      float* w = params + p.offset;
      const int64_t n = numel(p.shape);
      if (p.name == "bias") {
        for (int64_t i = 0; i < n; ++i) w[i] = 0.f;
        continue;
      }
      if (s.kind == LayerKind::BatchNorm) {
        // gamma ~ N(1, std) as in the DCGAN reference code, or exactly 1 with init "zeros"/std 0.
        const bool random = s.init == InitKind::Normal || s.init == InitKind::TruncatedNormal;
        for (int64_t i = 0; i < n; ++i) w[i] = random ? 1.f + s.init_std * rng.normal(i) : 1.f;
        continue;
      }
      // Fans as PyTorch computes them: dim 1 is "in" for every weight tensor layout we use
      // (ConvTranspose's (in, out, k, k) gives fan_in = out*k*k, like torch).
      const int64_t rf = p.shape.size() == 4 ? p.shape[2] * p.shape[3] : 1;
      const double fan_in = static_cast<double>(p.shape[1] * rf);
      const double fan_out = static_cast<double>(p.shape[0] * rf);
      switch (s.init) {
        case InitKind::Normal:
          for (int64_t i = 0; i < n; ++i) w[i] = s.init_std * rng.normal(i);
          break;
        case InitKind::TruncatedNormal: {
          // Redraw values beyond two standard deviations (TensorFlow's truncated_normal).
          uint64_t k = 0;
          for (int64_t i = 0; i < n; ++i) {
            float v;
            do v = rng.normal(k++);
            while (std::fabs(v) > 2.f);
            w[i] = s.init_std * v;
          }
          break;
        }
        case InitKind::XavierUniform: {
          const float a = static_cast<float>(std::sqrt(6.0 / (fan_in + fan_out)));
          for (int64_t i = 0; i < n; ++i) w[i] = a * (2.f * rng.uniform(i) - 1.f);
          break;
        }
        case InitKind::XavierNormal: {
          const float sd = static_cast<float>(std::sqrt(2.0 / (fan_in + fan_out)));
          for (int64_t i = 0; i < n; ++i) w[i] = sd * rng.normal(i);
          break;
        }
        case InitKind::Zeros:
          for (int64_t i = 0; i < n; ++i) w[i] = 0.f;
          break;
      }
    }
  }
}

}  // namespace dcgan
