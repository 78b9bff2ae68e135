// `lpsim fp8study`: arXiv 2602.18851's overflow scenario (diag/fp8_study.hpp): fp8 logits under current, delayed and
// geometry-aware scaling over a batch sequence with transient outliers.
//   lpsim fp8study -m models/encoder.toml --batches 40 --outliers 10,25
#include <fmt/format.h>

#include <filesystem>
#include <map>

#include "cli/commands.hpp"
#include "lpsim/diag/fp8_study.hpp"
#include "lpsim/stats/regression.hpp"
#include "util/atomic_file.hpp"

namespace lpsim::cli {

void add_fp8study_command(CLI::App& app) {
  auto o = std::make_shared<Fp8StudyOptions>();
  auto model = std::make_shared<std::string>(), output = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("fp8study", "fp8 logits: current vs delayed vs geometry-aware scaling (arXiv 2602.18851)");
  cmd->add_option("--model,-m", *model, "model file (embedding none, pre-LN)")->required();
  cmd->add_option("--batches", o->batches, "input batches (default 40)");
  cmd->add_option("--outliers", o->outliers, "batches with an outlier token (default 10,25)")->delimiter(',');
  cmd->add_option("--outlier-scale", o->outlier_scale, "outlier magnitude in units of the input scale (default 8)");
  cmd->add_option("--seed,-s", o->seed, "seed of weights and inputs");
  cmd->add_option("--plan,-p", o->plan, "plan of everything but the logits (default autocast-bf16)");
  cmd->add_option("--logit-format", o->logit_format, "format of the stored logits (default e4m3; e4m3:sat saturates)");
  cmd->add_option("--output,-o", *output, "CSV path (default results/fp8study/<model>_s<seed>.csv)");
  cmd->callback([=] {
    const ModelConfig cfg = load_model_config(*model);
    const std::string out = !output->empty() ? *output : fmt::format("results/fp8study/{}_s{}.csv", cfg.name, o->seed);
    check_writable(out);  // before the study, not after
    const std::vector<Fp8StudyRow> rows = run_fp8_study(cfg, *o);
    std::string csv = "batch,outlier,scheme,overflows,saturations,nonfinite,logit_amax,logit_bound,r_final\n";
    struct Total {
      long overflows = 0, saturations = 0, broken = 0;
      std::vector<double> clean, spiky;
    };
    std::map<std::string, Total> totals;
    for (const auto& r : rows) {
      csv += fmt::format("{},{},{},{},{},{},{:.6e},{:.6e},{:.6e}\n", r.batch, r.outlier, r.scheme, r.overflows,
                         r.saturations, r.nonfinite, r.logit_amax, r.logit_bound, r.r_final);
      Total& t = totals[r.scheme];
      t.overflows += r.overflows, t.saturations += r.saturations, t.broken += r.nonfinite > 0;
      (r.outlier ? t.spiky : t.clean).push_back(r.r_final);
    }
    fmt::print("fp8 logits ({}) in {} batches, outliers at {}; logit bound from the weights {:.3g} (rank-aware, "
               "P >= 0.999: {:.3g}), largest observed logit {:.3g}\n", o->logit_format, o->batches,
               fmt::join(o->outliers, ","), rows.front().logit_bound, rows[3].logit_bound,
               std::max_element(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.logit_amax < b.logit_amax; })->logit_amax);
    fmt::print("{:<11} {:>9} {:>11} {:>15} {:>17} {:>17}\n", "scheme", "overflows", "saturations", "batches Inf/NaN",
               "median r (clean)", "median r (outlier)");
    for (const char* s : {"current", "delayed", "geometry", "rank", "mxfp8-e4m3", "fp8-1x128"}) {
      const Total& t = totals[s];
      fmt::print("{:<11} {:>9} {:>11} {:>15} {:>17.3e} {:>17.3e}\n", s, t.overflows, t.saturations, t.broken,
                 quantile(t.clean, 0.5), quantile(t.spiky, 0.5));
    }
    write_atomically(out, csv);
    fmt::print("wrote {}\n", out);
  });
}

}  // namespace lpsim::cli
