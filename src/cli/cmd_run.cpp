// `lpsim run`: one forward of a model under a precision plan against the MPFR reference; a per-layer table on
// the terminal and the same rows as CSV.
//   lpsim run --model models/tiny-vit.toml --plan autocast-bf16 --seed 0
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/commands.hpp"
#include "util/atomic_file.hpp"
#include "util/read_text.hpp"
#include "lpsim/config/config_error.hpp"
#include "lpsim/diag/diagnostic_columns.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/plan.hpp"
#include "lpsim/reference/forward_error.hpp"

namespace lpsim::cli {

namespace {

struct RunOptions {
  std::string model, plan, output, input;
  StudyOptions study;
  bool no_check = false, show_plan = false, diagnostics = false;
};


std::string sci(double v) { return std::isfinite(v) ? fmt::format("{:.3e}", v) : fmt::format("{}", v); }

// The papers' diagnostics (docs/SOURCES.md) of every layer (docs/DIAGNOSTICS.md) on the same weights and input.
void print_diagnostics(const ModelConfig& cfg, const PrecisionPlan& plan, const StudyOptions& study) {
  const Weights<double> w = make_weights(cfg, study.seed);
  const std::vector<LayerDiagnostics> d = diagnose(cfg, w, make_input(cfg, study.seed, study.batch));
  const double eps_mach = 2 * plan.unit_roundoff();
  fmt::print("{:>5} {:>9} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>9}\n", "layer", "k_smax",
             "k_score", "k(V)", "||W_O||", "k_eff", "rho_ln1", "rho_ln2", "C_LN", "predictor", "x eps", "theta",
             "max|S|", "bound");
  for (const LayerDiagnostics& l : d) {
    const Predictor p = predictor(l, cfg, eps_mach);
    fmt::print("{:>5} {:>9.3g} {:>9.3g} {:>9.3g} {:>8.3g} {:>9.3g} {:>9.3g} {:>9.3g} {:>9.3g} {:>9.3g} {:>9.3g} {:>8.5f} "
               "{:>9.3g} {:>9.3g}\n",
               l.layer, l.kappa_softmax, l.kappa_score, l.kappa_v, l.wo_norm, l.kappa_eff, p.rho_ln1, p.rho_ln2, p.c_ln,
               p.combined, p.combined * eps_mach, l.theta_max, l.logit_max, l.logit_bound);
  }
  fmt::print("(eps_mach = {:.3g}; kappa_softmax exact, its 3-step power estimate is in sweeps' CSV)\n", eps_mach);
}

void run(const RunOptions& o) {
  ModelConfig cfg = load_model_config(o.model);
  if (!o.input.empty()) use_input_file(cfg, o.input);
  // --plan wins; otherwise the model file's own [plan]; otherwise fp32 (a model directory has no [plan]).
  const std::string text = std::filesystem::is_directory(o.model) ? "" : read_text(o.model, "model file");
  const PrecisionPlan plan = !o.plan.empty()             ? load_plan(o.plan)
                             : has_plan_table(text, o.model) ? parse_plan(text, o.model)
                                                         : plan_preset("fp32");
  if (o.show_plan) fmt::print("{}", describe(plan));
  const std::string out = !o.output.empty() ? o.output
                                            : fmt::format("results/run/{}_{}_s{}.csv", cfg.name, plan.name, o.study.seed);
  check_writable(out);  // before the forward and its reference, not after
  if (o.diagnostics) check_diagnosable(cfg);
  StudyOptions study = o.study;
  study.progress = true;  // the reference of a large model takes minutes: its layers with an ETA (--quiet: none)
  study.check_reference = !o.no_check;

  const StudyResult r = run_study(cfg, plan, study);
  const double u = plan.unit_roundoff();
  fmt::print("model {} ({}, width {}, {} heads, ffn {}, depth {}, {} tokens, {}-{}, {})  plan {}  seed {}\n",
             cfg.name, cfg.arch, cfg.width, cfg.heads, cfg.ffn, cfg.depth, cfg.tokens,
             position_name(cfg.position), norm_name(cfg.norm), activation_name(cfg.activation),
             plan.name, study.seed);
  fmt::print("{:>5} {:<5} {:>10} {:>8} {:>10} {:>10} {:>10} {:>10} {:>7} {:>6} {:>6}\n", "layer", "tap", "rel_fro",
             "/u", "max_rel", "median", "mean", "p95", "nonfin", "ovf", "sat");
  long nonfinite = 0;
  for (const TapError& t : r.taps) {
    nonfinite += t.nonfinite;
    fmt::print("{:>5} {:<5} {:>10} {:>8} {:>10} {:>10} {:>10} {:>10} {:>7} {:>6} {:>6}\n", t.layer, tap_name(t.tap),
               sci(t.rel_fro), std::isfinite(t.rel_fro) ? fmt::format("{:.1f}", t.rel_fro / u) : "-", sci(t.max_rel),
               sci(t.median_rel), sci(t.mean_rel), sci(t.p95_rel), t.nonfinite, t.overflows, t.saturations);
  }
  for (const TapError& t : r.taps)
    if (t.tap == Tap::logits)
      fmt::print("logits: KL(p_ref || p) mean {} max {}, top-1 agreement {:.4f}, largest |logit difference| {}\n",
                 sci(t.kl_mean), sci(t.kl_max), t.top1, sci(t.logit_max_abs));
  const ReferenceCheck& c = r.reference;
  const SampledCheck& sc = r.sampled;
  if (c.kind == "dd" && c.check_bits)
    fmt::print("reference: double-double (106 bits); MPFR at {} bits on {} GEMM entries, {} norm rows, {} softmax rows, "
               "{} activations: local error {:.2e} (GEMM {:.1e}, norm {:.1e}, softmax {:.1e}, activation {:.1e}); "
               "forward gain {:.3g}: estimated error {:.2e} ({})\n",
               sc.bits, sc.gemm_samples, sc.norm_samples, sc.softmax_samples, sc.activation_samples, c.local,
               sc.gemm_error, sc.norm_error, sc.softmax_error, sc.activation_error, c.amplification, c.fro_rel,
               c.adequate ? "adequate: below 1% of the smallest measured error" : "NOT adequate: use --reference mpfr");
  else if (c.check_bits)
    fmt::print("reference: {} at {} bits; against {} bits: largest componentwise difference {:.2e}, Frobenius {:.2e} ({})\n",
               c.kind, c.bits, c.check_bits, c.max_rel, c.fro_rel,
               c.adequate ? "adequate: below 1% of the smallest measured error" : "NOT adequate: raise --ref-bits or use mpfr");
  else
    fmt::print("reference: {} at {} bits (not checked)\n", c.kind, c.bits);
  if (o.diagnostics) print_diagnostics(cfg, plan, study);
  fmt::print("time: emulated {:.3f} s, reference {:.3f} s, check {:.3f} s; u = {:.3e} (GEMM inputs)\n",
             r.emulated_seconds, r.reference_seconds, r.check_seconds, u);
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);  // ru_maxrss: KiB on Linux
  fmt::print("memory: estimated {} before the run; peak resident {:.2f} GB\n", r.memory.describe(),
             double(usage.ru_maxrss) * 1024 / 1e9);
  if (nonfinite || r.events.overflows)
    fmt::print("finding: the emulated run produced Inf/NaN ({} non-finite tap entries, {} overflows in all)\n", nonfinite,
               r.events.overflows);

  for (const TapError& t : r.taps)  // router decisions that differ from the reference's are findings
    if (t.tap == Tap::ffn && t.route_flip > 0)
      fmt::print("finding: layer {}: the router sent {:.1f}% of the tokens to other experts than the reference's; their "
                 "rows' error {:.3e}, the other tokens' {:.3e}\n", t.layer, 100 * t.route_flip, t.flipped_rel_fro,
                 t.kept_rel_fro);

  // The sweeps' schema: tap errors, then the layer's diagnostics (nan without --diagnostics).
  const std::vector<LayerDiagnostics> diag =
      o.diagnostics ? diagnose(cfg, make_weights(cfg, study.seed), make_input(cfg, study.seed, study.batch))
                    : std::vector<LayerDiagnostics>{};
  std::string csv = tap_csv_header() + diagnostic_header() + "\n";
  for (const TapError& t : r.taps) csv += tap_csv_row(cfg, plan, study, t) + diagnostic_cells(diag, cfg, plan, t.layer) + "\n";
  write_atomically(out, csv);  // never a half-written file under the final name, never a device replaced
  fmt::print("wrote {}\n", out);
}

}  // namespace

void add_run_command(CLI::App& app, std::function<void(EmulatedBackend&)> attach) {
  auto o = std::make_shared<RunOptions>();
  o->study.on_backend = std::move(attach);
  CLI::App* cmd = app.add_subcommand("run", "one forward under a precision plan against the MPFR reference, per layer");
  cmd->add_option("--model,-m", o->model, "model file (models/*.toml) or a Hugging Face model directory")->required();
  cmd->add_option("--input,-i", o->input, "input file: token ids (whitespace separated) or image values (channel, row, column)");
  cmd->add_option("--plan,-p", o->plan, "preset (fp64, fp32, autocast-fp16, autocast-bf16, pure-fp16, pure-bf16, "
                                        "fp8-e4m3, mxfp8, mxfp4, nvfp4, fp8-deepseek; +flash for sdpa's attention "
                                        "kernel: autocast-bf16+flash) or a TOML file with a [plan] table; default: "
                                        "the model file's [plan], else fp32");
  cmd->add_option("--seed,-s", o->study.seed, "seed of weights, inputs and stochastic rounding");
  cmd->add_option("--batch", o->study.batch, "input batch number");
  o->study.reference = "auto";
  cmd->add_option("--reference", o->study.reference,
                  "auto (default: mpfr for small models, else dd; docs/REFERENCE.md), mpfr, dd (double-double with a "
                  "sampled MPFR check) or fp64 (checked against MPFR)");
  cmd->add_option("--ref-bits", o->study.reference_bits, "MPFR precision of the reference (default 128)");
  cmd->add_flag("--no-check", o->no_check, "skip the reference's convergence check");
  cmd->add_flag("--show-plan", o->show_plan, "print what the plan does for each operation class");
  cmd->add_flag("--diagnostics", o->diagnostics, "print the papers' per-layer diagnostics and the combined predictor, and write them to the CSV");
  cmd->add_option("--output,-o", o->output, "CSV path (default results/run/<model>_<plan>_s<seed>.csv)");
  cmd->callback([o] { run(*o); });
}

}  // namespace lpsim::cli
