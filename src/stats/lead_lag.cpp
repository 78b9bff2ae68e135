#include "lpsim/stats/lead_lag.hpp"

#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
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

// Phase-randomised surrogates of one series: its DFT's amplitudes with uniform random phases (conjugate-symmetric,
// so the surrogate is real; the mean and, for even n, the Nyquist term keep theirs). The twiddles are tabulated once.
class PhaseSurrogates {
 public:
  explicit PhaseSurrogates(std::span<const double> y) : n_(y.size()), cos_(n_ * n_), sin_(n_ * n_), amp_(n_ / 2 + 1) {
    for (std::size_t k = 0; k < n_; ++k)
      for (std::size_t t = 0; t < n_; ++t) {
        const double a = 2 * M_PI * double((k * t) % n_) / double(n_);
        cos_[k * n_ + t] = std::cos(a), sin_[k * n_ + t] = std::sin(a);
      }
    for (std::size_t k = 0; k <= n_ / 2; ++k) {
      double re = 0, im = 0;
      for (std::size_t t = 0; t < n_; ++t) re += y[t] * cos_[k * n_ + t], im -= y[t] * sin_[k * n_ + t];
      amp_[k] = std::hypot(re, im);
      if (k == 0) mean_ = re / double(n_);
      if (2 * k == n_) nyquist_ = re;  // real for even n
    }
  }
  void draw(std::uint64_t seed, std::uint64_t index, std::vector<double>& out) const {
    out.assign(n_, mean_);
    if (n_ % 2 == 0 && n_ > 0)
      for (std::size_t t = 0; t < n_; ++t) out[t] += nyquist_ * (t % 2 ? -1.0 : 1.0) / double(n_);
    for (std::size_t k = 1; 2 * k < n_; ++k) {
      const double u = double(random_bits(seed, 0x9a5eULL + index, k) >> 11) * 0x1p-53;
      const double phase = 2 * M_PI * u, c = amp_[k] * std::cos(phase), s = amp_[k] * std::sin(phase);
      // X_k = c + i s and its conjugate at n - k: x_t += 2 (c cos - s sin) / n.
      for (std::size_t t = 0; t < n_; ++t) out[t] += 2 * (c * cos_[k * n_ + t] - s * sin_[k * n_ + t]) / double(n_);
    }
  }

 private:
  std::size_t n_;
  std::vector<double> cos_, sin_, amp_;
  double mean_ = 0, nyquist_ = 0;
};

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
  const std::optional<PhaseSurrogates> phases =
      o.null == LeadLagNull::phase && o.permutations > 0 ? std::optional<PhaseSurrogates>(zy) : std::nullopt;
  for (int b = 0; b < o.permutations; ++b) {
    if (phases) {
      phases->draw(o.seed, std::uint64_t(b), perm);
    } else {  // Fisher-Yates from the counter-based stream (seed, b): permutation b is the same on every machine.
      perm = zy;
      for (std::size_t i = perm.size(); i > 1; --i) {
        const std::uint64_t bits = random_bits(o.seed, 0x1ead1a6ULL + std::uint64_t(b), i);
        std::swap(perm[i - 1], perm[std::size_t((static_cast<unsigned __int128>(bits) * i) >> 64)]);
      }
    }
    if (best_over_lags(zx, perm, o.max_lag, nullptr).second >= r.best_corr) ++at_least;
  }
  r.p_value = double(1 + at_least) / double(1 + o.permutations);
  return r;
}

}  // namespace lpsim
