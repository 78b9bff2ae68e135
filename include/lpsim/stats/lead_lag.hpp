#pragma once
// arXiv 2510.21770's lead-lag protocol (Exp-2): z-score both series, correlate the signal at t with the target at t + lag for
// every lag in [-max_lag, max_lag], keep the lag of largest correlation, and test it by permutation, re-selecting the
// best lag for every surrogate target so that the scan over lags is part of the null distribution.
//
// The null: the paper shuffles time points (`shuffle`), which destroys autocorrelation, so two independent smooth
// series (random walks, AR(1) with phi 0.9) come out "significant" most of the time. The default `phase` draws
// phase-randomised surrogates of the target (same amplitude spectrum, hence the same autocorrelation, random
// Fourier phases; Theiler et al. 1992), which keeps the test's size on such series (tests/stats/test_lead_lag.cpp).
#include <cstdint>
#include <span>
#include <vector>

namespace lpsim {

// (v - mean) / std with the population std; all zeros for a constant series.
std::vector<double> zscore(std::span<const double> v);

// Pearson correlation of x[t] with y[t + lag] over the t where both exist (lag > 0: x leads y). NaN when fewer than
// 3 pairs overlap or either side is constant there.
double lagged_correlation(std::span<const double> x, std::span<const double> y, int lag);

struct LeadLag {
  int best_lag = 0;           // argmax over lags of the correlation (ties: the smaller |lag|, then the smaller lag)
  double best_corr = 0;
  double p_value = 1;         // (1 + #{surrogates whose best correlation >= best_corr}) / (1 + permutations)
  int permutations = 0;
  std::vector<double> corr;   // corr[lag + max_lag]
};

enum class LeadLagNull : std::uint8_t { phase, shuffle };

struct LeadLagOptions {
  int max_lag = 60;
  LeadLagNull null = LeadLagNull::phase;
  int permutations = 999;
  std::uint64_t seed = 0;     // the permutations' counter-based stream: the same p-value on every machine
};

// x: the signal (e.g. max kappa_softmax), y: the target (e.g. r_block). Both z-scored inside; equal lengths.
LeadLag lead_lag(std::span<const double> x, std::span<const double> y, const LeadLagOptions& o = {});

}  // namespace lpsim
