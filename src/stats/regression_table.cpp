#include "lpsim/stats/regression_table.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <map>

namespace lpsim {

namespace {

struct Row {
  std::string group;
  Regression r;
};

// Mean and median of y at each distinct x (in order of first appearance).
void aggregate(const std::vector<double>& x, const std::vector<double>& y, std::vector<double>& ux,
               std::vector<double>& mean, std::vector<double>& median) {
  std::vector<double> keys;
  std::map<double, std::vector<double>> at;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!at.contains(x[i])) keys.push_back(x[i]);
    at[x[i]].push_back(y[i]);
  }
  for (double k : keys) {
    double m = 0;
    for (double v : at[k]) m += v / double(at[k].size());
    ux.push_back(k), mean.push_back(m), median.push_back(quantile(at[k], 0.5));
  }
}

std::vector<Row> fits(const std::string& group, const std::vector<double>& x, const std::vector<double>& y,
                      const RegressionRequest& q) {
  if (!q.aggregate) return {{group, regress(x, y, q.log_x, q.log_y, q.bootstrap, q.seed)}};
  std::vector<double> ux, mean, median;
  aggregate(x, y, ux, mean, median);
  return {{"mean: " + group, regress(ux, mean, q.log_x, q.log_y, q.bootstrap, q.seed)},
          {"median: " + group, regress(ux, median, q.log_x, q.log_y, q.bootstrap, q.seed)}};
}

std::vector<Row> rows_of(const CsvTable& t, const RegressionRequest& q) {
  const std::vector<double> x = t.numbers(q.x), y = t.numbers(q.y);
  std::vector<Row> out = fits("all", x, y, q);
  if (q.group.empty()) return out;
  const int g = t.column(q.group);
  std::vector<std::string> order;
  std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> parts;
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    const std::string& key = t.rows[i][g];
    if (!parts.contains(key)) order.push_back(key);
    parts[key].first.push_back(x[i]);
    parts[key].second.push_back(y[i]);
  }
  if (order.size() < 2) return out;
  for (const auto& key : order)  // a group with no regression (its x does not vary) keeps its reason
    for (Row& r : fits(key, parts[key].first, parts[key].second, q)) out.push_back(std::move(r));
  return out;
}

}  // namespace

std::string regression_csv(const CsvTable& t, const RegressionRequest& q) {
  std::string s = "x,y,log_x,log_y,group,n,pearson,pearson_lo,pearson_hi,spearman,r2,slope,slope_lo,slope_hi,intercept,"
                  "left_out_nonfinite,left_out_nonpositive\n";
  for (const Row& row : rows_of(t, q)) {
    const Regression& r = row.r;
    if (!r.degenerate.empty() && row.group != "all") continue;  // a group without a regression has no row
    s += fmt::format("{},{},{},{},\"{}\",{},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{},{}\n", q.x,
                     q.y, q.log_x, q.log_y, row.group, r.n, r.pearson, r.pearson_ci.low, r.pearson_ci.high, r.spearman,
                     r.fit.r2, r.fit.slope, r.slope_ci.low, r.slope_ci.high, r.fit.intercept, r.nonfinite, r.nonpositive);
  }
  return s;
}

std::string regression_text(const CsvTable& t, const RegressionRequest& q) {
  std::string s = fmt::format("{}{} against {}{} in {} ({} rows); 95% bootstrap intervals over {} resamples\n",
                              q.log_y ? "log10 " : "", q.y, q.log_x ? "log10 " : "", q.x, t.source, t.rows.size(),
                              q.bootstrap);
  s += fmt::format("{:<22} {:>5} {:>8} {:>19} {:>9} {:>7} {:>8} {:>19} {:>10}\n", "group", "n", "pearson", "(95% CI)",
                   "spearman", "R^2", "slope", "(95% CI)", "intercept");
  for (const Row& row : rows_of(t, q)) {
    const Regression& r = row.r;
    if (!r.degenerate.empty()) {
      s += fmt::format("{:<22} {:>5} no regression: {}\n", row.group, r.n, r.degenerate);
      continue;
    }
    s += fmt::format("{:<22} {:>5} {:>8.3f} {:>19} {:>9.3f} {:>7.3f} {:>8.3f} {:>19} {:>10.3f}\n", row.group, r.n,
                     r.pearson, fmt::format("[{:.3f}, {:.3f}]", r.pearson_ci.low, r.pearson_ci.high), r.spearman,
                     r.fit.r2, r.fit.slope, fmt::format("[{:.3f}, {:.3f}]", r.slope_ci.low, r.slope_ci.high),
                     r.fit.intercept);
    if (r.nonfinite || r.nonpositive)
      s += fmt::format("{:<22} left out: {} rows with Inf/NaN (overflow findings), {} with a value <= 0 on a log axis\n",
                       "", r.nonfinite, r.nonpositive);
  }
  return s;
}

}  // namespace lpsim
