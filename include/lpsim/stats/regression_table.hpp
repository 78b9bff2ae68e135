#pragma once
// The regression table of a results CSV: y against x over all rows and within each value of a grouping column,
// as printed by `lpsim stats` and written by sweeps as stats.csv.
#include <string>

#include "lpsim/stats/csv_table.hpp"
#include "lpsim/stats/regression.hpp"

namespace lpsim {

struct RegressionRequest {
  std::string x, y, group;  // group "" : all rows only
  bool log_x = true, log_y = true;
  int bootstrap = 2000;
  std::uint64_t seed = 0;
  // Regress the mean and the median of y at each x (arXiv 2503.10251's mean and median over initialisations) instead of
  // the raw rows; with log y and linear x the slope is log10 of the growth factor per unit of x.
  bool aggregate = false;
};

// CSV text: group, n, pearson (+ 95% CI), spearman, r2, slope (+ CI), intercept, and the request.
std::string regression_csv(const CsvTable& table, const RegressionRequest& request);
// The same as an aligned table for the terminal.
std::string regression_text(const CsvTable& table, const RegressionRequest& request);

}  // namespace lpsim
