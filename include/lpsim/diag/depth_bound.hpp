#pragma once
// arXiv 2503.10251's depth mechanism made checkable: errors entering block l are carried to the output by every later
// block's Jacobian, so to first order
//   ||E_L|| <= sum_{l < L} local_l prod_{l < k < L} alpha_k,   alpha_k = (1 + rho_attn,k)(1 + rho_ffn,k)
// (pre-LN: block k is (I + f_ffn)(I + f_attn), each factor's Jacobian norm at most 1 + rho), with
//   local_l = ||B~_l(fl(X_l)) - B_l(X_l)||_F: block l run under the plan on the exact input as the hardware stores
//   it, against the exact block on the exact input (MPFR) — the error block l itself adds.
// With alpha and local replaced by their maxima this is arXiv 2503.10251's worst case C u alpha^L, exponential in depth; the
// report gives both beside the observed error of the whole emulated forward at every depth. Our construction from
// arXiv 2503.10251's summary (its constants are not stated there); rho is the power-iteration estimate (diag/residual_gain.hpp).
#include <vector>

#include "lpsim/diag/residual_gain.hpp"
#include "lpsim/model/plan.hpp"
#include "lpsim/model/weights.hpp"

namespace lpsim {

struct DepthBoundRow {
  int layer = 0;
  double embedding = 0;   // ||E_0|| / ||X_0||: the emulated embedding's error, where the recursion starts
  double local = 0;       // local_l / ||X_{l+1}||_F: the relative error block l adds
  double alpha = 0;       // (1 + rho_attn)(1 + rho_ffn) of block l
  double observed = 0;    // ||E_{l+1}|| / ||X_{l+1}||: the whole emulated forward after block l
  double bound = 0;       // the recursion's right side after block l, relative to ||X_{l+1}||
  double uniform = 0;     // the same with max local and max alpha so far: arXiv 2503.10251's alpha^L form
  bool held = false;
};

// Pre-LN models only (throws ConfigError otherwise); `reference_bits` for the MPFR side.
// `gains`: rho per layer and branch already computed (residual_checks), else computed here.
std::vector<DepthBoundRow> depth_bound(const ModelConfig& cfg, const PrecisionPlan& plan, const Weights<double>& w,
                                       const ModelInput<double>& in, int reference_bits = 128,
                                       const std::vector<ResidualCheck>* gains = nullptr);

}  // namespace lpsim
