// `lpsim compare`: the main question in one command, "how much error do these plans add to my model?". Every plan
// runs the same weights and input against one reference; a table per plan (block error over layers, final norm
// and logits, KL, top-1, overflow events), taps.csv and summary.csv, and a plot of the block error against depth.
//   lpsim compare -m results/hf/models/llama -i results/hf/models/llama/input.txt -p autocast-bf16 -p fp8-e4m3
#include <fmt/format.h>

#include <cmath>
#include <numeric>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "cli/commands.hpp"
#include "lpsim/config/config_error.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/plan.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "lpsim/stats/regression.hpp"
#include "util/atomic_file.hpp"
#include "util/csv_field.hpp"

namespace lpsim::cli {

namespace {

struct CompareOptions {
  std::string model, input, output;
  std::vector<std::string> plans;
  StudyOptions study;
  bool no_check = false, no_plot = false;
};

// One plan's row of the table: the block outputs' error over layers, what follows the blocks, the events.
struct PlanSummary {
  double block_p50 = NAN, block_p95 = NAN, block_max = NAN, final_error = NAN, logits_error = NAN;
  double kl_mean = NAN, top1 = NAN;
  double route_flip = NAN, route_flip_max = NAN;  // over the MoE layers' ffn rows (nan for a dense model)
  long overflows = 0, saturations = 0, nonfinite = 0;
};

PlanSummary summarize(const StudyResult& r) {
  PlanSummary s;
  std::vector<double> blocks, flips;
  for (const TapError& t : r.taps) {
    if (t.tap == Tap::ffn && !std::isnan(t.route_flip)) flips.push_back(t.route_flip);
    if (t.tap == Tap::block) blocks.push_back(t.rel_fro);
    if (t.tap == Tap::final) s.final_error = t.rel_fro;
    if (t.tap == Tap::logits) s.logits_error = t.rel_fro, s.kl_mean = t.kl_mean, s.top1 = t.top1;
    s.overflows += t.overflows, s.saturations += t.saturations, s.nonfinite += t.nonfinite;
  }
  if (!flips.empty()) {
    s.route_flip = std::accumulate(flips.begin(), flips.end(), 0.0) / double(flips.size());
    s.route_flip_max = *std::max_element(flips.begin(), flips.end());
  }
  if (!blocks.empty()) {
    s.block_p50 = quantile(blocks, 0.5), s.block_p95 = quantile(blocks, 0.95);
    s.block_max = *std::max_element(blocks.begin(), blocks.end());
  }
  return s;
}

std::string cell(double v, const char* spec = "{:.3e}") {
  return std::isnan(v) ? "-" : fmt::format(fmt::runtime(spec), v);
}

void compare(const CompareOptions& o) {
  ModelConfig cfg = load_model_config(o.model);
  if (!o.input.empty()) use_input_file(cfg, o.input);
  std::vector<PrecisionPlan> plans;
  for (const std::string& p : o.plans) plans.push_back(load_plan(p));
  const std::string dir = !o.output.empty() ? o.output : fmt::format("results/compare/{}", cfg.name);
  check_writable(dir + "/summary.csv");  // before any work
  StudyOptions study = o.study;
  study.progress = true;
  study.check_reference = !o.no_check;
  const std::vector<StudyResult> results = compare_plans(cfg, plans, study);

  fmt::print("model {} ({}, width {}, {} heads, depth {}, {} tokens), seed {}; reference {} ({} bits){}\n", cfg.name,
             cfg.arch, cfg.width, cfg.heads, cfg.depth, cfg.tokens, study.seed, results.front().reference.kind,
             results.front().reference.bits,
             study.check_reference ? fmt::format(", checked: error {:.1e}", results.front().reference.fro_rel) : "");
  fmt::print("{:<22} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7} {:>8} {:>9} {:>9} {:>8}\n", "plan", "block p50",
             "block p95", "block max", "final", "logits", "KL mean", "top-1", "flips", "overflows", "saturated", "Inf/NaN");
  std::string summary = "model,plan,u,block_p50,block_p95,block_max,final,logits,kl_mean,top1,overflows,saturations,"
                        "nonfinite,reference,reference_adequate,route_flip_mean,route_flip_max\n";
  std::string taps = tap_csv_header() + "\n";
  for (std::size_t i = 0; i < plans.size(); ++i) {
    const PlanSummary s = summarize(results[i]);
    fmt::print("{:<22} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7} {:>8} {:>9} {:>9} {:>8}\n", plans[i].name,
               cell(s.block_p50), cell(s.block_p95), cell(s.block_max), cell(s.final_error), cell(s.logits_error),
               cell(s.kl_mean), cell(s.top1, "{:.4f}"), std::isnan(s.route_flip) ? "-" : fmt::format("{:.2f}%", 100 * s.route_flip),
               s.overflows, s.saturations, s.nonfinite);
    summary += fmt::format("{},{},{:.9e},{:.9e},{:.9e},{:.9e},{:.9e},{:.9e},{:.9e},{:.9e},{},{},{},{},{},{:.9e},{:.9e}\n",
                           csv_field(cfg.name), csv_field(plans[i].name), plans[i].unit_roundoff(), s.block_p50,
                           s.block_p95, s.block_max, s.final_error, s.logits_error, s.kl_mean, s.top1, s.overflows,
                           s.saturations, s.nonfinite, results[i].reference.kind, results[i].reference.adequate,
                           s.route_flip, s.route_flip_max);
    for (const TapError& t : results[i].taps) taps += tap_csv_row(cfg, plans[i], study, t) + "\n";
    if (!results[i].reference.adequate)
      fmt::print("  warning: the reference is not adequate for {} (its error is not below 1% of the plan's)\n",
                 plans[i].name);
    if (s.nonfinite || s.overflows)
      fmt::print("  finding: {} produced Inf/NaN ({} non-finite tap entries, {} overflows)\n", plans[i].name,
                 s.nonfinite, s.overflows);
  }
  fmt::print("block: ||E||_F/||X||_F of each block's output over the {} layers; final: after the final norm; logits: "
             "the LM head's output with KL(p_ref || p) and top-1 agreement over tokens{}\n", cfg.depth,
             cfg.experts > 0 ? "; flips: the tokens a layer's router sent to other experts than the reference's, mean "
                               "over the MoE layers" : "");
  write_atomically(dir + "/taps.csv", taps);
  write_atomically(dir + "/summary.csv", summary);
  fmt::print("wrote {}/taps.csv, summary.csv\n", dir);
  if (o.no_plot) return;
  const std::string script = std::string(LPSIM_SOURCE_DIR) + "/scripts/plot_compare.py";
  if (dir.find('\'') != std::string::npos) return;
  const std::string command = fmt::format("/usr/bin/python3 '{}' '{}'", script, dir);
  std::fflush(stdout);
  if (std::system(command.c_str()) != 0)
    fmt::print(stderr, "compare: the plot was not made ({} failed); the CSV files are complete\n", command);
}

}  // namespace

void add_compare_command(CLI::App& app) {
  auto o = std::make_shared<CompareOptions>();
  CLI::App* cmd = app.add_subcommand("compare", "how much error each plan adds to a model: one reference, a table "
                                                "per plan, CSV and a plot of the error against depth");
  cmd->add_option("--model,-m", o->model, "model file (models/*.toml) or a Hugging Face model directory")->required();
  cmd->add_option("--plan,-p", o->plans, "plans to compare (presets or TOML files; repeat -p)")->required();
  cmd->add_option("--input,-i", o->input, "input file: token ids or image values");
  cmd->add_option("--seed,-s", o->study.seed, "seed of weights, inputs and stochastic rounding");
  o->study.reference = "auto";
  cmd->add_option("--reference", o->study.reference, "auto (default), mpfr, dd or fp64 (docs/REFERENCE.md)");
  cmd->add_flag("--no-check", o->no_check, "skip the reference's own check");
  cmd->add_flag("--no-plot", o->no_plot, "skip the matplotlib plot");
  cmd->add_option("--output,-o", o->output, "folder for taps.csv, summary.csv and error_vs_depth.png "
                                            "(default results/compare/<model>)");
  cmd->callback([o] { compare(*o); });
}

}  // namespace lpsim::cli
