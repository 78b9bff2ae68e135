// `lpsim lnbump STUDY`: arXiv 2510.21770's Exp-3 table (its Table 4) from matched control and eps-bump runs of
// scripts/train_digits.py under STUDY/runs/<precision>_seed<k>_<run> (run: control or rho<r>_cap<c>). For each run:
// tail means over the last `tail` steps of the training loss (log.csv) and of the forward mismatch r_block of the
// final block (emulated under the plan against float64 on the probe batch, `lpsim trajectory` on those
// checkpoints); then per (rho*, cap): control - intervention per seed, mean and sample std over seeds.
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <regex>
#include <set>
#include <tuple>

#include "cli/commands.hpp"
#include "lpsim/config/config_error.hpp"
#include "lpsim/model/model_config.hpp"
#include "lpsim/stats/csv_table.hpp"
#include "lpsim/trajectory/trajectory.hpp"
#include "util/atomic_file.hpp"

namespace lpsim::cli {

namespace {

struct RunTail {
  std::string name, arm;  // arm: "control" or "rho0.7_cap0.005"
  int seed = 0;
  double tail_loss = 0, tail_r = 0;
  int bumps = 0;          // checks of Algorithm 1 that raised some eps
  double max_eps = 0;     // largest eps any LayerNorm reached
};

double tail_mean(const std::vector<double>& step, const std::vector<double>& v, int from) {
  double s = 0;
  int n = 0;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (step[i] >= from) s += v[i], ++n;
  return n ? s / n : NAN;
}

std::pair<double, double> mean_sd(const std::vector<double>& v) {
  const double m = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return {m, v.size() > 1 ? std::sqrt(ss / double(v.size() - 1)) : NAN};
}

}  // namespace

void add_lnbump_command(CLI::App& app) {
  struct Options {
    std::string study, precision = "fp16", plan;
    int tail = 50;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("lnbump", "control vs LayerNorm-eps-bump runs: tail loss and mismatch (Exp-3, Table 4)");
  cmd->add_option("study", o->study, "study directory (model.toml, probe.safetensors, runs/)")->required();
  cmd->add_option("--precision", o->precision, "training precision of the runs to compare (default fp16)");
  cmd->add_option("--plan,-p", o->plan, "plan of the emulated forward (default autocast-<precision>)");
  cmd->add_option("--tail", o->tail, "tail length in steps (default 50)");
  cmd->callback([o] {
    namespace fs = std::filesystem;
    const fs::path study(o->study);
    const ModelConfig cfg = load_model_config((study / "model.toml").string());
    const auto probe = read_probe((study / "probe.safetensors").string(), cfg);
    const PrecisionPlan plan = load_plan(o->plan.empty() ? "autocast-" + o->precision : o->plan);
    const std::regex name_re(o->precision + "_seed([0-9]+)_(control|rho[0-9.]+_cap[0-9.e+-]+)");
    std::vector<RunTail> runs;
    for (const auto& e : fs::directory_iterator(study / "runs")) {
      std::smatch m;
      const std::string name = e.path().filename().string();
      if (!e.is_directory() || !std::regex_match(name, m, name_re)) continue;
      RunTail r{name, m[2], std::stoi(m[1])};
      const CsvTable log = read_csv((e.path() / "log.csv").string());
      const std::vector<double> step = log.numbers("step"), loss = log.numbers("loss");
      const int last = int(*std::max_element(step.begin(), step.end()));
      r.tail_loss = tail_mean(step, loss, last - o->tail + 1);
      run_trajectory(e.path().string(), cfg, probe, plan, {.first_step = last - o->tail + 1, .diagnostics = false, .quiet = true});
      const CsvTable series = read_csv((e.path() / "series.csv").string());
      r.tail_r = tail_mean(series.numbers("step"), series.numbers("r_block_final"), last - o->tail + 1);
      const CsvTable eps = read_csv((e.path() / "ln_eps.csv").string());
      const std::vector<double> es = eps.numbers("step"), before = eps.numbers("eps_before"), after = eps.numbers("eps_after");
      std::set<double> bumped;
      for (std::size_t i = 0; i < es.size(); ++i) {
        if (after[i] > before[i]) bumped.insert(es[i]);
        r.max_eps = std::max(r.max_eps, after[i]);
      }
      r.bumps = int(bumped.size());
      runs.push_back(r);
      fmt::print(stderr, "lnbump: {}: tail loss {:.5f}, tail r {:.4e}, {} bumping checks\n", name, r.tail_loss, r.tail_r, r.bumps);
    }
    std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) { return std::tie(a.arm, a.seed) < std::tie(b.arm, b.seed); });
    std::map<int, const RunTail*> control;
    std::map<std::string, std::vector<const RunTail*>> arms;
    std::string runs_csv = "run,arm,seed,tail_loss,tail_r_block,bumping_checks,max_eps\n";
    for (const RunTail& r : runs) {
      runs_csv += fmt::format("{},{},{},{:.9g},{:.6e},{},{:.6e}\n", r.name, r.arm, r.seed, r.tail_loss, r.tail_r, r.bumps, r.max_eps);
      if (r.arm == "control") control[r.seed] = &r;
      else arms[r.arm].push_back(&r);
    }
    if (control.empty()) throw ConfigError(fmt::format("lnbump: no {}_seed<k>_control runs under {}", o->precision, (study / "runs").string()));
    std::string table = "rho_star,cap,seeds,dloss_mean,dloss_std,dr_mean,dr_std,bumping_checks_mean\n";
    fmt::print("\nExp-3 (Table 4): control - intervention over the last {} steps; positive = the bump helped\n", o->tail);
    fmt::print("{:>5} {:>7} {:>5} {:>11} {:>10} {:>11} {:>10} {:>7}\n", "rho*", "cap", "seeds", "dloss", "std", "dr", "std", "bumps");
    const std::regex arm_re("rho([0-9.]+)_cap([0-9.e+-]+)");
    for (const auto& [arm, rs] : arms) {
      std::vector<double> dl, dr, bumps;
      for (const RunTail* r : rs) {
        auto c = control.find(r->seed);
        if (c == control.end()) continue;
        dl.push_back(c->second->tail_loss - r->tail_loss), dr.push_back(c->second->tail_r - r->tail_r);
        bumps.push_back(r->bumps);
      }
      if (dl.empty()) continue;
      std::smatch m;
      std::regex_match(arm, m, arm_re);
      const auto [lm, ls] = mean_sd(dl);
      const auto [rm, rsd] = mean_sd(dr);
      const double bm = mean_sd(bumps).first;
      fmt::print("{:>5} {:>7} {:>5} {:>11.3e} {:>10.3e} {:>11.3e} {:>10.3e} {:>7.1f}\n", std::string(m[1]), std::string(m[2]),
                 dl.size(), lm, ls, rm, rsd, bm);
      table += fmt::format("{},{},{},{:.6e},{:.6e},{:.6e},{:.6e},{:.2f}\n", std::string(m[1]), std::string(m[2]), dl.size(),
                           lm, ls, rm, rsd, bm);
    }
    write_atomically((study / "lnbump_runs.csv").string(), runs_csv);
    write_atomically((study / "lnbump.csv").string(), table);
    fmt::print("\nwrote {} and {}\n", (study / "lnbump.csv").string(), (study / "lnbump_runs.csv").string());
  });
}

}  // namespace lpsim::cli
