// `lpsim native-error [DIR]`: PyTorch's native GPU forwards (DIR/torch_forward.safetensors, written on the H100 by
// scripts/cuda_torch_forward.py) against the MPFR reference (observed), next to lpsim's emulated forward under the
// same plan (predicted: the plan's IEEE-sequential GEMMs, and the same plan with the GEMMs on the H100-fitted
// tensor-core model), the share of bit-identical values, and arXiv 2510.21770's combined predictor x eps_mach.
// Writes DIR/../native_error.csv; runs on any machine (no GPU).
#include <fmt/format.h>

#include <filesystem>

#include "cli/commands.hpp"
#include "lpsim/diag/diagnostics.hpp"
#include "lpsim/hw/native_runs.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "lpsim/stats/regression.hpp"
#include "util/atomic_file.hpp"

namespace lpsim::cli {

namespace {

// The plan with every fp16/bf16 GEMM on the tensor-core model fitted to the H100 (results/cuda/tcfit.csv).
PrecisionPlan on_tensor_cores(PrecisionPlan plan) {
  for (Op op : all_ops) {
    auto& g = plan[op].gemm;
    if (!g || g->tc.k || !g->acc) continue;
    const FormatSpec& in = g->input.spec;
    if (in == formats::fp16 || in == formats::bf16) {
      AccumPolicy tc = parse_policy(in == formats::fp16 ? "fp16-tc" : "bf16-tc");
      tc.output = g->output;
      g = tc;
    }
  }
  return plan;
}

Taps<double> as_taps(const NativeRun& r) {
  Taps<double> t;
  for (const auto& v : r.taps) {
    Matrix<double> m(r.tokens, r.width);
    std::copy(v.begin(), v.end(), m.data.begin());
    t.push_back(std::move(m));
  }
  return t;
}

}  // namespace

void add_native_error_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>("results/cuda/raw");
  auto bits = std::make_shared<int>(128);
  CLI::App* cmd = app.add_subcommand("native-error", "PyTorch's GPU forwards vs MPFR, next to lpsim's prediction (issue 7)");
  cmd->add_option("dir", *dir, "folder with torch_forward.safetensors (default results/cuda/raw)");
  cmd->add_option("--ref-bits", *bits, "MPFR reference precision (default 128)");
  cmd->callback([=] {
    const std::string path = (std::filesystem::path(*dir).parent_path() / "native_error.csv").string();
    check_writable(path);  // before the MPFR references, not after
    const std::vector<NativeRun> runs = native_runs_from(read_safetensors(*dir + "/torch_forward.safetensors"));
    std::string csv = "model,plan,seed,layer,tap,observed_rel_fro,predicted_rel_fro,predicted_tc_rel_fro,"
                      "identical_tc,max_ulp_tc,combined_eps\n";
    fmt::print("{:<24} {:<14} {:>12} {:>12} {:>12} {:>10}  (final block, ||E||_F/||X||_F)\n", "model", "plan",
               "observed", "predicted", "pred. (tc)", "identical");
    std::map<std::string, Taps<Real>> references;
    std::vector<double> obs, pred;
    set_reference_bits(*bits);
    for (const NativeRun& r : runs) {
      const ModelConfig cfg = load_model_config(r.model_file);
      const Weights<double> w = make_weights(cfg, r.seed);
      const ModelInput<double> in = make_input(cfg, r.seed);
      const std::string id = fmt::format("{}|{}", r.model_file, r.seed);
      if (!references.count(id)) references[id] = reference_taps(0, cfg, w, in);
      const Taps<Real>& ref = references[id];
      const PrecisionPlan plan = load_plan(r.plan);
      EmulatedBackend be(plan, r.seed), be_tc(on_tensor_cores(plan), r.seed);
      const Taps<double> emulated = emulated_taps(be, cfg, w, in), emulated_tc = emulated_taps(be_tc, cfg, w, in);
      const auto observed = tap_errors(cfg, as_taps(r), ref, {});
      const auto predicted = tap_errors(cfg, emulated, ref, {}), predicted_tc = tap_errors(cfg, emulated_tc, ref, {});
      const std::vector<LayerDiagnostics> diag = diagnose(cfg, w, in);
      const double eps_mach = 2 * plan.unit_roundoff();
      for (std::size_t t = 0; t < r.taps.size(); ++t) {
        const BitMatch m = compare_bits(r.taps[t], emulated_tc[t].data);
        const int layer = int(t / 4);
        csv += fmt::format("{},{},{},{},{},{:.6e},{:.6e},{:.6e},{:.6f},{},{:.6e}\n", r.model_file, r.plan, r.seed, layer,
                           tap_name(all_taps[t % 4]), observed[t].rel_fro, predicted[t].rel_fro,
                           predicted_tc[t].rel_fro, m.rate(), m.max_ulp,
                           predictor(diag[layer], cfg, eps_mach).combined * eps_mach);
        if (observed[t].rel_fro > 0 && predicted_tc[t].rel_fro > 0 && std::isfinite(observed[t].rel_fro))
          obs.push_back(std::log10(observed[t].rel_fro)), pred.push_back(std::log10(predicted_tc[t].rel_fro));
      }
      const std::size_t last = r.taps.size() - 1;
      BitMatch all;
      for (std::size_t t = 0; t < r.taps.size(); ++t) all.merge(compare_bits(r.taps[t], emulated_tc[t].data));
      fmt::print("{:<24} {:<14} {:>12.3e} {:>12.3e} {:>12.3e} {:>9.1f}%\n", r.model_file, r.plan, observed[last].rel_fro,
                 predicted[last].rel_fro, predicted_tc[last].rel_fro, 100 * all.rate());
    }
    fmt::print("all taps: log10 observed vs log10 predicted (tc): Pearson {:.3f}, Spearman {:.3f}, n = {}\n",
               pearson(pred, obs), spearman(pred, obs), obs.size());
    write_atomically(path, csv);
    fmt::print("wrote {}\n", path);
  });
}

}  // namespace lpsim::cli
