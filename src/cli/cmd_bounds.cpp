// `lpsim bounds`: how well seed 001's local bounds hold on one model under one plan (diag/bounds.hpp).
//   lpsim bounds --model models/tiny-vit.toml --plan autocast-bf16 --seed 0
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "cli/commands.hpp"
#include "lpsim/diag/bounds.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/stats/regression.hpp"
#include "sweep/atomic_file.hpp"

namespace lpsim::cli {

namespace {

struct BoundsCli {
  std::string model, plan = "autocast-bf16", output;
  std::uint64_t seed = 0;
  int batch = 0, ref_bits = 128;
};

void run(const BoundsCli& o) {
  const ModelConfig cfg = load_model_config(o.model);
  const PrecisionPlan plan = load_plan(o.plan);
  const BoundsReport r = check_local_bounds(cfg, plan, make_weights(cfg, o.seed), make_input(cfg, o.seed, o.batch), o.ref_bits);
  std::string csv = "model,plan,seed,check,layer,index,observed,bound,c_min,held,kappa_score,kappa_softmax,kappa_v,"
                    "sigma2,rho_ln,eps_dominated,eps_mach\n";
  fmt::print("Theorem 1 (attention of exact Q, K, V stored in the GEMM input format; unit constants)\n");
  fmt::print("{:>5} {:>4} {:>10} {:>10} {:>9} {:>8} {:>8} {:>9} {:>5}\n", "layer", "head", "observed", "bound", "c_min",
             "k_score", "k_smax", "k(V)", "held");
  std::vector<double> c1, c2;
  int held1 = 0, held2 = 0;
  for (const AttentionBound& b : r.attention) {
    fmt::print("{:>5} {:>4} {:>10.3e} {:>10.3e} {:>9.3g} {:>8.3g} {:>8.3g} {:>9.3g} {:>5}\n", b.layer, b.head, b.observed,
               b.bound, b.c_min, b.kappa_score, b.kappa_softmax, b.kappa_v, b.held ? "yes" : "NO");
    csv += fmt::format("{},{},{},theorem1,{},{},{:.6e},{:.6e},{:.6e},{},{:.6e},{:.6e},{:.6e},,,,{}\n", cfg.name, plan.name,
                       o.seed, b.layer, b.head, b.observed, b.bound, b.c_min, b.held, b.kappa_score, b.kappa_softmax,
                       b.kappa_v, b.eps_mach);
    c1.push_back(b.c_min), held1 += b.held;
  }
  fmt::print("Proposition 1 (normalisation of the exact input stored in the residual format; unit constants)\n");
  fmt::print("{:>5} {:>4} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>5}\n", "layer", "norm", "observed", "bound", "c_min",
             "sigma^2", "rho_LN", "regime", "held");
  for (const NormBound& b : r.norms) {
    fmt::print("{:>5} {:>4} {:>10.3e} {:>10.3e} {:>9.3g} {:>10.3g} {:>10.3g} {:>9} {:>5}\n", b.layer, b.which, b.observed,
               b.bound, b.c_min, b.sigma2, b.rho_ln, b.dominated ? "eps-dom" : "normal", b.held ? "yes" : "NO");
    csv += fmt::format("{},{},{},proposition1,{},{},{:.6e},{:.6e},{:.6e},{},,,,{:.6e},{:.6e},{},{}\n", cfg.name, plan.name,
                       o.seed, b.layer, b.which, b.observed, b.bound, b.c_min, b.held, b.sigma2, b.rho_ln, b.dominated,
                       b.eps_mach);
    c2.push_back(b.c_min), held2 += b.held;
  }
  fmt::print("Theorem 1 held in {}/{} heads; smallest constant that makes it hold everywhere: {:.3g} (median {:.3g})\n",
             held1, c1.size(), c1.empty() ? 0.0 : *std::max_element(c1.begin(), c1.end()), quantile(c1, 0.5));
  fmt::print("Proposition 1 held in {}/{} norms; smallest constant: {:.3g} (median {:.3g})\n", held2, c2.size(),
             c2.empty() ? 0.0 : *std::max_element(c2.begin(), c2.end()), quantile(c2, 0.5));
  const std::string out = !o.output.empty() ? o.output : fmt::format("results/bounds/{}_{}_s{}.csv", cfg.name, plan.name, o.seed);
  if (auto dir = std::filesystem::path(out).parent_path(); !dir.empty()) std::filesystem::create_directories(dir);
  write_atomically(out, csv);
  fmt::print("wrote {}\n", out);
}

}  // namespace

void add_bounds_command(CLI::App& app) {
  auto o = std::make_shared<BoundsCli>();
  CLI::App* cmd = app.add_subcommand("bounds", "how tight seed 001's Theorem 1 and Proposition 1 are on a real forward");
  cmd->add_option("--model,-m", o->model, "model file")->required();
  cmd->add_option("--plan,-p", o->plan, "plan preset or file (default autocast-bf16)");
  cmd->add_option("--seed,-s", o->seed, "seed of weights and inputs");
  cmd->add_option("--batch", o->batch, "input batch");
  cmd->add_option("--ref-bits", o->ref_bits, "MPFR precision of the exact side (default 128)");
  cmd->add_option("--output,-o", o->output, "CSV path (default results/bounds/<model>_<plan>_s<seed>.csv)");
  cmd->callback([o] { run(*o); });
}

}  // namespace lpsim::cli
