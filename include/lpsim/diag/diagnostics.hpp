#pragma once
// Seed 001's per-layer diagnostics (Sections 2-3, App. A.6) and Exp-1's combined predictor, computed on the
// float64 forward (NativeBackend<double> with an observer), exactly where the paper allows estimates:
//   kappa_score   = ||Q|| ||K|| / (||S|| sqrt(d))  per head, Frobenius (and with spectral norms)
//   kappa_softmax = max_i ||J(P_i)||_2 ||S_i|| / ||P_i||  per head (exact norm; the 3-step power estimate too)
//   kappa(V)      = sigma_max(V) / (sigma_min(V) + 1e-6)  per head (the paper's ridge)
//   ||W_O||_2, kappa_eff = kappa(W1) + kappa(W2) + kappa(W_O)
//   rho_LN = sigma^2 / eps * d_model * eps_mach, sigma^2 the median over tokens of the variance at the norm's input
//   C_LN   = sigma/sqrt(eps) + sigma^2/eps + 1 where rho_LN < 1 (Proposition 1 with C1 = C2 = C3 = 1), else 1
//   predictor = kappa_softmax (1 + kappa_score) kappa(V) ||W_O||_2 + kappa_eff + C_LN
// Heads are aggregated by max (kappa_softmax also by sum); the two norms of a layer add their C_LN.
#include <vector>

#include "lpsim/model/weights.hpp"

namespace lpsim {

struct HeadDiagnostics {
  double kappa_score = 0, kappa_score_spectral = 0, kappa_softmax = 0, kappa_softmax_power = 0, kappa_v = 0;
};

struct LayerDiagnostics {
  int layer = 0;
  std::vector<HeadDiagnostics> heads;
  double kappa_score = 0, kappa_score_spectral = 0;     // max over heads
  double kappa_softmax = 0, kappa_softmax_sum = 0, kappa_softmax_power = 0;
  double kappa_v = 0;
  double wo_norm = 0, kappa_w1 = 0, kappa_w2 = 0, kappa_wo = 0, kappa_eff = 0;
  double sigma2_norm1 = 0, sigma2_norm2 = 0;            // median over tokens of the variance at each norm's input
};

// Plan-independent diagnostics of every layer of the float64 forward.
std::vector<LayerDiagnostics> diagnose(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in);

struct Predictor {
  double rho_ln1 = 0, rho_ln2 = 0, c_ln = 0, combined = 0;
};
// The precision-dependent part: eps_mach is the papers' machine epsilon 2^(1-p) of the precision under study.
Predictor predictor(const LayerDiagnostics& d, const ModelConfig& cfg, double eps_mach);

// kappa of a matrix over its min(m, n) singular values, with an optional ridge added to sigma_min.
double condition_number(const Matrix<double>& m, double ridge = 0);
double spectral_norm(const Matrix<double>& m);

}  // namespace lpsim
