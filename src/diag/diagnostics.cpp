#include "lpsim/diag/diagnostics.hpp"

#include <fmt/format.h>

#include "lpsim/config/config_error.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

#include "diag/eigen_view.hpp"
#include "lpsim/diag/logit_bounds.hpp"
#include "lpsim/diag/softmax_jacobian.hpp"
#include "lpsim/diag/theta.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/native_backend.hpp"
#include "lpsim/model/plan.hpp"
#include "lpsim/stats/regression.hpp"

namespace lpsim {

namespace {


Eigen::VectorXd singular_values(const Matrix<double>& m) {
  return Eigen::BDCSVD<Eigen::MatrixXd>(Eigen::MatrixXd(view(m))).singularValues();
}

double frobenius(const Matrix<double>& m) { return view(m).norm(); }


// The float64 forward with an observer: per head the diagnostics, per norm its input's variance.
class DiagnosticBackend : public NativeBackend<double> {
 public:
  static constexpr BackendHooks hooks{.observe_norm_input = true, .observe_attention_input = true, .observe_head = true};
  DiagnosticBackend(int depth, bool causal, NormKind norm)
      : layers_(depth), attention_input_max_sq_(depth), attention_input_moments_(depth), causal_(causal), norm_(norm) {}
  void set_layer(int l) { layer_ = l, norms_seen_ = 0; }

  void observe_norm_input(const Matrix<double>& x) {
    (norms_seen_++ == 0 ? layers_[layer_].sigma2_norm1 : layers_[layer_].sigma2_norm2) = median_row_moment(x, norm_);
  }

  void observe_attention_input(const Matrix<double>& h) {
    double m = 0;
    for (int i = 0; i < h.rows; ++i) m = std::max(m, view(h).row(i).squaredNorm());
    attention_input_max_sq_[layer_] = m;
    std::vector<double>& c = attention_input_moments_[layer_];
    c.assign(h.cols, 0.0);
    for (int i = 0; i < h.rows; ++i)
      for (int j = 0; j < h.cols; ++j) c[j] += h(i, j) * h(i, j) / h.rows;
  }

  void observe_head(const Matrix<double>& q, const Matrix<double>& k, const Matrix<double>& s, const Matrix<double>& p,
                    const Matrix<double>& v) {
    HeadDiagnostics h;
    double theta_sum = 0;
    const double d = double(q.cols);
    h.kappa_score = frobenius(q) * frobenius(k) / (frobenius(s) * std::sqrt(d));
    h.kappa_score_spectral = spectral_norm(q) * spectral_norm(k) / (spectral_norm(s) * std::sqrt(d));
    for (int i = 0; i < p.rows; ++i) {
      const int valid = causal_ ? std::min(i + 1, p.cols) : p.cols;  // masked entries are not part of the row
      const std::span<const double> pi(p.row(i).data(), valid), si(s.row(i).data(), valid);
      double ns = 0, np = 0;
      for (int j = 0; j < valid; ++j) ns += si[j] * si[j], np += pi[j] * pi[j];
      const double ratio = std::sqrt(ns) / std::sqrt(np);
      h.kappa_softmax = std::max(h.kappa_softmax, softmax_jacobian_norm(pi) * ratio);
      h.kappa_softmax_power = std::max(h.kappa_softmax_power, softmax_jacobian_norm_power(pi, 3) * ratio);
      const Theta t = theta(pi);
      h.theta_max = std::max(h.theta_max, t.value);
      h.theta_exact = h.theta_exact && t.exact;
      theta_sum += t.value;
      for (double x : si) h.logit_max = std::max(h.logit_max, std::fabs(x));
    }
    h.theta_mean = theta_sum / p.rows;
    h.kappa_v = condition_number(v, 1e-6);
    layers_[layer_].heads.push_back(h);
  }

  std::vector<LayerDiagnostics> layers_;
  std::vector<double> attention_input_max_sq_;  // max_i ||h_i||^2 of each layer's attention input
  std::vector<std::vector<double>> attention_input_moments_;  // per coordinate: mean over tokens of h_ij^2

 private:
  int layer_ = 0, norms_seen_ = 0;
  bool causal_;
  NormKind norm_;
};

}  // namespace

double median_row_variance(const Matrix<double>& x) { return median_row_moment(x, NormKind::layernorm); }

double median_row_moment(const Matrix<double>& x, NormKind kind) {
  std::vector<double> v;
  for (int i = 0; i < x.rows; ++i) {
    const auto r = view(x).row(i);
    const double mean = kind == NormKind::layernorm ? r.mean() : 0.0;  // RMSNorm divides by sqrt(mean(x^2) + eps)
    v.push_back((r.array() - mean).square().mean());
  }
  return quantile(v, 0.5);
}

double spectral_norm(const Matrix<double>& m) {
  const Eigen::VectorXd s = singular_values(m);
  return s.size() ? s(0) : 0.0;
}

double condition_number(const Matrix<double>& m, double ridge) {
  const Eigen::VectorXd s = singular_values(m);
  return s.size() ? s(0) / (s(s.size() - 1) + ridge) : 0.0;
}

namespace {

// What one input's float64 forward shows, per layer, with the attention input's largest squared row norm and
// per-coordinate second moments (for the logit bounds).
struct Observed {
  std::vector<LayerDiagnostics> layers;
  std::vector<double> max_sq;
  std::vector<std::vector<double>> moments;
};

Observed observe(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in) {
  DiagnosticBackend be(cfg.depth, cfg.causal, cfg.norm);
  forward(be, cfg, w, in);
  Observed o{std::move(be.layers_), std::move(be.attention_input_max_sq_), std::move(be.attention_input_moments_)};
  for (int l = 0; l < cfg.depth; ++l) {
    LayerDiagnostics& d = o.layers[l];
    d.layer = l;
    for (const HeadDiagnostics& h : d.heads) {
      d.kappa_score = std::max(d.kappa_score, h.kappa_score);
      d.kappa_score_spectral = std::max(d.kappa_score_spectral, h.kappa_score_spectral);
      d.kappa_softmax = std::max(d.kappa_softmax, h.kappa_softmax);
      d.kappa_softmax_sum += h.kappa_softmax;
      d.kappa_softmax_power = std::max(d.kappa_softmax_power, h.kappa_softmax_power);
      d.kappa_v = std::max(d.kappa_v, h.kappa_v);
      d.theta_max = std::max(d.theta_max, h.theta_max);
      d.theta_mean = std::max(d.theta_mean, h.theta_mean);
      d.theta_exact = d.theta_exact && h.theta_exact;
      d.logit_max = std::max(d.logit_max, h.logit_max);
    }
  }
  return o;
}

// Several inputs as one batch: the largest of every per-input maximum (the per-head values are the first input's),
// the median of the norm-input variances, the largest row norm, the mean of the second moments (every token of the
// batch), then the parts that need the weights, once.
void add_weight_diagnostics(Observed& o, const ModelConfig& cfg, const Weights<double>& w) {
  const int dh = cfg.head_width();
  for (int l = 0; l < cfg.depth; ++l) {
    LayerDiagnostics& d = o.layers[l];
    const LayerWeights<double>& lw = w.layers[l];
    d.eps_norm1 = lw.norm1.eps, d.eps_norm2 = lw.norm2.eps;
    d.wo_norm = spectral_norm(lw.wo);
    d.kappa_wo = condition_number(lw.wo);
    d.kappa_w1 = condition_number(lw.w1);
    d.kappa_w2 = condition_number(lw.w2);
    d.kappa_eff = d.kappa_w1 + d.kappa_w2 + d.kappa_wo;
    for (int h = 0; h < cfg.heads; ++h) {
      const Matrix<double> wq = columns(lw.wq, h * dh, dh), wk = columns(lw.wk, h * dh, dh);
      const Dense m = view(wq) * view(wk).transpose();
      const Dense abs_m = view(wq).cwiseAbs() * view(wk).cwiseAbs().transpose();
      const Eigen::VectorXd sv = Eigen::BDCSVD<Eigen::MatrixXd>(Eigen::MatrixXd(m)).singularValues();
      const double smin = sv(std::min<Eigen::Index>(dh, sv.size()) - 1);  // on the rank d_h of M
      const double abs_norm = Eigen::BDCSVD<Eigen::MatrixXd>(Eigen::MatrixXd(abs_m)).singularValues()(0);
      d.qk_norm = std::max(d.qk_norm, sv(0));
      d.qk_norm_power = std::max(d.qk_norm_power, qk_norm_power(wq, wk));
      d.qk_cond = std::max(d.qk_cond, sv(0) / smin);
      d.qk_ratio = std::max(d.qk_ratio, abs_norm * sv(0) / smin);
      // arXiv 2602.18851's bounds (diag/logit_bounds.hpp): Cauchy-Schwarz with the biases, and the rank-aware tail bound.
      const auto head_bias = [&](const std::vector<double>& b) {
        return b.empty() ? std::span<const double>() : std::span<const double>(b.data() + h * dh, dh);
      };
      d.logit_bound = std::max(d.logit_bound, deterministic_logit_bound(wq, wk, head_bias(lw.bq), head_bias(lw.bk),
                                                                        std::sqrt(o.max_sq[l])));
      const RankAwareBound r = rank_aware_logit_bound(wq, wk, o.moments[l], cfg.tokens, kLogitDelta);
      d.logit_bound_rank = std::max(d.logit_bound_rank, r.t);
      d.logit_bound_agnostic = std::max(d.logit_bound_agnostic, r.t_agnostic);
    }
    d.fp8_scale = pow2_scale_within(formats::e4m3.max_finite(), d.logit_bound);  // e4m3's largest is 448
    d.fp8_scale_rank = pow2_scale_within(formats::e4m3.max_finite(), d.logit_bound_rank);
  }
}

}  // namespace

// The papers' diagnostics and bounds are written for the blocks of the papers' own models: multi-head attention
// with W_Q W_K^T per head and no rotary embedding, a plain two-matrix MLP, LayerNorm or RMSNorm without
// LlamaRMSNorm's cast. Anything else is refused before any work, never diagnosed as if it were one of those.
std::string diagnostics_problem(const ModelConfig& cfg) {
  std::vector<std::string> why;
  if (cfg.kv_head_count() != cfg.heads)
    why.push_back(fmt::format("grouped-query attention ({} key/value heads for {} heads)", cfg.kv_head_count(), cfg.heads));
  if (cfg.head_width() * cfg.heads != cfg.width) why.push_back(fmt::format("head_dim {} x {} heads != width {}",
                                                                       cfg.head_width(), cfg.heads, cfg.width));
  if (cfg.rope.theta > 0) why.push_back("rotary embeddings");
  if (cfg.mlp == Mlp::gated) why.push_back("a gated MLP");
  if (cfg.norm_cast) why.push_back("LlamaRMSNorm's cast inside the norm");
  if (cfg.qk_norm) why.push_back("per-head query/key norms");
  if (cfg.experts > 0) why.push_back(fmt::format("a mixture of {} experts", cfg.experts));
  if (cfg.position == NormPosition::sandwich) why.push_back("norms after the branches (sandwich)");
  if (cfg.attn_softcap > 0 || cfg.score_scalar > 0) why.push_back("soft-capped or rescaled attention scores");
  if (cfg.norm_gain_offset != 0) why.push_back("norm gains applied as 1 + w");
  if (why.empty()) return "";
  return fmt::format("model {}: the diagnostics and bounds are written for multi-head attention without rotary "
                     "embeddings, a plain MLP and norms without a cast; this model has {} (run without diagnostics; "
                     "sweeps: diagnostics = false)", cfg.name, fmt::join(why, ", "));
}

void check_diagnosable(const ModelConfig& cfg) {
  if (std::string why = diagnostics_problem(cfg); !why.empty()) throw ConfigError(why);
}

std::vector<LayerDiagnostics> diagnose(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in) {
  check_diagnosable(cfg);
  Observed o = observe(cfg, w, in);
  add_weight_diagnostics(o, cfg, w);
  return std::move(o.layers);
}

std::vector<LayerDiagnostics> diagnose(const ModelConfig& cfg, const Weights<double>& w,
                                       std::span<const ModelInput<double>> inputs) {
  if (inputs.empty()) return {};
  check_diagnosable(cfg);
  Observed all = observe(cfg, w, inputs[0]);
  std::vector<std::vector<double>> sigma1(cfg.depth), sigma2(cfg.depth);
  for (int l = 0; l < cfg.depth; ++l)
    sigma1[l].push_back(all.layers[l].sigma2_norm1), sigma2[l].push_back(all.layers[l].sigma2_norm2);
  for (std::size_t i = 1; i < inputs.size(); ++i) {
    const Observed o = observe(cfg, w, inputs[i]);
    for (int l = 0; l < cfg.depth; ++l) {
      LayerDiagnostics& a = all.layers[l];
      const LayerDiagnostics& b = o.layers[l];
      for (auto [x, y] : {std::pair{&a.kappa_score, b.kappa_score}, {&a.kappa_score_spectral, b.kappa_score_spectral},
                          {&a.kappa_softmax, b.kappa_softmax}, {&a.kappa_softmax_sum, b.kappa_softmax_sum},
                          {&a.kappa_softmax_power, b.kappa_softmax_power}, {&a.kappa_v, b.kappa_v},
                          {&a.theta_max, b.theta_max}, {&a.theta_mean, b.theta_mean}, {&a.logit_max, b.logit_max}})
        *x = std::max(*x, y);
      a.theta_exact = a.theta_exact && b.theta_exact;
      sigma1[l].push_back(b.sigma2_norm1), sigma2[l].push_back(b.sigma2_norm2);
      all.max_sq[l] = std::max(all.max_sq[l], o.max_sq[l]);
      for (std::size_t j = 0; j < o.moments[l].size(); ++j) all.moments[l][j] += o.moments[l][j];
    }
  }
  for (int l = 0; l < cfg.depth; ++l) {
    all.layers[l].sigma2_norm1 = quantile(sigma1[l], 0.5), all.layers[l].sigma2_norm2 = quantile(sigma2[l], 0.5);
    for (double& c : all.moments[l]) c /= double(inputs.size());
  }
  add_weight_diagnostics(all, cfg, w);
  return std::move(all.layers);
}

double qk_norm_power(const Matrix<double>& wq, const Matrix<double>& wk, int iterations) {
  const auto q = view(wq), k = view(wk);
  Eigen::VectorXd x = Eigen::VectorXd::Ones(k.rows());
  for (Eigen::Index i = 0; i < x.size(); ++i) x(i) += 0.01 * double(i % 7);  // not orthogonal to the top vector
  double norm = 0;
  for (int it = 0; it < iterations; ++it) {
    x.normalize();
    const Eigen::VectorXd mx = q * (k.transpose() * x);  // M x = W_Q (W_K^T x)
    norm = mx.norm();
    x = k * (q.transpose() * mx);                         // M^T M x
    if (x.norm() == 0) return 0;
  }
  return norm;
}

Predictor predictor(const LayerDiagnostics& d, const ModelConfig& cfg, double eps_mach) {
  Predictor p;
  const double width = double(cfg.width);
  auto c_ln = [&](double sigma2, double& rho, double own_eps) {
    const double eps = own_eps >= 0 ? own_eps : cfg.norm_eps;
    rho = eps > 0 ? sigma2 / eps * width * eps_mach : INFINITY;
    // Proposition 1 holds in the eps-dominated regime; outside it a norm is well conditioned (C3 only).
    return rho < 1 ? std::sqrt(sigma2 / eps) + sigma2 / eps + 1 : 1.0;
  };
  p.c_ln = c_ln(d.sigma2_norm1, p.rho_ln1, d.eps_norm1) + c_ln(d.sigma2_norm2, p.rho_ln2, d.eps_norm2);
  // arXiv 2510.21770 folds W_O into kappa_eff (+kappa(W_O)) in the unified bound, or, in Exp-1's predictor, factors it as
  // the explicit ||W_O||_2 multiplier: alternatives. The predictor takes the multiplier, so kappa_eff loses kappa(W_O).
  p.combined = d.kappa_softmax * (1 + d.kappa_score) * d.kappa_v * d.wo_norm + (d.kappa_w1 + d.kappa_w2) + p.c_ln;
  return p;
}

}  // namespace lpsim
