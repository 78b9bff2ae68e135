#include "lpsim/diag/depth_bound.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "lpsim/config/config_error.hpp"
#include "lpsim/diag/residual_gain.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "lpsim/reference/mpfr_backend.hpp"

namespace lpsim {

std::vector<DepthBoundRow> depth_bound(const ModelConfig& cfg, const PrecisionPlan& plan, const Weights<double>& w,
                                       const ModelInput<double>& in, int reference_bits,
                                       const std::vector<ResidualCheck>* known_gains) {
  if (cfg.position != NormPosition::pre)
    throw ConfigError(fmt::format("model '{}': the depth bound composes x + f(x) blocks; it needs a pre-LN model", cfg.name));
  check_reference_fits(cfg, reference_bits);  // the MPFR stream below, before any work
  const int old_bits = lpsim::reference_bits();
  set_reference_bits(reference_bits);
  // The exact stream: the input of block 0 (the embedding in MPFR) and every block's output.
  const Weights<Real> wr = convert_weights<Real>(w);
  const ModelInput<Real> inr = convert_input<Real>(in);
  std::vector<Matrix<Real>> x;  // x[l]: input of block l; x[depth]: the output
  {
    MpfrBackend m;
    x.push_back(layers::embed(m, cfg, wr, inr));
  }
  const Taps<Real> ref = reference_taps(0, cfg, w, in);
  for (int l = 0; l < cfg.depth; ++l) x.push_back(ref[std::size_t(l) * 4 + 3]);
  // The whole emulated forward, for the observed side.
  EmulatedBackend whole(plan);
  const Taps<double> emulated = emulated_taps(whole, cfg, w, in);
  // Jacobian gains of both branches at the float64 forward's inputs.
  std::vector<LayerDiagnostics> gains(cfg.depth);
  if (known_gains) {
    for (const ResidualCheck& c : *known_gains)
      (c.branch == Branch::attention ? gains[c.layer].rho_attn : gains[c.layer].rho_ffn) = c.rho;
  } else {
    add_residual_gains(gains, cfg, w, in);
  }

  ModelConfig one = cfg;
  one.depth = 1, one.embedding = Embedding::none, one.class_token = false, one.final_norm = one.lm_head = false;
  // The blocks' parameters as the plan stores them (the whole emulated forward rounds them the same way).
  const Weights<double> stored_w = plan.params ? params_rounded(w, plan.params->spec) : w;
  // The recursion starts from the emulated embedding's own error (issue 19: starting from 0 called a bound
  // violated at layer 0 that was the embedding's rounding, not the block's).
  EmulatedBackend embedder(plan);
  const TapError e0 = compare_tap(layers::embed(embedder, cfg, stored_w, in), x[0]);
  std::vector<DepthBoundRow> rows;
  double carried = e0.rel_fro * e0.ref_fro, carried_uniform = carried, local_max = 0, alpha_max = 0;
  for (int l = 0; l < cfg.depth; ++l) {
    Weights<double> wl;
    wl.layers = {stored_w.layers[l]};
    wl.rope_cos = w.rope_cos, wl.rope_sin = w.rope_sin;
    // Block l under the plan on the stored exact input (embedding none stores it in the residual format) ...
    ModelInput<double> stored_in;
    stored_in.x = convert<double>(x[l]);
    EmulatedBackend be(plan);
    const Matrix<double> block = forward(be, one, wl, stored_in);
    // ... against the exact block on the exact input (differences formed in MPFR).
    const TapError e = compare_tap(block, x[l + 1]);
    const double norm_out = e.ref_fro, local = e.rel_fro * norm_out;
    DepthBoundRow r;
    r.layer = l;
    r.embedding = e0.rel_fro;
    r.alpha = (1 + gains[l].rho_attn) * (1 + gains[l].rho_ffn);
    r.local = e.rel_fro;
    carried = carried * r.alpha + local;
    local_max = std::max(local_max, local), alpha_max = std::max(alpha_max, r.alpha);
    carried_uniform = carried_uniform * alpha_max + local_max;
    r.bound = carried / norm_out;
    r.uniform = std::max(carried_uniform, carried) / norm_out;
    r.observed = compare_tap(emulated[std::size_t(l) * 4 + 3], x[l + 1]).rel_fro;
    r.held = r.observed <= r.bound;
    rows.push_back(r);
  }
  set_reference_bits(old_bits);
  return rows;
}

}  // namespace lpsim
