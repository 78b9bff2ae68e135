#pragma once
// arXiv 2510.21770's Spike Precision@K (Exp-2): raise an alarm at the K steps where the signal stands highest above its own
// recent past, and count the alarms followed by a spike of the target within the horizon.
//   rolling z: z_t = (v_t - mean(v_{t-w..t-1})) / std(v_{t-w..t-1}), defined for t >= w (population std; 0 if flat)
//   spikes of the target: z_t > threshold
//   alarms: the K defined steps of largest signal z (ties: the earlier step), K = ceil(k_fraction * T)
//   hit: some target spike at t' with t <= t' <= t + horizon (an alarm near the end sees a shorter horizon)
#include <span>
#include <vector>

namespace lpsim {

struct SpikeOptions {
  int window = 20;
  int horizon = 40;
  double threshold = 1.5;
  double k_fraction = 0.1;
};

// NaN for t < window.
std::vector<double> rolling_zscore(std::span<const double> v, int window);

struct SpikePrecision {
  int k = 0, hits = 0;
  double precision = 0;        // hits / k
  double base_rate = 0;        // share of all defined steps that a spike follows within the horizon: the precision
                               // of alarms raised at random, to read `precision` against
  std::vector<int> alarms;     // the K alarm steps, ascending
  std::vector<int> spikes;     // the target's spike steps
};

SpikePrecision spike_precision(std::span<const double> signal, std::span<const double> target, const SpikeOptions& o = {});

}  // namespace lpsim
