// Parameter initialisation, written once for every backend: fills host arrays that the
// backend then uploads.
#pragma once

#include <cstdint>
#include <vector>

#include "core/spec.hpp"

namespace dcgan {

// Fills `params` (n_params floats) and `state` (n_state floats: BN running mean 0, var 1)
// for `plan`, drawing from the Init stream of `seed`; `net_id` separates G from D.
void init_parameters(const NetPlan& plan, uint64_t seed, uint32_t net_id, float* params,
                     float* state);

}  // namespace dcgan
