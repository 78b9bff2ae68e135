#include "lpsim/diag/logit_bounds.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "diag/eigen_view.hpp"

namespace lpsim {

namespace {


double norm2(std::span<const double> v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

// Minimises a convex function on (0, hi) by golden sections.
template <class F>
double minimise(F f, double hi) {
  const double g = (std::sqrt(5.0) - 1) / 2;
  double a = 0, b = hi, c = b - g * (b - a), d = a + g * (b - a);
  double fc = f(c), fd = f(d);
  for (int i = 0; i < 60; ++i) {  // 0.618^60 ~ 3e-13 of the interval
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
    const Eigen::MatrixXd m = view(wq) * view(wk).transpose();
    return Eigen::BDCSVD<Eigen::MatrixXd>(m).singularValues()(0) * h * h / std::sqrt(dh);
  }
  const double sq = Eigen::BDCSVD<Eigen::MatrixXd>(view(wq)).singularValues()(0), sk = Eigen::BDCSVD<Eigen::MatrixXd>(view(wk)).singularValues()(0);
  return (sq * h + nbq) * (sk * h + nbk) / std::sqrt(dh);
}

namespace {

// The tails with every value counted `mult` times (the rank-agnostic spectrum: d copies of one value).
double chaos_tail(std::span<const double> s, double t, double mult) {
  double smax = 0;
  for (double x : s) smax = std::max(smax, std::fabs(x));
  if (t <= 0) return 0;
  if (smax == 0) return -std::numeric_limits<double>::infinity();
  // log E exp(l Z) = -1/2 sum log(1 - l^2 s_k^2) for |l| < 1/smax.
  auto f = [&](double l) {
    double v = -l * t;
    for (double x : s) v -= 0.5 * mult * std::log1p(-(l * x) * (l * x));
    return v;
  };
  return std::min(0.0, minimise(f, 1.0 / smax));
}

double quadratic_tail(std::span<const double> mu, double t, double mult) {
  double mmax = -std::numeric_limits<double>::infinity();
  for (double x : mu) mmax = std::max(mmax, x);
  if (mmax <= 0) return t > 0 ? -std::numeric_limits<double>::infinity() : 0.0;
  // log E exp(l Z) = -1/2 sum log(1 - 2 l mu_k) for l < 1/(2 mu_max).
  auto f = [&](double l) {
    double v = -l * t;
    for (double x : mu) v -= 0.5 * mult * std::log1p(-2 * l * x);
    return v;
  };
  return std::min(0.0, minimise(f, 0.5 / mmax));
}

}  // namespace

double log_chaos_tail(std::span<const double> s, double t) { return chaos_tail(s, t, 1); }
double log_quadratic_tail(std::span<const double> mu, double t) { return quadratic_tail(mu, t, 1); }

RankAwareBound rank_aware_logit_bound(const Matrix<double>& wq, const Matrix<double>& wk,
                                      std::span<const double> second_moments, int n, double delta) {
  if (!(delta > 0 && delta < 1)) throw std::invalid_argument("rank_aware_logit_bound: delta must be in (0, 1)");
  if (second_moments.size() != std::size_t(wq.rows)) throw std::invalid_argument("rank_aware_logit_bound: one second moment per input coordinate");
  Eigen::VectorXd d(wq.rows);
  for (int i = 0; i < wq.rows; ++i) d(i) = std::sqrt(std::max(0.0, second_moments[i]));
  const Eigen::MatrixXd m = d.asDiagonal() * (view(wq) * view(wk).transpose()) * d.asDiagonal() / std::sqrt(double(wq.cols));
  const Eigen::VectorXd sv = Eigen::BDCSVD<Eigen::MatrixXd>(m).singularValues();
  const Eigen::VectorXd ev = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>((m + m.transpose()) / 2).eigenvalues();
  RankAwareBound r;
  std::vector<double> s, mu, neg;
  for (int i = 0; i < sv.size(); ++i)
    if (sv(i) > 1e-12 * sv(0)) s.push_back(sv(i)), ++r.rank;
  for (int i = 0; i < ev.size(); ++i)  // zero eigenvalues contribute a factor 1 to the MGF
    if (std::fabs(ev(i)) > 1e-12 * sv(0)) mu.push_back(ev(i)), neg.push_back(-ev(i));
  const std::vector<double> flat = {sv.size() ? sv(0) : 0.0};  // d copies (mult below)
  const double pairs = double(n) * double(n - 1), log_delta = std::log(delta);
  // log of the union bound's total probability at t; decreasing in t.
  auto log_total = [&](const std::vector<double>& sing, const std::vector<double>& up, const std::vector<double>& down,
                       double mult, double t) {
    const double a = std::log(2 * pairs) + chaos_tail(sing, t, mult);
    const double b = std::log(double(n)) + quadratic_tail(up, t, mult), c = std::log(double(n)) + quadratic_tail(down, t, mult);
    const double hi = std::max({a, b, c});
    return hi == -std::numeric_limits<double>::infinity() ? hi : hi + std::log(std::exp(a - hi) + std::exp(b - hi) + std::exp(c - hi));
  };
  auto solve = [&](const std::vector<double>& sing, const std::vector<double>& up, const std::vector<double>& down,
                   double mult) {
    if (sing.empty() || sv(0) == 0) return 0.0;
    double lo = 0, hi = sv(0);
    while (log_total(sing, up, down, mult, hi) > log_delta) hi *= 2;
    for (int i = 0; i < 60 && hi - lo > 1e-6 * hi; ++i) {  // t to 6 digits
      const double mid = (lo + hi) / 2;
      (log_total(sing, up, down, mult, mid) > log_delta ? lo : hi) = mid;
    }
    return hi;
  };
  r.t = solve(s, mu, neg, 1);
  r.t_agnostic = solve(flat, flat, flat, double(sv.size()));
  return r;
}

}  // namespace lpsim
