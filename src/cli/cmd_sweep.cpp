// `lpsim sweep FILE`: run a precision sweep (resumable, shardable), then its regression table and plot.
// `lpsim merge FILE`: assemble the final files from the parts that sharded runs wrote.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <charconv>
#include <cstdlib>
#include <omp.h>
#include <filesystem>

#include "cli/commands.hpp"
#include "cli/mpi_world.hpp"
#include "lpsim/config/config_error.hpp"
#include "lpsim/stats/regression_table.hpp"
#include "lpsim/sweep/runner.hpp"
#include "util/atomic_file.hpp"

namespace lpsim::cli {

namespace {

struct SweepCli {
  std::string file, results = "results", shard;
  int threads = 0;
  bool no_plot = false, quiet = false;
};

std::pair<int, int> parse_shard(const std::string& text) {
  // Read exactly: "1/2x" and "+1/2" are refused, not read as 1/2.
  int i = -1, n = 0;
  const std::size_t slash = text.find('/');
  const char* b = text.data();
  const char* e = b + text.size();
  const bool whole = slash != std::string::npos && std::from_chars(b, b + slash, i).ptr == b + slash && slash > 0 &&
                     std::from_chars(b + slash + 1, e, n).ptr == e && slash + 1 < text.size();
  if (!whole || n < 1 || i < 0 || i >= n)
    throw ConfigError(fmt::format("--shard '{}' must be i/N with 0 <= i < N (shards count from 0)", text));
  return {i, n};
}

// stats.csv and the scatter plot of a finished sweep.
void report(const SweepConfig& s, const std::string& dir, bool plot) {
  const CsvTable summary = read_csv(dir + "/summary.csv");
  RegressionRequest q{s.plot_x, s.plot_y, s.plot_color, s.log_x, s.log_y};
  q.aggregate = s.aggregate;
  if (std::find(summary.header.begin(), summary.header.end(), q.group) == summary.header.end()) q.group = "precision";
  std::string csv = regression_csv(summary, q), text = regression_text(summary, q);
  for (const std::string& x : s.stats_x) {  // one table per further predictor (arXiv 2510.21770's Table 2 rows)
    RegressionRequest more = q;
    more.x = x, more.group = "";
    const std::string c = regression_csv(summary, more);
    csv += c.substr(c.find('\n') + 1);
    text += regression_text(summary, more);
  }
  write_atomically(dir + "/stats.csv", csv);
  fmt::print("{}", text);
  if (!plot) return;
  const std::string script = std::string(LPSIM_SOURCE_DIR) + "/scripts/plot_sweep.py";
  struct Plot {
    std::string x, y, name;
    bool log_y;
  };
  std::vector<Plot> plots{{s.plot_x, s.plot_y, "scatter", s.log_y}};
  for (const std::string& x : s.extra_plots) plots.push_back({x, s.plot_y, "scatter_" + x, s.log_y});
  // A model with an LM head: the next-token metrics against the same x too (KL on a log axis, top-1 linear).
  for (const auto& [y, log_y] : {std::pair{"kl_mean", true}, std::pair{"top1_mean", false}}) {
    const auto column = std::find(summary.header.begin(), summary.header.end(), y);
    if (column == summary.header.end()) continue;
    const std::vector<double> v = summary.numbers(y);
    if (std::any_of(v.begin(), v.end(), [](double e) { return std::isfinite(e); }))
      plots.push_back({s.plot_x, y, std::string("scatter_") + y, log_y});
  }
  for (const Plot& p : plots) {
    const std::string command = fmt::format(
        "/usr/bin/python3 '{}' '{}' --x '{}' --y '{}' --color '{}' --xscale {} --yscale {}{}{} --name '{}'", script,
        dir, p.x, p.y, q.group, s.log_x ? "log" : "linear", p.log_y ? "log" : "linear",
        s.aggregate ? " --aggregate" : "", p.y == s.plot_y ? "" : " --no-fit", p.name);
    if (std::system(command.c_str()) != 0)
      fmt::print(stderr, "sweep: the plot was not made ({} failed); the CSV files are complete\n", command);
  }
}

void run_mpi(const SweepCli& c, const SweepConfig& s, const MpiWorld& w) {
  SweepOptions o;
  o.results_root = c.results;
  o.threads = c.threads > 0 ? c.threads : std::max(1, omp_get_num_procs() / w.size);
  o.progress = !c.quiet && w.rank == 0;
  o.shard = w.rank, o.shards = w.size;
  o.assemble = false;
  bool ok = true;
  std::string error;
  try {
    run_sweep(s, o);
  } catch (const std::exception& e) {
    ok = false, error = e.what();
  }
  if (!mpi_all(w, ok)) {
    if (!ok) throw std::runtime_error(fmt::format("rank {}: {}", w.rank, error));
    throw std::runtime_error(fmt::format("rank {}: another rank failed; its parts stay for a later run", w.rank));
  }
  if (w.rank != 0) return;
  const std::string dir = c.results + "/" + s.name;
  assemble_sweep(s, expand(s), dir);
  fmt::print("sweep {}: {} ranks\n", s.name, w.size);
  report(s, dir, !c.no_plot);
  fmt::print("wrote {}/taps.csv, summary.csv, stats.csv, manifest.json\n", dir);
}

void run(const SweepCli& c) {
  const SweepConfig s = load_sweep(c.file);
  if (const MpiWorld& w = mpi_world(); w.active && w.size > 1) {
    if (!c.shard.empty()) throw ConfigError("--shard cannot be combined with mpirun (each rank is a shard)");
    return run_mpi(c, s, w);
  }
  SweepOptions o;
  o.results_root = c.results;
  o.threads = c.threads;
  o.progress = !c.quiet;
  if (!c.shard.empty()) std::tie(o.shard, o.shards) = parse_shard(c.shard);
  const SweepOutcome r = run_sweep(s, o);
  fmt::print("sweep {}: {} units, {} run now, {} resumed from earlier runs{}\n", s.name, r.units, r.ran, r.skipped,
             o.shards > 1 ? fmt::format(" (shard {}/{})", o.shard, o.shards) : "");
  if (!r.complete) {
    fmt::print("parts are in {}/parts; when every shard has run: lpsim merge {}{}\n", r.directory, c.file,
               c.results == "results" ? "" : " --results " + c.results);
    return;
  }
  report(s, r.directory, !c.no_plot);
  fmt::print("wrote {}/taps.csv, summary.csv, stats.csv, manifest.json{}\n", r.directory,
             c.no_plot ? "" : ", scatter.png, scatter.svg");
}

void merge(const SweepCli& c) {
  const SweepConfig s = load_sweep(c.file);
  const std::string dir = c.results + "/" + s.name;
  assemble_sweep(s, expand(s), dir);
  report(s, dir, !c.no_plot);
  fmt::print("merged {}: taps.csv, summary.csv, stats.csv\n", dir);
}

}  // namespace

void add_sweep_command(CLI::App& app) {
  auto c = std::make_shared<SweepCli>();
  CLI::App* cmd = app.add_subcommand("sweep", "run a precision sweep from a file in sweeps/ (resumes where it stopped)");
  cmd->add_option("file", c->file, "sweep file (sweeps/*.toml)")->required();
  cmd->add_option("--results", c->results, "results root (default results/)");
  cmd->add_option("--shard", c->shard, "run one slice i/N of the units, 0 <= i < N (then lpsim merge)");
  cmd->add_option("--threads", c->threads, "OpenMP threads (results do not depend on it)");
  cmd->add_flag("--no-plot", c->no_plot, "skip the matplotlib plot");
  cmd->add_flag("--quiet", c->quiet, "no progress output");
  cmd->callback([c] { run(*c); });

  auto m = std::make_shared<SweepCli>();
  CLI::App* mcmd = app.add_subcommand("merge", "assemble a sharded sweep's final files from its parts");
  mcmd->add_option("file", m->file, "sweep file")->required();
  mcmd->add_option("--results", m->results, "results root (default results/)");
  mcmd->add_flag("--no-plot", m->no_plot, "skip the plot");
  mcmd->callback([m] { merge(*m); });
}

}  // namespace lpsim::cli
