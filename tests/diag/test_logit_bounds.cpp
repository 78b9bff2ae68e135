// arXiv 2602.18851's logit bounds against Monte Carlo draws from their own model (Gaussian attention inputs) and against
// Cauchy-Schwarz on real forwards: the probabilistic bound must hold at least as often as it promises, the rank-aware
// bound must be tighter than the rank-agnostic one, and the Chernoff tails must lie above the sampled tails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "lpsim/diag/logit_bounds.hpp"
#include "lpsim/model/init.hpp"

namespace lpsim {
namespace {

Matrix<double> gaussian(int r, int c, std::uint64_t stream, double scale = 1.0) {
  Matrix<double> m(r, c);
  for (std::size_t i = 0; i < m.data.size(); ++i) m.data[i] = scale * normal_at(11, stream, i);
  return m;
}

// Max |S_ij| over one batch of n Gaussian rows with per-coordinate second moments c.
double sampled_max_logit(const Matrix<double>& wq, const Matrix<double>& wk, const std::vector<double>& c, int n,
                         std::uint64_t trial, bool with_bias_free = true) {
  const int d = wq.rows, dh = wq.cols;
  Matrix<double> q(n, dh, 0.0), k(n, dh, 0.0);
  for (int i = 0; i < n; ++i)
    for (int a = 0; a < d; ++a) {
      const double h = std::sqrt(c[a]) * normal_at(99, trial, std::uint64_t(i) * d + a);
      for (int j = 0; j < dh; ++j) q(i, j) += h * wq(a, j), k(i, j) += h * wk(a, j);
    }
  double m = 0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0;
      for (int t = 0; t < dh; ++t) s += q(i, t) * k(j, t);
      m = std::max(m, std::fabs(s) / std::sqrt(double(dh)));
    }
  (void)with_bias_free;
  return m;
}

TEST(LogitBounds, RankAwareBoundHoldsUnderItsModelAndBeatsTheAgnosticOne) {
  const int d = 32, dh = 4, n = 12, trials = 3000;
  const double delta = 0.05;
  const Matrix<double> wq = gaussian(d, dh, 1, 0.2), wk = gaussian(d, dh, 2, 0.2);
  std::vector<double> c(d);
  for (int a = 0; a < d; ++a) c[a] = 0.5 + double(a % 4) * 0.3;  // unequal coordinates: the D of D M D matters
  const RankAwareBound b = rank_aware_logit_bound(wq, wk, c, n, delta);
  EXPECT_EQ(b.rank, dh);
  EXPECT_LT(b.t, b.t_agnostic);
  int above = 0;
  std::vector<double> maxima;
  for (int t = 0; t < trials; ++t) {
    maxima.push_back(sampled_max_logit(wq, wk, c, n, t));
    above += maxima.back() >= b.t;
  }
  // P(max >= t) <= delta: the sampled rate within 3 binomial standard deviations of delta at most.
  EXPECT_LE(double(above) / trials, delta + 3 * std::sqrt(delta * (1 - delta) / trials)) << "bound " << b.t;
  // Not vacuous: the bound is within a small factor of the sampled (1 - delta) quantile.
  std::sort(maxima.begin(), maxima.end());
  const double q = maxima[std::size_t((1 - delta) * trials)];
  EXPECT_LT(b.t, 3.0 * q) << "sampled 95% quantile " << q;
}

TEST(LogitBounds, ChernoffTailsLieAboveSampledTails) {
  // Z = sum_k s_k g_k g'_k and W = sum_k mu_k g_k^2, sampled 200000 times; the bound at the sampled 99.9% and 99%
  // quantiles must be at least the sampled tail probability there.
  const std::vector<double> s = {1.0, 0.5, 0.25}, mu = {1.0, -0.5, 0.25};
  const int draws = 200000;
  std::vector<double> z(draws), w(draws);
  for (int i = 0; i < draws; ++i) {
    double a = 0, b = 0;
    for (std::size_t k = 0; k < s.size(); ++k) {
      const double g = normal_at(5, 1, std::uint64_t(i) * 8 + k), h = normal_at(5, 2, std::uint64_t(i) * 8 + k);
      a += s[k] * g * h, b += mu[k] * g * g;
    }
    z[i] = a, w[i] = b;
  }
  for (auto* v : {&z, &w}) std::sort(v->begin(), v->end());
  for (double p : {0.99, 0.999}) {
    const double tz = z[std::size_t(p * draws)], tw = w[std::size_t(p * draws)];
    EXPECT_GE(std::exp(log_chaos_tail(s, tz)), (1 - p) * 0.95) << "chaos at " << tz;
    EXPECT_GE(std::exp(log_quadratic_tail(mu, tw)), (1 - p) * 0.95) << "quadratic at " << tw;
    // And the Chernoff bound is not absurd: within 30x of the true tail this far out.
    EXPECT_LE(std::exp(log_chaos_tail(s, tz)), 30 * (1 - p));
  }
  EXPECT_EQ(log_quadratic_tail(std::vector<double>{-1.0, -2.0}, 0.5), -INFINITY);  // a negative form never exceeds 0.5
}

TEST(LogitBounds, DeterministicBoundHoldsWithAndWithoutBiases) {
  const int d = 16, dh = 4, n = 20;
  const Matrix<double> wq = gaussian(d, dh, 3), wk = gaussian(d, dh, 4);
  const Matrix<double> h = gaussian(n, d, 5);
  std::vector<double> bq(dh), bk(dh);
  for (int j = 0; j < dh; ++j) bq[j] = 0.3 * (j + 1), bk[j] = -0.2 * j;
  double hmax = 0;
  for (int i = 0; i < n; ++i) {
    double s = 0;
    for (int a = 0; a < d; ++a) s += h(i, a) * h(i, a);
    hmax = std::max(hmax, std::sqrt(s));
  }
  for (bool biased : {false, true}) {
    double worst = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        double s = 0;
        for (int t = 0; t < dh; ++t) {
          double qi = biased ? bq[t] : 0, kj = biased ? bk[t] : 0;
          for (int a = 0; a < d; ++a) qi += h(i, a) * wq(a, t), kj += h(j, a) * wk(a, t);
          s += qi * kj;
        }
        worst = std::max(worst, std::fabs(s) / 2.0);  // sqrt(d_h) = 2
      }
    const double bound = biased ? deterministic_logit_bound(wq, wk, bq, bk, hmax)
                                : deterministic_logit_bound(wq, wk, {}, {}, hmax);
    EXPECT_LE(worst, bound) << (biased ? "with" : "without") << " biases";
  }
}

}  // namespace
}  // namespace lpsim
