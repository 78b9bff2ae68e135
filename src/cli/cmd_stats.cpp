// `lpsim stats CSV --x COL --y COL [--group COL]`: the papers' regression table from any results CSV.
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "lpsim/config/config_error.hpp"
#include "lpsim/stats/regression_table.hpp"

#include <algorithm>

namespace lpsim::cli {

void add_stats_command(CLI::App& app) {
  auto q = std::make_shared<RegressionRequest>();
  auto file = std::make_shared<std::string>();
  auto linear_x = std::make_shared<bool>(false), linear_y = std::make_shared<bool>(false);
  auto csv = std::make_shared<bool>(false);
  auto only = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = app.add_subcommand("stats", "Pearson (on logs), Spearman, R^2, slope with bootstrap intervals");
  cmd->add_option("file", *file, "results CSV (summary.csv of a sweep, or any)")->required();
  cmd->add_option("--x", q->x, "predictor column")->required();
  cmd->add_option("--y", q->y, "response column")->required();
  cmd->add_option("--group", q->group, "also fit within each value of this column");
  cmd->add_flag("--linear-x", *linear_x, "x as given instead of log10");
  cmd->add_flag("--linear-y", *linear_y, "y as given instead of log10");
  cmd->add_option("--bootstrap", q->bootstrap, "resamples for the intervals (default 2000)");
  cmd->add_option("--seed", q->seed, "seed of the resampling");
  cmd->add_flag("--csv", *csv, "print CSV instead of a table");
  cmd->add_flag("--aggregate", q->aggregate, "regress the mean and the median of y at each x");
  cmd->add_option("--only", *only, "keep rows where COLUMN is one of the values: COLUMN=V1,V2 (repeatable)");
  cmd->callback([=] {
    RegressionRequest r = *q;
    r.log_x = !*linear_x, r.log_y = !*linear_y;
    CsvTable t = read_csv(*file);
    for (const std::string& f : *only) {  // e.g. plan=autocast-bf16,autocast-fp16 (arXiv 2510.21770's "mixed precision" rows)
      const auto eq = f.find('=');
      if (eq == std::string::npos) throw ConfigError(fmt::format("--only '{}' must be COLUMN=V1,V2,...", f));
      const int c = t.column(f.substr(0, eq));
      std::vector<std::string> keep;
      for (std::size_t a = eq + 1, b; a <= f.size(); a = b + 1) {
        b = f.find(',', a);
        if (b == std::string::npos) b = f.size();
        keep.push_back(f.substr(a, b - a));
      }
      std::erase_if(t.rows, [&](const auto& r) { return std::find(keep.begin(), keep.end(), r[c]) == keep.end(); });
      if (t.rows.empty()) throw ConfigError(fmt::format("--only '{}' leaves no rows", f));
    }
    fmt::print("{}", *csv ? regression_csv(t, r) : regression_text(t, r));
  });
}

}  // namespace lpsim::cli
