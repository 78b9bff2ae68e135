#pragma once
// Bounds on one head's attention logits S_ij = (h_i W_Q + b_Q) . (h_j W_K + b_K) / sqrt(d_h) (arXiv 2602.18851), one rule
// for every caller (per-layer diagnostics, the FP8 study):
//   deterministic (Cauchy-Schwarz, h >= every ||h_i||):
//     no biases:   ||W_Q W_K^T||_2 h^2 / sqrt(d_h)                     (the bilinear form's own norm)
//     with biases: (||W_Q||_2 h + ||b_Q||)(||W_K||_2 h + ||b_K||) / sqrt(d_h)
//   rank-aware probabilistic (our concrete form of arXiv 2602.18851's inequality; its abstract gives no constants): rows
//     h_i ~ N(0, diag(c)) independent, c the attention input's per-coordinate second moments. Off the diagonal
//     S_ij = sum_k s_k g_k g'_k, s_k the singular values of D W_Q W_K^T D / sqrt(d_h) (D = diag(sqrt(c))), g, g'
//     independent standard normal vectors; on the diagonal S_ii = sum_k mu_k g_k^2, mu the eigenvalues of the
//     symmetric part. Exact Chernoff bounds from those spectra (rank(M) <= d_h terms: the rank awareness), a union
//     bound over the n^2 entries, solved for t with P(max_ij |S_ij| >= t) <= delta. Biases shift the mean; the
//     probabilistic bound is of the bias-free part (a model with Q/K biases is reported, never silently mixed).
//     The rank-agnostic comparison replaces the spectrum by d copies of the largest singular value: what knowing
//     only the norm and the width gives.
#include <span>

#include "lpsim/model/matrix.hpp"

namespace lpsim {

double deterministic_logit_bound(const Matrix<double>& wq, const Matrix<double>& wk, std::span<const double> bq,
                                 std::span<const double> bk, double h);

struct RankAwareBound {
  double t = 0;           // P(max |S_ij| >= t) <= delta under the Gaussian model, rank-aware
  double t_agnostic = 0;  // the same from the norm and the width only
  int rank = 0;           // numerical rank of D W_Q W_K^T D
};

// wq, wk: width x d_h (one head). second_moments: width entries. n: tokens. delta in (0, 1).
RankAwareBound rank_aware_logit_bound(const Matrix<double>& wq, const Matrix<double>& wk,
                                      std::span<const double> second_moments, int n, double delta);

// log P(sum_k s_k g_k g'_k >= t) <= the returned value (Chernoff, exact MGF of the Gaussian bilinear chaos).
double log_chaos_tail(std::span<const double> singular_values, double t);
// log P(sum_k mu_k g_k^2 >= t) <= the returned value (Chernoff, exact MGF of the Gaussian quadratic form).
double log_quadratic_tail(std::span<const double> eigenvalues, double t);

}  // namespace lpsim
