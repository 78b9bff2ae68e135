#pragma once
// A sweep file (sweeps/*.toml) and its expansion into work.
//
//   [sweep]
//   model = "models/tiny-vit.toml"   # the base model; axes override its keys
//   seeds = 3                        # 0, 1, 2 (or a list)
//   batches = 1                      # input batches per seed
//   reference = "mpfr"               # or "fp64" (checked against MPFR on the first unit), or "dd" (double-double,
//                                    # its sampled MPFR check on the first unit)
//   ref_bits = 128
//   rows = "all"                     # taps.csv: "all" taps, "block" outputs, or the "final" block only
//   diagnostics = true               # arXiv 2510.21770's diagnostics and predictor per layer
//   residual_gains = false           # + residual branch gains rho_l and Theorem 3's downstream amplification
//   [axes]
//   plan = ["fp32", "autocast-bf16"] # or format = [...], policy = [...]
//   "model.width" = [64, 128]        # any model.*, init.* or input.* key
//   [plot]
//   x = "u"  y = "r_block_p95"  color = "plan"  x_scale = "log"  y_scale = "log"   (summary.csv columns)
//
// A unit is one model variant, seed and batch: its reference is computed once and every plan runs against it.
// Units are numbered in a fixed order (axes in file order, first axis slowest, then seed, then batch), so results
// are the same whatever the thread count, shard or interruption.
#include <cstdint>
#include <string>
#include <vector>

#include "lpsim/model/model_config.hpp"
#include "lpsim/model/plan.hpp"

namespace lpsim {

struct AxisValue {
  std::string text;  // as written, for CSV columns ("128", "autocast-bf16")
  std::string toml;  // as a TOML value, for model overrides ("128", "\"rmsnorm\"")
};

struct Axis {
  std::string key;   // plan | format | policy | model.<k> | init.<k> | input.<k>
  std::vector<AxisValue> values;
  int line = 0;
};

struct SweepConfig {
  std::string name;        // results/<name>/
  std::string file;
  std::string text;        // the file's contents, for the manifest
  std::string model_file;
  std::vector<std::uint64_t> seeds;
  int batches = 1;
  std::string reference = "mpfr";
  int reference_bits = 128;
  std::string rows = "all";  // taps.csv rows: all taps, block taps only, or the final block only
  bool diagnostics = true;   // arXiv 2510.21770's per-layer diagnostics and predictor in every row (diag/diagnostics.hpp)
  bool residual_gains = false;  // + rho_l of both branches by JVP/VJP power iteration (diag/residual_gain.hpp; costly)
  std::vector<Axis> axes;  // plan-like axes (plan, format, policy) and model axes, in file order
  // [plot]: the scatter of summary.csv and its regression (stats.csv).
  std::string plot_x = "u", plot_y = "r_block_p95", plot_color = "plan";
  bool log_x = true, log_y = true;
  bool aggregate = false;  // plot and regress the mean and median of y at each x
  std::vector<std::string> stats_x;  // more predictors for stats.csv (one regression table per x, as arXiv 2510.21770's Table 2)
  std::vector<std::string> extra_plots;  // more x columns, each plotted as scatter_<x>.png/svg
};

// A precision setting of a unit: one value of each plan-like axis.
struct PlanChoice {
  std::vector<std::string> values;  // one per plan-like axis, in axis order
  PrecisionPlan plan;
};

struct Unit {
  int index = 0;
  std::vector<std::string> model_values;  // one per model axis, in axis order
  ModelConfig model;
  std::uint64_t seed = 0;
  int batch = 0;
};

struct SweepPlan {
  std::vector<std::string> model_axes, plan_axes;  // axis keys, in order
  std::vector<PlanChoice> plans;                    // every combination of the plan-like axes
  std::vector<Unit> units;
};

// Reads and checks a sweep file; throws ConfigError naming file, line and key. Nothing runs before this passes.
SweepConfig load_sweep(const std::string& path);
SweepConfig parse_sweep(std::string_view text, const std::string& file);
// The largest grid expand() builds: a unit holds its model config (about 1 KB), so a million units is a GB of
// configuration before any work; larger grids are split into several sweeps.
inline constexpr double kMaxSweepUnits = 1e6, kMaxSweepPlans = 1e4;
// Expands the grid, building and validating every model and plan (errors name the sweep file, line and axis).
// Refuses a grid over kMaxSweepUnits units or kMaxSweepPlans plans before expanding it, and a model the
// diagnostics are not defined for when sweep.diagnostics is on.
SweepPlan expand(const SweepConfig& sweep);

}  // namespace lpsim
