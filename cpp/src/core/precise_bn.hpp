// Precise BatchNorm statistics (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021): the
// pooled mean and variance of every BN layer's input over many batches in training mode,
// instead of exponential running averages that lag behind the weights. Used by the GAN's
// generator for sampling (GanTrainer::precise_bn_state) and by the classifier after training.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/backend.hpp"
#include "core/spec.hpp"

namespace dcgan {

// Runs `batches` training-mode forwards of `net` (compiled from `plan`), each after
// fill(k) wrote batch k into net.input(), with dropout counter pass(k); returns the state array
// (n_state floats, as ParamStore's) of pooled statistics: mean = E[mean_b] and variance =
// E[var_b] + E[mean_b^2] - mean^2 over the batches, for equal batch sizes the exact mean and
// (biased) variance over all their values. The forwards update the running statistics as
// training does: callers save and restore them.
std::vector<float> pooled_bn_state(Backend& be, const NetPlan& plan, NetExec& net, int64_t batches,
                                   const std::function<void(int64_t)>& fill,
                                   const std::function<Counter(int64_t)>& pass);

}  // namespace dcgan
