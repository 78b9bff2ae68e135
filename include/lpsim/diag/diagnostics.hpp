#pragma once
// arXiv 2510.21770's per-layer diagnostics (Sections 2-3, App. A.6) and Exp-1's combined predictor, computed on the
// float64 forward (NativeBackend<double> with an observer), exactly where the paper allows estimates:
//   kappa_score   = ||Q|| ||K|| / (||S|| sqrt(d))  per head, Frobenius (and with spectral norms)
//   kappa_softmax = max_i ||J(P_i)||_2 ||S_i|| / ||P_i||  per head (exact norm; the 3-step power estimate too)
//   kappa(V)      = sigma_max(V) / (sigma_min(V) + 1e-6)  per head (the paper's ridge)
//   ||W_O||_2, kappa_eff = kappa(W1) + kappa(W2) + kappa(W_O)
//   rho_LN = sigma^2 / eps * d_model * eps_mach, sigma^2 the median over tokens of the variance at the norm's input
//   C_LN   = sigma/sqrt(eps) + sigma^2/eps + 1 where rho_LN < 1 (Proposition 1 with C1 = C2 = C3 = 1), else 1
//   predictor = kappa_softmax (1 + kappa_score) kappa(V) ||W_O||_2 + kappa(W1) + kappa(W2) + C_LN (W_O enters once,
//   as the multiplier: arXiv 2510.21770 uses +kappa(W_O) in kappa_eff only where W_O is not factored out)
// Heads are aggregated by max (kappa_softmax also by sum); the two norms of a layer add their C_LN.
// Also, from the other papers: theta(p) of arXiv 2602.18849 (max and mean over rows); for M = W_Q W_K^T of each head, arXiv 2503.10251's
// condition number on its rank and its bound factor sigma_max(|W_Q||W_K|^T) sigma_max(M) / sigma_min(M), arXiv 2602.18851's
// ||M||_2 by power iteration without forming M, the logit bounds of diag/logit_bounds.hpp (deterministic with the
// biases; rank-aware probabilistic from the attention input's second moments) beside the observed max |S_ij|, and the
// power-of-two FP8 e4m3 scales they give.
#include <cmath>
#include <span>
#include <vector>

#include "lpsim/model/weights.hpp"

namespace lpsim {

struct HeadDiagnostics {
  double kappa_score = 0, kappa_score_spectral = 0, kappa_softmax = 0, kappa_softmax_power = 0, kappa_v = 0;
  double theta_max = 0, theta_mean = 0;  // arXiv 2602.18849, over rows
  bool theta_exact = true;               // every row's theta exact (else theta_max is a lower bound)
  double logit_max = 0;                  // observed max |S_ij| (S = Q K^T / sqrt(d_h), masked entries left out)
};

struct LayerDiagnostics {
  int layer = 0;
  std::vector<HeadDiagnostics> heads;
  double kappa_score = 0, kappa_score_spectral = 0;     // max over heads
  double kappa_softmax = 0, kappa_softmax_sum = 0, kappa_softmax_power = 0;
  double kappa_v = 0;
  double wo_norm = 0, kappa_w1 = 0, kappa_w2 = 0, kappa_wo = 0, kappa_eff = 0;
  double sigma2_norm1 = 0, sigma2_norm2 = 0;            // median over tokens of the variance at each norm's input
  double eps_norm1 = -1, eps_norm2 = -1;                // each norm's own eps (< 0: the model's norm_eps)
  double theta_max = 0, theta_mean = 0;                 // max over heads
  bool theta_exact = true;
  double qk_norm = 0, qk_norm_power = 0;                // ||W_Q W_K^T||_2: SVD, and arXiv 2602.18851's power iteration; max over heads
  double qk_cond = 0, qk_ratio = 0;                     // arXiv 2503.10251, max over heads
  double logit_max = 0, logit_bound = 0, fp8_scale = 0; // observed max |S|, its bound (with biases), the scale it guarantees
  double logit_bound_rank = 0, logit_bound_agnostic = 0;  // arXiv 2602.18851's tail bound at kLogitDelta: rank-aware, rank-agnostic
  double fp8_scale_rank = 0;                            // the e4m3 scale the rank-aware bound gives
  // Residual branch gains ||J_f||_2 (diag/residual_gain.hpp; NaN unless asked for) and the amplification
  // prod_{k>l} (1 + rho_attn_k)(1 + rho_ffn_k) that Theorem 3 applies to this layer's local error.
  double rho_attn = NAN, rho_ffn = NAN, residual_amplification = NAN;
};

// ||W_Q W_K^T||_2 by power iteration on M^T M, applying W_K^T, W_Q, W_Q^T, W_K in turn (M is never formed).
double qk_norm_power(const Matrix<double>& wq, const Matrix<double>& wk, int iterations = 60);

// "" when the diagnostics and bounds are defined for this model, else every reason they are not (grouped-query
// attention, rotary embeddings, a gated MLP, a norm with a cast). check_diagnosable throws it as a ConfigError;
// every diagnostic and bound calls it before any work.
std::string diagnostics_problem(const ModelConfig& cfg);
void check_diagnosable(const ModelConfig& cfg);

// Plan-independent diagnostics of every layer of the float64 forward.
std::vector<LayerDiagnostics> diagnose(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in);
// A batch of inputs: per layer the largest of the per-input maxima, the median of the norm-input variances, the
// logit bounds from the batch's largest row norm and its pooled second moments; the weights' parts once.
std::vector<LayerDiagnostics> diagnose(const ModelConfig& cfg, const Weights<double>& w,
                                       std::span<const ModelInput<double>> inputs);

// The failure probability of the probabilistic logit bounds: P(max_ij |S_ij| >= bound) <= 1e-3 per head and input.
inline constexpr double kLogitDelta = 1e-3;

struct Predictor {
  double rho_ln1 = 0, rho_ln2 = 0, c_ln = 0, combined = 0;
};
// The precision-dependent part: eps_mach is the papers' machine epsilon 2^(1-p) of the precision under study.
Predictor predictor(const LayerDiagnostics& d, const ModelConfig& cfg, double eps_mach);

// kappa of a matrix over its min(m, n) singular values, with an optional ridge added to sigma_min.
double condition_number(const Matrix<double>& m, double ridge = 0);
double spectral_norm(const Matrix<double>& m);
// Median over rows (tokens) of each row's biased variance: the sigma^2 of rho_LN and C_LN.
double median_row_variance(const Matrix<double>& x);
// The second moment the norm divides by, median over rows: the centred variance (LayerNorm) or mean(x^2) (RMSNorm).
// sigma^2 of Proposition 1 and rho_LN is this moment (issue 19: it was the centred variance for RMSNorm too).
double median_row_moment(const Matrix<double>& x, NormKind kind);

}  // namespace lpsim
