#pragma once
// A mixture-of-experts layer's routing in a low-precision run against the reference's: which tokens were sent to
// another set of experts (a flip), which kept their set in another order, and how far the weights of the kept ones
// moved. docs/MODELS.md says why these are reported beside the norms.
#include <vector>

#include "lpsim/model/routing.hpp"

namespace lpsim {

struct RouteComparison {
  double flip = 0;          // fraction of tokens whose expert set differs
  double reorder = 0;       // fraction with the same set in another order
  double weight_err = 0;    // largest |w - w_ref| of one expert among tokens with the same set (0 when none)
  std::vector<char> flipped;  // per token: 1 when its set differs
};

// Throws std::invalid_argument when the two routings do not describe the same layer shape.
RouteComparison compare_routes(const Routing& emulated, const Routing& reference);

}  // namespace lpsim
