// `lpsim hf-check`: transformers' observed forward errors on the GPU (results/hf/observed.csv) against lpsim's
// prediction for the same checkpoints, inputs and modes; writes DIR/comparison.csv, exit status 1 when a row is
// outside the tolerance and not among the documented ones (DIR/documented_outside.csv: the rows results/hf/README.md
// says lpsim does not explain), so reproducing the documented state succeeds and a new deviation fails.
//   lpsim hf-check results/hf
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "cli/commands.hpp"
#include "lpsim/hw/hf_observations.hpp"
#include "lpsim/stats/csv_table.hpp"
#include "util/atomic_file.hpp"

namespace lpsim::cli {

void add_hf_check_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>("results/hf");
  auto tol = std::make_shared<HfTolerance>();
  CLI::App* cmd = app.add_subcommand("hf-check", "transformers' observed GPU errors (results/hf) against lpsim's prediction");
  cmd->add_option("dir", *dir, "directory with observed.csv and models/")->capture_default_str();
  cmd->add_option("--tolerance", tol->relative, "largest |predicted/observed - 1|")->capture_default_str();
  cmd->callback([dir, tol] {
    check_writable(*dir + "/comparison.csv");  // before the studies
    const std::vector<HfComparison> rows = compare_hf_observations(*dir);
    std::set<std::string> documented;  // "model,mode,layer,tap"
    if (const std::string file = *dir + "/documented_outside.csv"; std::filesystem::exists(file)) {
      const CsvTable t = read_csv(file);
      for (const auto& r : t.rows)
        documented.insert(fmt::format("{},{},{},{}", r[t.column("model")], r[t.column("mode")], r[t.column("layer")],
                                      r[t.column("tap")]));
    }
    int undocumented = 0;
    std::map<std::pair<std::string, std::string>, std::pair<double, double>> worst;  // (model, mode) -> min, max ratio
    int outside = 0;
    for (const HfComparison& c : rows) {
      auto [it, fresh] = worst.emplace(std::pair{c.model, c.mode}, std::pair{c.ratio(), c.ratio()});
      it->second.first = std::min(it->second.first, c.ratio()), it->second.second = std::max(it->second.second, c.ratio());
      if (!within(c, *tol)) {
        ++outside;
        const bool known = documented.contains(fmt::format("{},{},{},{}", c.model, c.mode, c.layer, c.tap));
        undocumented += !known;
        fmt::print("outside{}: {} {} layer {} {}: observed {:.4e} predicted {:.4e} (ratio {:.3f})\n",
                   known ? " (documented)" : ", NOT documented", c.model, c.mode, c.layer, c.tap, c.observed,
                   c.predicted, c.ratio());
      }
    }
    fmt::print("{:<10} {:<14} {:>10} {:>10}\n", "model", "mode", "min ratio", "max ratio");
    for (const auto& [key, r] : worst) fmt::print("{:<10} {:<14} {:>10.3f} {:>10.3f}\n", key.first, key.second, r.first, r.second);
    for (const HfComparison& c : rows)
      if (c.tap == "logits")
        fmt::print("{:<10} {:<14} logits KL observed {:.3e} predicted {:.3e}; top-1 observed {:.4f} predicted {:.4f}\n",
                   c.model, c.mode, c.kl_observed, c.kl_predicted, c.top1_observed, c.top1_predicted);
    write_atomically(*dir + "/comparison.csv", hf_comparison_csv(rows));
    // Mixture-of-experts routers: which experts the GPU chose against lpsim's prediction (a report, not a check).
    if (const std::vector<HfRouteAgreement> routes = compare_hf_routes(*dir); !routes.empty()) {
      for (const HfRouteAgreement& a : routes)
        fmt::print("{:<10} {:<22} layer {} routes: {} of {} tokens the same experts as the GPU's ({} in the same order)\n",
                   a.model, a.mode, a.layer, a.same_set, a.tokens, a.same_order);
      write_atomically(*dir + "/routes_comparison.csv", hf_route_csv(routes));
    }
    fmt::print("{} of {} rows within {:.0f}% (top-1 within {}); wrote {}/comparison.csv\n", rows.size() - outside,
               rows.size(), 100 * tol->relative, tol->top1, *dir);
    if (outside)
      fmt::print("{} rows outside: {} of them listed in {}/documented_outside.csv, {} not\n", outside,
                 outside - undocumented, *dir, undocumented);
    if (undocumented) throw CLI::RuntimeError(1);
  });
}

}  // namespace lpsim::cli
