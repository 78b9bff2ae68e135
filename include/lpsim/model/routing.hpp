#pragma once
// A mixture-of-experts layer's decisions: for every token the experts it was sent to, in the router's order (the
// largest probability first), and the weights their outputs were scaled by. The forward hands one per MoE layer to
// whoever asks (forward.hpp), so a study can compare the choices of a low-precision run with the reference's: a
// router that picks other experts is a discrete event that a norm over all tokens hides (docs/MODELS.md).
#include <functional>
#include <vector>

namespace lpsim {

struct Routing {
  int layer = 0;
  int tokens = 0, k = 0;        // experts per token
  std::vector<int> experts;     // tokens x k, row-major
  std::vector<double> weights;  // tokens x k: the weights as the forward used them, converted to double
  int expert(int token, int rank) const { return experts[std::size_t(token) * k + rank]; }
  double weight(int token, int rank) const { return weights[std::size_t(token) * k + rank]; }
};

using RouteSink = std::function<void(Routing&&)>;

}  // namespace lpsim
