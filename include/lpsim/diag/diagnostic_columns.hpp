#pragma once
// The per-layer diagnostic columns that every per-tap CSV carries (sweeps' taps.csv, `lpsim run`'s CSV): seed
// the papers' diagnostics (docs/SOURCES.md) of the layer and the plan's combined predictor, "nan" where diagnostics were not computed.
#include <string>
#include <vector>

#include "lpsim/diag/diagnostics.hpp"
#include "lpsim/model/plan.hpp"

namespace lpsim {

// ",kappa_score,...,fp8_scale" (leading comma: appended to a tap row's header).
std::string diagnostic_header();
// The cells of `layer` in the order of diagnostic_header(); diag empty: nan everywhere but eps_mach.
std::string diagnostic_cells(const std::vector<LayerDiagnostics>& diag, const ModelConfig& cfg, const PrecisionPlan& plan,
                             int layer);

}  // namespace lpsim
