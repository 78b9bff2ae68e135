#include "lpsim/diag/diagnostic_columns.hpp"

#include <fmt/format.h>

namespace lpsim {

std::string diagnostic_header() {
  return ",kappa_score,kappa_score_spectral,kappa_softmax,kappa_softmax_sum,kappa_softmax_power,kappa_v,wo_norm,kappa_eff,"
         "rho_ln1,rho_ln2,c_ln,eps_mach,predictor,predictor_eps,theta_max,theta_mean,qk_norm,qk_cond,qk_ratio,"
         "logit_max,logit_bound,fp8_scale,logit_bound_rank,logit_bound_agnostic,fp8_scale_rank,rho_attn,rho_ffn,residual_amplification";
}

std::string diagnostic_cells(const std::vector<LayerDiagnostics>& diag, const ModelConfig& cfg, const PrecisionPlan& plan,
                             int layer) {
  const double eps_mach = 2 * plan.unit_roundoff();  // the papers' 2^(1-p)
  if (diag.empty() || layer < 0 || layer >= int(diag.size()))  // no diagnostics, or the final norm and logits rows
    return fmt::format(",nan,nan,nan,nan,nan,nan,nan,nan,nan,nan,nan,{},nan,nan,nan,nan,nan,nan,nan,nan,nan,nan,nan,nan,nan,nan,nan,nan", eps_mach);
  const LayerDiagnostics& d = diag[layer];
  const Predictor p = predictor(d, cfg, eps_mach);
  return fmt::format(",{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{},{:.6e},{:.6e}",
                     d.kappa_score, d.kappa_score_spectral, d.kappa_softmax, d.kappa_softmax_sum, d.kappa_softmax_power,
                     d.kappa_v, d.wo_norm, d.kappa_eff, p.rho_ln1, p.rho_ln2, p.c_ln, eps_mach, p.combined,
                     p.combined * eps_mach) +
         fmt::format(",{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{},{:.6e},{:.6e},{}", d.theta_max, d.theta_mean,
                     d.qk_norm, d.qk_cond, d.qk_ratio, d.logit_max, d.logit_bound, d.fp8_scale, d.logit_bound_rank,
                     d.logit_bound_agnostic, d.fp8_scale_rank) +
         fmt::format(",{:.6e},{:.6e},{:.6e}", d.rho_attn, d.rho_ffn, d.residual_amplification);
}

}  // namespace lpsim
