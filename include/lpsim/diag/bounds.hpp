#pragma once
// How well arXiv 2510.21770's local bounds hold on a real forward (`lpsim bounds`). Each check is local: the operation
// gets exact inputs (the MPFR reference's, stored in the plan's format as the hardware would hold them), runs once
// under the plan, and is compared with the same operation in MPFR on those inputs.
//
// Theorem 1, per layer and head: Q, K, V stored in the score/PV GEMM input format; observed ||A~ - A|| / ||A||
// against [c_smx + kappa_softmax (1 + c_gemm kappa_score) + c'_gemm] eps_mach kappa(V) with unit constants
// (c = 1), and the smallest common constant c_min that makes it hold: observed / ([2 + ks (1 + kscore)] eps kV).
// Proposition 1, per normalisation: the input stored in the residual format; observed relative error against
// eps_mach [C1 sigma/sqrt(eps) + C2 sigma^2/eps + C3] with unit constants, c_min likewise; rho_LN says whether
// the input is in the eps-dominated regime where the proposition claims to apply. Theorem 1 also with worst-case
// constants derived from the plan's accumulation policies (AttentionBound::bound_wc).
// eps_mach, two conventions (arXiv 2510.21770 says "we treat eps_mach as that of the accumulator" but uses the input format
// in its runs): `bound` uses the input convention, eps_mach = 2^(1-p) of the plan's GEMM input format (the
// predictor's and sweeps' eps_mach too); `bound_acc` the accumulator convention (Theorem 1: the score GEMM's
// accumulator; Proposition 1: the norm's compute format). One regime rule everywhere: eps-dominated iff
// rho_LN = sigma^2 / eps * d_model * eps_mach < 1 with the input convention's eps_mach.
#include <vector>

#include "lpsim/model/plan.hpp"
#include "lpsim/model/weights.hpp"

namespace lpsim {

struct AttentionBound {
  int layer = 0, head = 0;
  double observed = 0, kappa_score = 0, kappa_softmax = 0, kappa_v = 0, eps_mach = 0, bound = 0, c_min = 0;
  bool held = false;
  double eps_mach_acc = 0, bound_acc = 0;  // the accumulator convention
  bool held_acc = false;
  // Worst-case constants from the plan: [theta_smx + kappa_softmax (u_scale + theta_score kappa_score) + theta_pv]
  // kappa(V), theta from accum/error_bound.hpp (score: k = d_head; PV: k = tokens), theta_smx = gamma_{n+3}(u_softmax)
  // + the roundings storing P.
  double bound_wc = 0;
  bool held_wc = false;
};

struct NormBound {
  int layer = 0, which = 0;  // which: 1 before (pre-LN) / after attention, 2 for the FFN
  double observed = 0, sigma2 = 0, rho_ln = 0, eps_mach = 0, bound = 0, c_min = 0;
  bool dominated = false, held = false;
  double eps_mach_acc = 0, bound_acc = 0;  // the accumulator convention (the norm's compute format)
  bool held_acc = false;
  // First-order worst case from the plan's precision alone (mean and variance as dot products under the norm's
  // reduction policy, each elementwise step one rounding, the output's storage), on this input: / ||N(x)||_F.
  double bound_wc = 0;
  bool held_wc = false;
};

struct BoundsReport {
  std::vector<AttentionBound> attention;
  std::vector<NormBound> norms;
};

BoundsReport check_local_bounds(const ModelConfig& cfg, const PrecisionPlan& plan, const Weights<double>& w,
                                const ModelInput<double>& in, int reference_bits = 128);

}  // namespace lpsim
