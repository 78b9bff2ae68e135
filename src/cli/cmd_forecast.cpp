// `lpsim forecast SERIES.csv...`: arXiv 2510.21770's Exp-2 analysis (its Table 3) on the series that `lpsim trajectory`
// writes, one file per seed: lead-lag of a signal (default max kappa_softmax) against each target (default the final
// block's forward error, and the loss), permutation p-value, Spike Precision@K. Writes a table CSV and the
// correlation-by-lag curves (for scripts/plot_forecast.py, arXiv 2510.21770's Figure 4).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "cli/commands.hpp"
#include "lpsim/config/config_error.hpp"
#include "lpsim/stats/csv_table.hpp"
#include "lpsim/stats/lead_lag.hpp"
#include "lpsim/stats/regression.hpp"
#include "lpsim/stats/spike_precision.hpp"
#include "util/atomic_file.hpp"

namespace lpsim::cli {

namespace {

// The first directory whose name holds "seed" (fp16_seed3_control); else the file's position.
std::string label_of(const std::string& path, std::size_t index) {
  for (auto p = std::filesystem::path(path).parent_path(); !p.empty() && p != p.root_path(); p = p.parent_path())
    if (p.filename().string().find("seed") != std::string::npos) return p.filename().string();
  return fmt::format("series{}", index);
}

// v minus its least-squares line over the index.
std::vector<double> detrended(const std::vector<double>& v) {
  std::vector<double> t(v.size());
  std::iota(t.begin(), t.end(), 0.0);
  const LineFit f = least_squares(t, v);
  std::vector<double> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = v[i] - (f.slope * t[i] + f.intercept);
  return out;
}

}  // namespace

void add_forecast_command(CLI::App& app) {
  struct Options {
    std::vector<std::string> files;
    std::string signal = "kappa_softmax_max", out, curves;
    std::vector<std::string> targets = {"r_block_final", "loss"};
    LeadLagOptions lag;
    SpikeOptions spike;
    bool detrend = false;
    std::string null = "phase";
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("forecast", "lead-lag, permutation test and Spike Precision@K (Exp-2, Table 3)");
  cmd->add_option("series", o->files, "series.csv files from `lpsim trajectory` (one per seed)")->required();
  cmd->add_option("--signal", o->signal, "the leading column (default kappa_softmax_max)");
  cmd->add_option("--target", o->targets, "the led columns (default r_block_final and loss)");
  cmd->add_option("--max-lag", o->lag.max_lag, "lags scanned: -max..max steps (default 60)");
  cmd->add_option("--permutations", o->lag.permutations, "surrogates of the test (default 999)");
  cmd->add_option("--null", o->null, "phase (default: phase-randomised surrogates, valid for autocorrelated series) "
                                     "or shuffle (the paper's time-point permutation; too liberal on smooth series)")
      ->check(CLI::IsMember({"phase", "shuffle"}));
  cmd->add_option("--window", o->spike.window, "rolling window of the spike z-scores (default 20)");
  cmd->add_option("--horizon", o->spike.horizon, "steps an alarm may precede its spike (default 40)");
  cmd->add_option("--threshold", o->spike.threshold, "rolling z above which the target spikes (default 1.5)");
  cmd->add_option("--k-fraction", o->spike.k_fraction, "K = ceil(fraction * T) alarms (default 0.1)");
  cmd->add_flag("--detrend", o->detrend, "remove each series' least-squares line first (trends alone correlate)");
  cmd->add_option("--out,-o", o->out, "table CSV (default: forecast.csv beside the first series' study)");
  cmd->add_option("--curves", o->curves, "correlation-by-lag CSV (default: --out with _curves.csv)");
  cmd->callback([o] {
    o->lag.null = o->null == "shuffle" ? LeadLagNull::shuffle : LeadLagNull::phase;
    namespace fs = std::filesystem;
    if (o->out.empty())
      o->out = (fs::path(o->files[0]).parent_path().parent_path().parent_path() / "forecast.csv").string();
    if (o->curves.empty()) o->curves = (fs::path(o->out).replace_extension("").string() + "_curves.csv");
    check_writable(o->out), check_writable(o->curves);  // before the permutation tests
    for (const std::string& f : o->files) {  // every file and column checked before any output
      const CsvTable t = read_csv(f);
      t.column("step"), t.column(o->signal);
      for (const std::string& target : o->targets) t.column(target);
    }
    std::string table = "series,target,signal,detrend,null,steps,best_lag,best_corr,p_value,k,hits,precision_at_k,base_rate\n";
    const std::string null_name = o->lag.null == LeadLagNull::phase ? "phase" : "shuffle";
    std::string curves = "series,target,lag,corr\n";
    for (const std::string& target : o->targets) {
      fmt::print("\n{} leads {}? (lag > 0: the signal leads; {} permutations, K = ceil({} T), horizon {}, window {}, z > {})\n",
                 o->signal, target, o->lag.permutations, o->spike.k_fraction, o->spike.horizon, o->spike.window,
                 o->spike.threshold);
      fmt::print("{:<22} {:>6} {:>9} {:>9} {:>9} {:>8} {:>9}\n", "series", "steps", "best lag", "best corr", "p-value",
                 "Prec@K", "base rate");
      std::vector<double> lags, corrs, precs, bases;
      for (std::size_t i = 0; i < o->files.size(); ++i) {
        const CsvTable t = read_csv(o->files[i]);
        std::vector<double> step = t.numbers("step"), x = t.numbers(o->signal), y = t.numbers(target);
        std::vector<std::size_t> order(step.size());
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](auto a, auto b) { return step[a] < step[b]; });
        std::vector<double> xs, ys;
        for (auto k : order) xs.push_back(x[k]), ys.push_back(y[k]);
        if (o->detrend) xs = detrended(xs), ys = detrended(ys);
        const std::string label = label_of(o->files[i], i);
        const auto bad = std::find_if(order.begin(), order.end(), [&](auto k) { return !std::isfinite(x[k]) || !std::isfinite(y[k]); });
        if (bad != order.end()) {  // a finding, reported, never silently dropped
          fmt::print("{:<22} non-finite {} or {} at step {}: not analysed\n", label, o->signal, target, step[*bad]);
          continue;
        }
        const LeadLag r = lead_lag(xs, ys, o->lag);
        const SpikePrecision s = spike_precision(xs, ys, o->spike);
        fmt::print("{:<22} {:>6} {:>9} {:>9.3f} {:>9.3f} {:>8.3f} {:>9.3f}\n", label, xs.size(), r.best_lag, r.best_corr,
                   r.p_value, s.precision, s.base_rate);
        table += fmt::format("{},{},{},{},{},{},{},{:.6f},{:.6f},{},{},{:.6f},{:.6f}\n", label, target, o->signal,
                             o->detrend ? "linear" : "none", null_name, xs.size(), r.best_lag, r.best_corr, r.p_value, s.k, s.hits,
                             s.precision, s.base_rate);
        for (int lag = -o->lag.max_lag; lag <= o->lag.max_lag; ++lag)
          curves += fmt::format("{},{},{},{:.6f}\n", label, target, lag, r.corr[lag + o->lag.max_lag]);
        lags.push_back(r.best_lag), corrs.push_back(r.best_corr), precs.push_back(s.precision), bases.push_back(s.base_rate);
      }
      if (!lags.empty()) {
        auto mean = [](const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size()); };
        fmt::print("{:<22} {:>6} {:>9.1f} {:>9.3f} {:>9} {:>8.3f} {:>9.3f}\n", "mean", "", mean(lags), mean(corrs), "-",
                   mean(precs), mean(bases));
        table += fmt::format("mean,{},{},{},{},,{:.2f},{:.6f},,,,{:.6f},{:.6f}\n", target, o->signal,
                             o->detrend ? "linear" : "none", null_name, mean(lags), mean(corrs), mean(precs), mean(bases));
      }
    }
    write_atomically(o->out, table);
    write_atomically(o->curves, curves);
    fmt::print("\nwrote {} and {}\n", o->out, o->curves);
  });
}

}  // namespace lpsim::cli
