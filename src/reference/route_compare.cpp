#include "lpsim/reference/route_compare.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace lpsim {

RouteComparison compare_routes(const Routing& e, const Routing& r) {
  if (e.tokens != r.tokens || e.k != r.k || e.experts.size() != r.experts.size())
    throw std::invalid_argument("compare_routes: the routings have different shapes");
  RouteComparison c;
  c.flipped.assign(std::size_t(e.tokens), 0);
  long flips = 0, reorders = 0;
  std::vector<int> a(e.k), b(e.k);
  for (int t = 0; t < e.tokens; ++t) {
    bool same_order = true;
    for (int i = 0; i < e.k; ++i) a[i] = e.expert(t, i), b[i] = r.expert(t, i), same_order &= a[i] == b[i];
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a != b) {
      c.flipped[std::size_t(t)] = 1, ++flips;
      continue;
    }
    reorders += !same_order;
    for (int i = 0; i < e.k; ++i)  // each expert's weight against the reference's weight of that expert
      for (int j = 0; j < r.k; ++j)
        if (e.expert(t, i) == r.expert(t, j)) c.weight_err = std::max(c.weight_err, std::fabs(e.weight(t, i) - r.weight(t, j)));
  }
  if (e.tokens > 0) c.flip = double(flips) / e.tokens, c.reorder = double(reorders) / e.tokens;
  return c;
}

}  // namespace lpsim
