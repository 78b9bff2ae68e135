#include "lpsim/stats/lead_lag.hpp"

#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <tuple>

#include "lpsim/format/random_stream.hpp"

namespace lpsim {

std::vector<double> zscore(std::span<const double> v) {
  const double n = double(v.size());
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / n;
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  const double sd = std::sqrt(ss / n);
  std::vector<double> z(v.size(), 0.0);
  if (sd > 0)
    for (std::size_t i = 0; i < v.size(); ++i) z[i] = (v[i] - mean) / sd;
  return z;
}

double lagged_correlation(std::span<const double> x, std::span<const double> y, int lag) {
  const long n = long(std::min(x.size(), y.size()));
  const long first = std::max(0L, -long(lag)), last = std::min(n, n - long(lag));  // t in [first, last)
  const long m = last - first;
  if (m < 3) return std::numeric_limits<double>::quiet_NaN();
  double mx = 0, my = 0;
  for (long t = first; t < last; ++t) mx += x[t], my += y[t + lag];
  mx /= double(m), my /= double(m);
  double sxy = 0, sxx = 0, syy = 0;
  for (long t = first; t < last; ++t) {
    const double a = x[t] - mx, b = y[t + lag] - my;
    sxy += a * b, sxx += a * a, syy += b * b;
  }
  if (sxx <= 0 || syy <= 0) return std::numeric_limits<double>::quiet_NaN();
  return sxy / std::sqrt(sxx * syy);
}

namespace {

// Best (lag, corr) over the scan; NaN correlations never win.
std::pair<int, double> best_over_lags(std::span<const double> x, std::span<const double> y, int max_lag,
                                      std::vector<double>* all) {
  int best_lag = 0;
  double best = -std::numeric_limits<double>::infinity();
  // Scan by growing |lag| (negative first) so that ties keep the smaller |lag|, then the smaller lag.
  for (int a = 0; a <= max_lag; ++a)
    for (int lag : {-a, a}) {
      const double c = lagged_correlation(x, y, lag);
      if (all) (*all)[lag + max_lag] = c;
      if (c > best) best = c, best_lag = lag;
      if (a == 0) break;
    }
  return {best_lag, best};
}

}  // namespace

LeadLag lead_lag(std::span<const double> x, std::span<const double> y, const LeadLagOptions& o) {
  if (x.size() != y.size()) throw std::invalid_argument("lead_lag: the signal and the target differ in length");
  if (o.max_lag < 0 || o.permutations < 0) throw std::invalid_argument("lead_lag: max_lag and permutations must be >= 0");
  const std::vector<double> zx = zscore(x), zy = zscore(y);
  LeadLag r;
  r.corr.assign(2 * o.max_lag + 1, std::numeric_limits<double>::quiet_NaN());
  std::tie(r.best_lag, r.best_corr) = best_over_lags(zx, zy, o.max_lag, &r.corr);
  r.permutations = o.permutations;
  int at_least = 0;
  std::vector<double> perm = zy;
  for (int b = 0; b < o.permutations; ++b) {
    // Fisher-Yates from the counter-based stream (seed, b): permutation b is the same on every machine.
    perm = zy;
    for (std::size_t i = perm.size(); i > 1; --i) {
      const std::uint64_t bits = random_bits(o.seed, 0x1ead1a6ULL + std::uint64_t(b), i);
      std::swap(perm[i - 1], perm[std::size_t((static_cast<unsigned __int128>(bits) * i) >> 64)]);
    }
    if (best_over_lags(zx, perm, o.max_lag, nullptr).second >= r.best_corr) ++at_least;
  }
  r.p_value = double(1 + at_least) / double(1 + o.permutations);
  return r;
}

}  // namespace lpsim
