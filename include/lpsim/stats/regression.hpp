#pragma once
// The statistics of the papers' tables: Pearson on (log) values, Spearman, least squares with R^2, and bootstrap
// percentile intervals (resampling pairs with a seeded counter-based stream, so intervals are reproducible).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace lpsim {

// q-quantile with linear interpolation between order statistics (numpy's default); v need not be sorted.
double quantile(std::vector<double> v, double q);
// The same on an already sorted vector (NaN last or absent): inf where the interpolation reaches inf, never NaN.
double sorted_quantile(const std::vector<double>& sorted, double q);
double pearson(std::span<const double> x, std::span<const double> y);
// Pearson on ranks, ties given their average rank.
double spearman(std::span<const double> x, std::span<const double> y);
std::vector<double> ranks(std::span<const double> v);

struct LineFit {
  double slope = 0, intercept = 0, r2 = 0;
};
LineFit least_squares(std::span<const double> x, std::span<const double> y);

struct Interval {
  double low = 0, high = 0;
};

struct Regression {
  int n = 0;                   // pairs used (on logs: both values positive and finite)
  int nonfinite = 0;           // pairs left out for an Inf or NaN (an overflowed run: a finding, counted here)
  int nonpositive = 0;         // pairs left out for a value <= 0 on a log axis
  double pearson = 0, spearman = 0;
  LineFit fit;
  Interval pearson_ci, slope_ci;  // 95% bootstrap percentile intervals
  std::string degenerate;      // why there is no regression ("x is constant (0.0039)"); "" when there is one
};

// On log10 of x and/or y as asked (pairs with a value that has no logarithm, or is not finite, are left out).
Regression regress(std::span<const double> x, std::span<const double> y, bool log_x, bool log_y, int bootstrap = 2000,
                   std::uint64_t seed = 0);

}  // namespace lpsim
