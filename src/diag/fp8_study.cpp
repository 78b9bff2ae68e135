#include "lpsim/diag/fp8_study.hpp"

#include "util/progress.hpp"

#include <fmt/format.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

#include "diag/eigen_view.hpp"
#include "lpsim/config/config_error.hpp"
#include "lpsim/diag/diagnostics.hpp"
#include "lpsim/diag/logit_bounds.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/reference/forward_error.hpp"

namespace lpsim {

namespace {


// The direction that maximises h^T M h for layer 0, head 0 (top eigenvector of M's symmetric part), centred so that
// LayerNorm keeps it: an input token along it produces the largest logit the layer can make.
Eigen::VectorXd outlier_direction(const ModelConfig& cfg, const Weights<double>& w) {
  const int dh = cfg.head_width();
  const Dense m = view(columns(w.layers[0].wq, 0, dh)) * view(columns(w.layers[0].wk, 0, dh)).transpose();
  const Eigen::MatrixXd sym = (m + m.transpose()) / 2;
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(sym);
  Eigen::VectorXd u = es.eigenvectors().col(es.eigenvalues().size() - 1);
  u.array() -= u.mean();
  return u / u.norm();
}

}  // namespace

std::vector<double> logit_bounds_from_weights(const ModelConfig& cfg, const Weights<double>& w) {
  if (cfg.position != NormPosition::pre)
    throw ConfigError("the geometry-aware logit bound needs a pre-LN model (post-LN attention inputs are not normalised)");
  const int dh = cfg.head_width();
  std::vector<double> out;
  for (const LayerWeights<double>& l : w.layers) {
    double gamma = 0, beta = 0;
    for (double g : l.norm1.gamma) gamma = std::max(gamma, std::fabs(g));
    for (double b : l.norm1.beta) beta += b * b;
    const double h = gamma * std::sqrt(double(cfg.width)) + std::sqrt(beta);  // ||normalised|| <= sqrt(d)
    double m = 0;
    for (int head = 0; head < cfg.heads; ++head) {  // one bias rule with the diagnostics (diag/logit_bounds.hpp)
      const auto bias = [&](const std::vector<double>& b) {
        return b.empty() ? std::span<const double>() : std::span<const double>(b.data() + head * dh, dh);
      };
      m = std::max(m, deterministic_logit_bound(columns(l.wq, head * dh, dh), columns(l.wk, head * dh, dh), bias(l.bq),
                                                bias(l.bk), h));
    }
    out.push_back(m);
  }
  return out;
}

std::vector<double> rank_aware_bounds_from_weights(const ModelConfig& cfg, const Weights<double>& w, double delta) {
  if (cfg.position != NormPosition::pre)
    throw ConfigError("the rank-aware logit bound needs a pre-LN model (post-LN attention inputs are not normalised)");
  const int dh = cfg.head_width();
  std::vector<double> out;
  for (const LayerWeights<double>& l : w.layers) {
    std::vector<double> c(cfg.width);
    for (int a = 0; a < cfg.width; ++a)
      c[a] = l.norm1.gamma[a] * l.norm1.gamma[a] + (l.norm1.beta.empty() ? 0.0 : l.norm1.beta[a] * l.norm1.beta[a]);
    double m = 0;
    for (int head = 0; head < cfg.heads; ++head)
      m = std::max(m, rank_aware_logit_bound(columns(l.wq, head * dh, dh), columns(l.wk, head * dh, dh), c, cfg.tokens,
                                             delta).t);
    out.push_back(m);
  }
  return out;
}

std::vector<Fp8StudyRow> run_fp8_study(const ModelConfig& cfg, const Fp8StudyOptions& o) {
  if (cfg.embedding != Embedding::none)
    throw ConfigError(fmt::format("model '{}': the FP8 study places outlier tokens in the residual stream; it needs "
                                  "embedding = \"none\"", cfg.name));
  const Weights<double> w = make_weights(cfg, o.seed);
  const std::vector<double> bounds = logit_bounds_from_weights(cfg, w), rank_bounds = rank_aware_bounds_from_weights(cfg, w);
  const double bound = *std::max_element(bounds.begin(), bounds.end());
  const double rank_bound = *std::max_element(rank_bounds.begin(), rank_bounds.end());
  const Eigen::VectorXd u = outlier_direction(cfg, w);
  const Format logit_format = parse_format(o.logit_format);

  // Per-tensor scalings of the logits in `logit_format`, then block scalings along each row (their own E4M3 elements).
  const char* names[] = {"current", "delayed", "geometry", "rank", "mxfp8-e4m3", "fp8-1x128"};
  const OutputScaling kinds[] = {OutputScaling::current, OutputScaling::delayed, OutputScaling::geometry,
                                 OutputScaling::geometry, OutputScaling::blocks, OutputScaling::blocks};
  std::vector<EmulatedBackend> backends;  // one per scheme, alive over all batches (the delayed history)
  for (std::size_t k = 0; k < std::size(kinds); ++k) {
    PrecisionPlan plan = load_plan(o.plan);
    plan[Op::scale].out = logit_format;
    plan[Op::scale].out_scaling = kinds[k];
    if (kinds[k] == OutputScaling::blocks) {
      plan[Op::scale].blocks = block_scheme(names[k]);
      plan[Op::scale].out = plan[Op::scale].blocks->element;
    }
    plan.name = plan.name + "+fp8-logits";
    backends.emplace_back(plan, o.seed);
    backends.back().set_geometry_bounds(k == 3 ? rank_bounds : bounds);
  }
  std::vector<Fp8StudyRow> rows;
  Progress progress("fp8study", "batches", o.batches);
  for (int b = 0; b < o.batches; ++b) {
    ModelInput<double> in = make_input(cfg, o.seed, b);
    const bool outlier = std::find(o.outliers.begin(), o.outliers.end(), b) != o.outliers.end();
    if (outlier)  // token 0 along the direction of the largest logit, rounded to the storage format by make_input's rule
      for (int j = 0; j < cfg.width; ++j)
        in.x(0, j) = double(float(o.outlier_scale * cfg.input.scale * std::sqrt(double(cfg.width)) * u(j)));
    const Taps<double> ref = fp64_taps(cfg, w, in);
    double amax = 0;
    for (const LayerDiagnostics& d : diagnose(cfg, w, in)) amax = std::max(amax, d.logit_max);
    for (std::size_t s = 0; s < backends.size(); ++s) {
      const RangeEvents before = backends[s].events();
      const Taps<double> taps = emulated_taps(backends[s], cfg, w, in);
      const RangeEvents after = backends[s].events();
      const TapError final_block = compare_tap(taps.back(), ref.back());
      Fp8StudyRow r;
      r.batch = b, r.outlier = outlier, r.scheme = names[s];
      r.overflows = after.overflows - before.overflows;
      r.saturations = after.saturations - before.saturations;
      r.nonfinite = final_block.nonfinite;
      r.logit_amax = amax, r.logit_bound = s == 3 ? rank_bound : bound;
      r.r_final = final_block.rel_fro;
      rows.push_back(r);
    }
    progress.step(b + 1);
  }
  return rows;
}

}  // namespace lpsim
