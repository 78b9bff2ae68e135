// `lpsim bounds`: how well arXiv 2510.21770's local bounds hold on one model under one plan (diag/bounds.hpp).
//   lpsim bounds --model models/tiny-vit.toml --plan autocast-bf16 --seed 0
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "cli/commands.hpp"
#include "lpsim/config/config_error.hpp"
#include "lpsim/diag/bounds.hpp"
#include "lpsim/diag/depth_bound.hpp"
#include "lpsim/diag/diagnostics.hpp"
#include "lpsim/diag/residual_gain.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/stats/regression.hpp"
#include "util/atomic_file.hpp"

namespace lpsim::cli {

namespace {

struct BoundsCli {
  std::string model, plan = "autocast-bf16", output;
  std::uint64_t seed = 0;
  int batch = 0, ref_bits = 128;
  bool residual = false;
};

void run(const BoundsCli& o) {
  const ModelConfig cfg = load_model_config(o.model);
  const PrecisionPlan plan = load_plan(o.plan);
  check_diagnosable(cfg);  // before any work: the reason, not a crash after the references
  const std::string out = !o.output.empty() ? o.output : fmt::format("results/bounds/{}_{}_s{}.csv", cfg.name, plan.name, o.seed);
  check_writable(out);
  const BoundsReport r = check_local_bounds(cfg, plan, make_weights(cfg, o.seed), make_input(cfg, o.seed, o.batch), o.ref_bits);
  std::string csv = "model,plan,seed,check,layer,index,observed,bound,c_min,held,kappa_score,kappa_softmax,kappa_v,"
                    "sigma2,rho_ln,eps_dominated,eps_mach,bound_worst_case,held_worst_case,eps_mach_acc,bound_acc,held_acc\n";
  fmt::print("eps_mach: input convention {:.3g} (the plan's GEMM input format: bound, c_min, rho_LN and its regime), "
             "accumulator convention in the acc-bound columns\n", 2 * plan.unit_roundoff());
  fmt::print("Theorem 1 (attention of exact Q, K, V stored in the GEMM input format; unit constants)\n");
  fmt::print("{:>5} {:>4} {:>10} {:>10} {:>9} {:>8} {:>8} {:>9} {:>5} {:>10} {:>5} {:>10} {:>5}\n", "layer", "head",
             "observed", "bound", "c_min", "k_score", "k_smax", "k(V)", "held", "acc-bound", "held", "worst-case", "held");
  int held_wc = 0;
  std::vector<double> c1, c2;
  int held1 = 0, held2 = 0;
  for (const AttentionBound& b : r.attention) {
    fmt::print("{:>5} {:>4} {:>10.3e} {:>10.3e} {:>9.3g} {:>8.3g} {:>8.3g} {:>9.3g} {:>5} {:>10.3e} {:>5} {:>10.3e} {:>5}\n",
               b.layer, b.head, b.observed, b.bound, b.c_min, b.kappa_score, b.kappa_softmax, b.kappa_v,
               b.held ? "yes" : "NO", b.bound_acc, b.held_acc ? "yes" : "NO", b.bound_wc, b.held_wc ? "yes" : "NO");
    csv += fmt::format("{},{},{},theorem1,{},{},{:.6e},{:.6e},{:.6e},{},{:.6e},{:.6e},{:.6e},,,,{},{:.6e},{},{},{:.6e},{}\n",
                       cfg.name, plan.name, o.seed, b.layer, b.head, b.observed, b.bound, b.c_min, b.held, b.kappa_score,
                       b.kappa_softmax, b.kappa_v, b.eps_mach, b.bound_wc, b.held_wc, b.eps_mach_acc, b.bound_acc,
                       b.held_acc);
    held_wc += b.held_wc;
    c1.push_back(b.c_min), held1 += b.held;
  }
  fmt::print("Proposition 1 (normalisation of the exact input stored in the residual format; unit constants)\n");
  fmt::print("{:>5} {:>4} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>5} {:>10} {:>5} {:>10} {:>5}\n", "layer", "norm",
             "observed", "bound", "c_min", "sigma^2", "rho_LN", "regime", "held", "acc-bound", "held", "worst-case", "held");
  int held2_wc = 0;
  for (const NormBound& b : r.norms) {
    fmt::print("{:>5} {:>4} {:>10.3e} {:>10.3e} {:>9.3g} {:>10.3g} {:>10.3g} {:>9} {:>5} {:>10.3e} {:>5} {:>10.3e} {:>5}\n",
               b.layer, b.which, b.observed, b.bound, b.c_min, b.sigma2, b.rho_ln, b.dominated ? "eps-dom" : "normal",
               b.held ? "yes" : "NO", b.bound_acc, b.held_acc ? "yes" : "NO", b.bound_wc, b.held_wc ? "yes" : "NO");
    held2_wc += b.held_wc;
    csv += fmt::format("{},{},{},proposition1,{},{},{:.6e},{:.6e},{:.6e},{},,,,{:.6e},{:.6e},{},{},{:.6e},{},{},{:.6e},{}\n",
                       cfg.name, plan.name, o.seed, b.layer, b.which, b.observed, b.bound, b.c_min, b.held, b.sigma2,
                       b.rho_ln, b.dominated, b.eps_mach, b.bound_wc, b.held_wc, b.eps_mach_acc, b.bound_acc, b.held_acc);
    c2.push_back(b.c_min), held2 += b.held;
  }
  fmt::print("Theorem 1 held in {}/{} heads; smallest constant that makes it hold everywhere: {:.3g} (median {:.3g}); "
             "with the plan's worst-case constants it held in {}/{}\n",
             held1, c1.size(), c1.empty() ? 0.0 : *std::max_element(c1.begin(), c1.end()), quantile(c1, 0.5), held_wc,
             r.attention.size());
  fmt::print("Proposition 1 held in {}/{} norms; smallest constant: {:.3g} (median {:.3g}); the plan's first-order worst "
             "case held in {}/{}\n", held2, c2.size(), c2.empty() ? 0.0 : *std::max_element(c2.begin(), c2.end()),
             quantile(c2, 0.5), held2_wc, r.norms.size());
  if (o.residual) {
    // The reverse-mode tape holds about two nodes per multiply-add of a branch: refuse what would not fit.
    const double nodes = 4.0 * cfg.tokens * cfg.width * std::max(cfg.ffn, 3 * cfg.width + cfg.tokens);
    if (nodes > 1e8)
      throw ConfigError(fmt::format("--residual: the tape would hold ~{:.0e} nodes ({:.1f} GB); use a smaller model", nodes,
                                    nodes * 24 / 1e9));
    fmt::print("Theorem 2 (rho = ||J_f||_2 by power iteration with JVP/VJP; kappa(I + J_f) from dense Jacobians up to "
               "1024 inputs, by Lanczos with JVP/VJP beyond)\n");
    fmt::print("{:>5} {:>6} {:>9} {:>9} {:>10} {:>10} {:>5}\n", "layer", "branch", "rho", "rho_dense", "kappa", "bound",
               "held");
    int held = 0, total = 0;
    double product = 1;
    const std::vector<ResidualCheck> checks = residual_checks(cfg, make_weights(cfg, o.seed), make_input(cfg, o.seed, o.batch));
    for (const ResidualCheck& c : checks) {
      fmt::print("{:>5} {:>6} {:>9.4g} {:>9.4g} {:>10.4g} {:>10.4g} {:>5}\n", c.layer,
                 c.branch == Branch::attention ? "attn" : "ffn", c.rho, c.rho_dense, c.kappa, c.bound,
                 c.rho >= 1 ? "n/a" : std::isnan(c.kappa) ? "-" : c.held ? "yes" : "NO");
      csv += fmt::format("{},{},{},theorem2,{},{},{:.6e},{:.6e},{:.6e},{},,,,,{:.6e},,,,\n", cfg.name, plan.name, o.seed,
                         c.layer, c.branch == Branch::attention ? "attn" : "ffn", c.kappa, c.bound, c.kappa / c.bound,
                         c.held, c.rho);
      held += c.rho < 1 && !std::isnan(c.kappa) && c.held, total += 1;
      product *= c.bound;
    }
    fmt::print("Theorem 2 checked and held in {}/{} branches (rho >= 1: outside the theorem; '-': not computed); Corollary 1's product "
               "of bounds over the stack: {:.4g}\n", held, total, product);
    // Theorem 3: eps sum_l [kappa_eff + kappa_softmax (1 + c kappa_score) kappa(V) + C_LN] prod_{k > l} (1 + rho_k),
    // with c = 1, ||W_O|| folded in as kappa(W_O) inside kappa_eff, and each block's two residual maps as
    // (1 + rho_attn)(1 + rho_ffn); against the observed error of the final block (MPFR reference).
    const Weights<double> w = make_weights(cfg, o.seed);
    const std::vector<LayerDiagnostics> d = diagnose(cfg, w, make_input(cfg, o.seed, o.batch));
    const double eps = 2 * plan.unit_roundoff();
    double rhs = 0;
    for (int l = 0; l < cfg.depth; ++l) {
      const Predictor p = predictor(d[l], cfg, eps);
      double downstream = 1;
      for (const ResidualCheck& c : checks)
        if (c.layer > l) downstream *= 1 + c.rho;
      rhs += (d[l].kappa_eff + d[l].kappa_softmax * (1 + d[l].kappa_score) * d[l].kappa_v + p.c_ln) * downstream;
    }
    rhs *= eps;
    StudyOptions so;
    so.seed = o.seed, so.batch = o.batch, so.reference_bits = o.ref_bits, so.check_reference = false;
    const double observed = run_study(cfg, plan, so).taps.back().rel_fro;
    bool small_gain = true;
    for (const ResidualCheck& c : checks) small_gain = small_gain && c.rho < 1;
    fmt::print("Theorem 3: final block error {:.3e}, bound {:.3e} (unit constants) -> ratio {:.3g}, smallest constant "
               "{:.3g}; {}\n", observed, rhs, observed / rhs, observed / rhs,
               small_gain ? (observed <= rhs ? "held" : "FAILED") : "rho >= 1 somewhere: outside the theorem's assumption");
    csv += fmt::format("{},{},{},theorem3,{},,{:.6e},{:.6e},{:.6e},{},,,,,,,{},,\n", cfg.name, plan.name, o.seed, cfg.depth - 1,
                       observed, rhs, observed / rhs, observed <= rhs, eps);
    if (cfg.position == NormPosition::pre) {
      fmt::print("Depth bound (arXiv 2503.10251's mechanism, diag/depth_bound.hpp): E_0 prod_k alpha_k + sum_l local_l prod_(k>l) (1 + rho_attn,k)(1 + rho_ffn,k)\n");
      const std::vector<DepthBoundRow> rows = depth_bound(cfg, plan, w, make_input(cfg, o.seed, o.batch), o.ref_bits, &checks);
      if (!rows.empty()) fmt::print("embedding error E_0 / ||X_0||: {:.3e} (carried from the start)\n", rows[0].embedding);
      fmt::print("{:>5} {:>10} {:>8} {:>10} {:>10} {:>10} {:>9} {:>5}\n", "layer", "local", "alpha", "observed", "bound",
                 "alpha^L", "c_min", "held");
      for (const DepthBoundRow& d : rows) {
        fmt::print("{:>5} {:>10.3e} {:>8.4g} {:>10.3e} {:>10.3e} {:>10.3e} {:>9.3g} {:>5}\n", d.layer, d.local, d.alpha,
                   d.observed, d.bound, d.uniform, d.observed / d.bound, d.held ? "yes" : "NO");
        csv += fmt::format("{},{},{},depth002,{},,{:.6e},{:.6e},{:.6e},{},,,,,{:.6e},,{},,\n", cfg.name, plan.name, o.seed,
                           d.layer, d.observed, d.bound, d.observed / d.bound, d.held, d.alpha, eps);
      }
    }
  }
  write_atomically(out, csv);
  fmt::print("wrote {}\n", out);
}

}  // namespace

void add_bounds_command(CLI::App& app) {
  auto o = std::make_shared<BoundsCli>();
  CLI::App* cmd = app.add_subcommand(
      "bounds", "how tight arXiv 2510.21770's Theorems 1-3, Proposition 1 and arXiv 2503.10251's depth bound are on a real forward");
  cmd->add_option("--model,-m", o->model, "model file")->required();
  cmd->add_option("--plan,-p", o->plan, "plan preset or file (default autocast-bf16)");
  cmd->add_option("--seed,-s", o->seed, "seed of weights and inputs");
  cmd->add_option("--batch", o->batch, "input batch");
  cmd->add_option("--ref-bits", o->ref_bits, "MPFR precision of the exact side (default 128)");
  cmd->add_option("--output,-o", o->output, "CSV path (default results/bounds/<model>_<plan>_s<seed>.csv)");
  cmd->add_flag("--residual", o->residual, "also the residual gains rho_l, Theorems 2 and 3 and arXiv 2503.10251's depth bound (small models: a reverse-mode tape)");
  cmd->callback([o] { run(*o); });
}

}  // namespace lpsim::cli
