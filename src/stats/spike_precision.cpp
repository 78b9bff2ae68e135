#include "lpsim/stats/spike_precision.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace lpsim {

std::vector<double> rolling_zscore(std::span<const double> v, int window) {
  if (window < 2) throw std::invalid_argument("rolling_zscore: the window must be >= 2");
  std::vector<double> z(v.size(), std::numeric_limits<double>::quiet_NaN());
  for (std::size_t t = window; t < v.size(); ++t) {
    double mean = 0, ss = 0;
    for (std::size_t s = t - window; s < t; ++s) mean += v[s];
    mean /= window;
    for (std::size_t s = t - window; s < t; ++s) ss += (v[s] - mean) * (v[s] - mean);
    const double sd = std::sqrt(ss / window);
    z[t] = sd > 0 ? (v[t] - mean) / sd : 0.0;
  }
  return z;
}

SpikePrecision spike_precision(std::span<const double> signal, std::span<const double> target, const SpikeOptions& o) {
  if (signal.size() != target.size()) throw std::invalid_argument("spike_precision: the series differ in length");
  const std::vector<double> zs = rolling_zscore(signal, o.window), zt = rolling_zscore(target, o.window);
  SpikePrecision r;
  for (std::size_t t = 0; t < zt.size(); ++t)
    if (zt[t] > o.threshold) r.spikes.push_back(int(t));
  std::vector<int> candidates;
  for (std::size_t t = 0; t < zs.size(); ++t)
    if (!std::isnan(zs[t])) candidates.push_back(int(t));
  std::stable_sort(candidates.begin(), candidates.end(), [&](int a, int b) { return zs[a] > zs[b]; });
  r.k = int(std::ceil(o.k_fraction * double(signal.size()) - 1e-9));
  r.k = std::min(r.k, int(candidates.size()));
  r.alarms.assign(candidates.begin(), candidates.begin() + r.k);
  std::sort(r.alarms.begin(), r.alarms.end());
  auto followed = [&](int t) {
    auto it = std::lower_bound(r.spikes.begin(), r.spikes.end(), t);
    return it != r.spikes.end() && *it <= t + o.horizon;
  };
  for (int a : r.alarms) r.hits += followed(a);
  int followed_steps = 0;
  for (int t : candidates) followed_steps += followed(t);
  r.base_rate = candidates.empty() ? 0.0 : double(followed_steps) / double(candidates.size());
  r.precision = r.k ? double(r.hits) / r.k : std::numeric_limits<double>::quiet_NaN();
  return r;
}

}  // namespace lpsim
