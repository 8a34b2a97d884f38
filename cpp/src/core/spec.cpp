#include "core/spec.hpp"

#include <sstream>

#include "core/layer_kinds.hpp"

namespace dcgan {

namespace {

[[noreturn]] void fail(const std::string& net, size_t i, const LayerSpec& s,
                       const std::string& why) {
  std::ostringstream o;
  o << net << " layer " << i << " (" << kind_name(s.kind) << "): " << why;
  throw InvalidArgument(o.str());
}

}  // namespace

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "(";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << (s.size() == 1 ? ",)" : ")");
  return o.str();
}

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s)
    if (d < 0 || __builtin_mul_overflow(n, d, &n))
      throw InvalidArgument("shape " + shape_str(s) + " has more values than an int64 can count");
  return n;
}

NetPlan plan_network(const std::string& net, const Shape& in,
                     const std::vector<LayerSpec>& layers) {
  if (in.size() != 1 && in.size() != 3)
    throw InvalidArgument(net + ": input shape must be (features,) or (C, H, W), got " +
                          shape_str(in));
  for (auto d : in)
    if (d <= 0)
      throw InvalidArgument(net + ": input shape has a non-positive size " + shape_str(in));
  if (layers.empty()) throw InvalidArgument(net + ": has no layers");

  NetPlan plan;
  plan.in = in;
  Shape cur = in;
  int64_t off = 0, state = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerSpec& s = layers[i];
    ResolvedLayer r;
    r.spec = s;
    r.in = cur;
    auto add_param = [&](const char* name, Shape shape) {
      r.params.push_back({name, shape, off});
      off += numel(shape);
      if (off > kMaxSampleValues)
        fail(net, i, s, "the network has more than 2^34 parameters (" + shape_str(shape) + ")");
    };
    switch (s.kind) {
      case LayerKind::Dense: {
        if (cur.size() != 1)
          fail(net, i, s, "needs a flat input, got " + shape_str(cur) + "; add a flatten layer");
        if (s.out <= 0)
          fail(net, i, s, "output features must be positive, got " + std::to_string(s.out));
        r.out = {s.out};
        add_param("weight", {s.out, cur[0]});
        if (s.bias) add_param("bias", {s.out});
        break;
      }
      case LayerKind::Conv2d:
      case LayerKind::ConvTranspose2d: {
        const bool tr = s.kind == LayerKind::ConvTranspose2d;
        if (cur.size() != 3)
          fail(net, i, s,
               "needs a (C, H, W) input, got " + shape_str(cur) + "; add a reshape layer");
        if (s.out <= 0)
          fail(net, i, s, "output channels must be positive, got " + std::to_string(s.out));
        if (s.kernel <= 0)
          fail(net, i, s, "kernel must be positive, got " + std::to_string(s.kernel));
        if (s.stride <= 0)
          fail(net, i, s, "stride must be positive, got " + std::to_string(s.stride));
        if (!s.same && s.padding < 0) fail(net, i, s, "padding must be >= 0");
        if (tr && (s.output_padding < 0 || s.output_padding >= s.stride))
          fail(net, i, s,
               "output_padding must be in [0, stride), got " + std::to_string(s.output_padding));
        if (!tr && s.output_padding != 0)
          fail(net, i, s, "output_padding is only for conv_transpose2d");
        int64_t o[2];
        Pad pads[2];
        for (int d = 0; d < 2; ++d) {
          const int64_t x = cur[1 + d];
          if (!tr) {
            if (s.same) {
              o[d] = (x + s.stride - 1) / s.stride;
              const int64_t total = std::max<int64_t>((o[d] - 1) * s.stride + s.kernel - x, 0);
              pads[d] = {total / 2, total - total / 2};
            } else {
              const int64_t span = x + 2 * s.padding - s.kernel;
              if (span < 0)
                fail(net, i, s,
                     "kernel " + std::to_string(s.kernel) + " is larger than the padded input " +
                         std::to_string(x + 2 * s.padding));
              o[d] = span / s.stride + 1;
              pads[d] = {s.padding, s.padding};
            }
          } else {
            if (s.same) {
              o[d] = x * s.stride;
              const int64_t total = (x - 1) * s.stride + s.kernel - o[d];
              if (total < 0)
                fail(net, i, s,
                     "'same' padding needs kernel >= stride (kernel " + std::to_string(s.kernel) +
                         ", stride " + std::to_string(s.stride) + ")");
              pads[d] = {total / 2, total - total / 2};
            } else {
              o[d] = (x - 1) * s.stride - 2 * s.padding + s.kernel + s.output_padding;
              pads[d] = {s.padding, s.padding - s.output_padding};
              if (pads[d].hi < 0)
                fail(net, i, s, "output_padding larger than padding is not supported");
            }
          }
          if (o[d] <= 0)
            fail(net, i, s,
                 "maps size " + std::to_string(x) + " to " + std::to_string(o[d]) +
                     "; the stride/kernel cannot reach a positive size");
        }
        r.pad_h = pads[0];
        r.pad_w = pads[1];
        r.out = {s.out, o[0], o[1]};
        if (tr)
          add_param("weight", {cur[0], s.out, s.kernel, s.kernel});
        else
          add_param("weight", {s.out, cur[0], s.kernel, s.kernel});
        if (s.bias) add_param("bias", {s.out});
        break;
      }
      case LayerKind::BatchNorm: {
        if (!(s.momentum >= 0.f && s.momentum <= 1.f))
          fail(net, i, s, "momentum must be in [0, 1]");
        if (!(s.eps > 0.f)) fail(net, i, s, "eps must be > 0");
        r.out = cur;
        add_param("weight", {cur[0]});
        add_param("bias", {cur[0]});
        r.state_offset = state;
        state += 2 * cur[0];
        break;
      }
      case LayerKind::LeakyReLU:
        if (!(s.slope >= 0.f && s.slope < 1.f)) fail(net, i, s, "slope must be in [0, 1)");
        r.out = cur;
        break;
      case LayerKind::Dropout:
        if (!(s.p >= 0.f && s.p < 1.f)) fail(net, i, s, "p must be in [0, 1)");
        r.out = cur;
        break;
      case LayerKind::ReLU:
      case LayerKind::Tanh:
      case LayerKind::Sigmoid:
        r.out = cur;
        break;
      case LayerKind::Reshape: {
        if (s.shape.size() != 1 && s.shape.size() != 3)
          fail(net, i, s,
               "target shape must be (features,) or (C, H, W), got " + shape_str(s.shape));
        for (auto d : s.shape)
          if (d <= 0) fail(net, i, s, "target shape has a non-positive size " + shape_str(s.shape));
        if (numel(s.shape) != numel(cur))
          fail(net, i, s,
               "cannot reshape " + shape_str(cur) + " (" + std::to_string(numel(cur)) +
                   " values) to " + shape_str(s.shape) + " (" + std::to_string(numel(s.shape)) +
                   " values)");
        r.out = s.shape;
        break;
      }
      case LayerKind::Flatten:
        r.out = {numel(cur)};
        break;
    }
    // One sample's activations must be addressable (and are limited by what any backend's
    // libraries index: 2^34 values is 64 GB per sample).
    if (numel(r.out) > kMaxSampleValues)
      fail(net, i, s,
           "output " + shape_str(r.out) + " has " + std::to_string(numel(r.out)) +
               " values per sample, more than the 2^34 supported");
    cur = r.out;
    plan.layers.push_back(std::move(r));
  }
  plan.out = cur;
  plan.n_params = off;
  plan.n_state = state;
  return plan;
}

}  // namespace dcgan
