#include "lpsim/stats/regression.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "lpsim/format/random_stream.hpp"

namespace lpsim {

double sorted_quantile(const std::vector<double>& v, double q) {
  if (v.empty()) return NAN;
  const double pos = q * double(v.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(pos), hi = std::min(lo + 1, v.size() - 1);
  const double frac = pos - double(lo);
  // inf == inf, or an order statistic hit exactly: interpolating would give inf - inf or 0 * inf, both NaN.
  if (v[lo] == v[hi] || frac == 0) return v[lo];
  return v[lo] + frac * (v[hi] - v[lo]);
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return sorted_quantile(v, q);
}

namespace {

// Means and centred second moments of a paired sample (two passes: no cancellation in the sums).
struct Moments {
  double mx = 0, my = 0, sxx = 0, sxy = 0, syy = 0;
};
Moments moments(std::span<const double> x, std::span<const double> y) {
  const std::size_t n = x.size();
  Moments m;
  m.mx = std::accumulate(x.begin(), x.end(), 0.0) / double(n), m.my = std::accumulate(y.begin(), y.end(), 0.0) / double(n);
  for (std::size_t i = 0; i < n; ++i) {
    m.sxy += (x[i] - m.mx) * (y[i] - m.my);
    m.sxx += (x[i] - m.mx) * (x[i] - m.mx);
    m.syy += (y[i] - m.my) * (y[i] - m.my);
  }
  return m;
}

bool constant(std::span<const double> v) {
  return std::adjacent_find(v.begin(), v.end(), std::not_equal_to<>()) == v.end();
}

}  // namespace

// A sample whose x or y takes one value has no correlation and no slope: NaN, never the few-ulp ratio that the
// rounding of the mean leaves in sxx (a constant x gave pearson 0.000 and slope 0.000 [-1.5, 1.5] before).
double pearson(std::span<const double> x, std::span<const double> y) {
  if (x.size() < 2 || constant(x) || constant(y)) return NAN;
  const Moments m = moments(x, y);
  return m.sxy / std::sqrt(m.sxx * m.syy);
}

std::vector<double> ranks(std::span<const double> v) {
  std::vector<std::size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double average = (double(i) + double(j)) / 2 + 1;  // ranks start at 1
    for (std::size_t k = i; k <= j; ++k) r[order[k]] = average;
    i = j + 1;
  }
  return r;
}

double spearman(std::span<const double> x, std::span<const double> y) {
  const auto rx = ranks(x), ry = ranks(y);
  return pearson(rx, ry);
}

LineFit least_squares(std::span<const double> x, std::span<const double> y) {
  if (x.size() < 2 || constant(x)) return {NAN, NAN, NAN};
  const Moments m = moments(x, y);
  LineFit f;
  f.slope = m.sxy / m.sxx;
  f.intercept = m.my - f.slope * m.mx;
  f.r2 = m.sxy * m.sxy / (m.sxx * m.syy);
  return f;
}

Regression regress(std::span<const double> x, std::span<const double> y, bool log_x, bool log_y, int bootstrap,
                   std::uint64_t seed) {
  std::vector<double> a, b;
  double x0 = NAN, y0 = NAN;  // the first usable pair as given (a constant is named by its value, not 10^log10)
  int nonfinite = 0, nonpositive = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) {
      ++nonfinite;
      continue;
    }
    if ((log_x && x[i] <= 0) || (log_y && y[i] <= 0)) {
      ++nonpositive;
      continue;
    }
    if (a.empty()) x0 = x[i], y0 = y[i];
    a.push_back(log_x ? std::log10(x[i]) : x[i]);
    b.push_back(log_y ? std::log10(y[i]) : y[i]);
  }
  Regression r;
  r.n = int(a.size());
  r.nonfinite = nonfinite, r.nonpositive = nonpositive;
  if (r.n < 2) r.degenerate = fmt::format("{} usable pairs", r.n);
  else if (constant(a)) r.degenerate = fmt::format("x is constant ({:.6g})", x0);
  else if (constant(b)) r.degenerate = fmt::format("y is constant ({:.6g})", y0);
  r.pearson = pearson(a, b);
  r.spearman = spearman(a, b);
  r.fit = least_squares(a, b);
  if (r.n < 3 || bootstrap <= 0 || !r.degenerate.empty()) {
    r.pearson_ci = r.slope_ci = {NAN, NAN};
    return r;
  }
  std::vector<double> ps, ss, ra(a.size()), rb(b.size());
  for (int k = 0; k < bootstrap; ++k) {
    for (std::size_t i = 0; i < a.size(); ++i) {
      const std::size_t j = random_bits(seed, 0xb007, std::uint64_t(k) * a.size() + i) % a.size();
      ra[i] = a[j], rb[i] = b[j];
    }
    const double p = pearson(ra, rb), s = least_squares(ra, rb).slope;
    if (std::isfinite(p)) ps.push_back(p);  // a resample with one distinct x has no correlation
    if (std::isfinite(s)) ss.push_back(s);
  }
  r.pearson_ci = {quantile(ps, 0.025), quantile(ps, 0.975)};
  r.slope_ci = {quantile(ss, 0.025), quantile(ss, 0.975)};
  return r;
}

}  // namespace lpsim
