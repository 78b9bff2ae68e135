#include "lpsim/diag/logit_bounds.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

namespace lpsim {

namespace {

using Dense = Eigen::MatrixXd;
Dense dense(const Matrix<double>& m) { return Eigen::Map<const Eigen::Matrix<double, -1, -1, Eigen::RowMajor>>(m.data.data(), m.rows, m.cols); }

double norm2(std::span<const double> v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

// Minimises a convex function on (0, hi) by golden sections (enough for a Chernoff exponent: 100 steps).
template <class F>
double minimise(F f, double hi) {
  const double g = (std::sqrt(5.0) - 1) / 2;
  double a = 0, b = hi, c = b - g * (b - a), d = a + g * (b - a);
  double fc = f(c), fd = f(d);
  for (int i = 0; i < 100; ++i) {
    if (fc < fd) b = d, d = c, fd = fc, c = b - g * (b - a), fc = f(c);
    else a = c, c = d, fc = fd, d = a + g * (b - a), fd = f(d);
  }
  return std::min(fc, fd);
}

}  // namespace

double deterministic_logit_bound(const Matrix<double>& wq, const Matrix<double>& wk, std::span<const double> bq,
                                 std::span<const double> bk, double h) {
  const double dh = double(wq.cols);
  const double nbq = norm2(bq), nbk = norm2(bk);
  if (nbq == 0 && nbk == 0) {
    const Dense m = dense(wq) * dense(wk).transpose();
    return Eigen::BDCSVD<Dense>(m).singularValues()(0) * h * h / std::sqrt(dh);
  }
  const double sq = Eigen::BDCSVD<Dense>(dense(wq)).singularValues()(0), sk = Eigen::BDCSVD<Dense>(dense(wk)).singularValues()(0);
  return (sq * h + nbq) * (sk * h + nbk) / std::sqrt(dh);
}

double log_chaos_tail(std::span<const double> s, double t) {
  double smax = 0;
  for (double x : s) smax = std::max(smax, std::fabs(x));
  if (t <= 0) return 0;
  if (smax == 0) return -std::numeric_limits<double>::infinity();
  // log E exp(l Z) = -1/2 sum log(1 - l^2 s_k^2) for |l| < 1/smax.
  auto f = [&](double l) {
    double v = -l * t;
    for (double x : s) v -= 0.5 * std::log1p(-(l * x) * (l * x));
    return v;
  };
  return std::min(0.0, minimise(f, 1.0 / smax));
}

double log_quadratic_tail(std::span<const double> mu, double t) {
  double mmax = -std::numeric_limits<double>::infinity();
  for (double x : mu) mmax = std::max(mmax, x);
  if (mmax <= 0) return t > 0 ? -std::numeric_limits<double>::infinity() : 0.0;
  // log E exp(l Z) = -1/2 sum log(1 - 2 l mu_k) for l < 1/(2 mu_max).
  auto f = [&](double l) {
    double v = -l * t;
    for (double x : mu) v -= 0.5 * std::log1p(-2 * l * x);
    return v;
  };
  return std::min(0.0, minimise(f, 0.5 / mmax));
}

RankAwareBound rank_aware_logit_bound(const Matrix<double>& wq, const Matrix<double>& wk,
                                      std::span<const double> second_moments, int n, double delta) {
  if (!(delta > 0 && delta < 1)) throw std::invalid_argument("rank_aware_logit_bound: delta must be in (0, 1)");
  if (second_moments.size() != std::size_t(wq.rows)) throw std::invalid_argument("rank_aware_logit_bound: one second moment per input coordinate");
  Eigen::VectorXd d(wq.rows);
  for (int i = 0; i < wq.rows; ++i) d(i) = std::sqrt(std::max(0.0, second_moments[i]));
  const Dense m = d.asDiagonal() * (dense(wq) * dense(wk).transpose()) * d.asDiagonal() / std::sqrt(double(wq.cols));
  const Eigen::VectorXd sv = Eigen::BDCSVD<Dense>(m).singularValues();
  const Eigen::VectorXd ev = Eigen::SelfAdjointEigenSolver<Dense>((m + m.transpose()) / 2).eigenvalues();
  RankAwareBound r;
  std::vector<double> s, mu, neg;
  for (int i = 0; i < sv.size(); ++i)
    if (sv(i) > 1e-12 * sv(0)) s.push_back(sv(i)), ++r.rank;
  for (int i = 0; i < ev.size(); ++i) mu.push_back(ev(i)), neg.push_back(-ev(i));
  const std::vector<double> flat(sv.size(), sv.size() ? sv(0) : 0.0), flat_mu(ev.size(), sv.size() ? sv(0) : 0.0);
  const double pairs = double(n) * double(n - 1), log_delta = std::log(delta);
  // log of the union bound's total probability at t; decreasing in t.
  auto log_total = [&](const std::vector<double>& sing, const std::vector<double>& up, const std::vector<double>& down,
                       double t) {
    const double a = std::log(2 * pairs) + log_chaos_tail(sing, t);
    const double b = std::log(double(n)) + log_quadratic_tail(up, t), c = std::log(double(n)) + log_quadratic_tail(down, t);
    const double hi = std::max({a, b, c});
    return hi == -std::numeric_limits<double>::infinity() ? hi : hi + std::log(std::exp(a - hi) + std::exp(b - hi) + std::exp(c - hi));
  };
  auto solve = [&](const std::vector<double>& sing, const std::vector<double>& up, const std::vector<double>& down) {
    if (sing.empty() || sv(0) == 0) return 0.0;
    double lo = 0, hi = sv(0);
    while (log_total(sing, up, down, hi) > log_delta) hi *= 2;
    for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; ++i) {
      const double mid = (lo + hi) / 2;
      (log_total(sing, up, down, mid) > log_delta ? lo : hi) = mid;
    }
    return hi;
  };
  r.t = solve(s, mu, neg);
  r.t_agnostic = solve(flat, flat_mu, flat_mu);
  return r;
}

}  // namespace lpsim
