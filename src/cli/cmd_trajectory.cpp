// `lpsim trajectory RUN_DIR`: arXiv 2510.21770's Exp-2 measurement over a training run (scripts/train_digits.py): every
// checkpoint's emulated forward under a plan against float64 on the probe batch, r per layer and tap, and every
// diagnostic, into RUN_DIR/trajectory.csv (per layer) and RUN_DIR/series.csv (per step, what `lpsim forecast` reads).
// Resumes where it stopped. `lpsim checkpoint-forward`: one checkpoint's block outputs on the probe batch (and the
// weights as lpsim loaded them), for the peer check against PyTorch (tests/python/check_checkpoint.py).
#include <fmt/format.h>

#include <filesystem>

#include "cli/commands.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/model_config.hpp"
#include "lpsim/model/safetensors.hpp"
#include "lpsim/trajectory/trajectory.hpp"

namespace lpsim::cli {

void add_trajectory_command(CLI::App& app) {
  struct Options {
    std::string run, model, probe, plan = "autocast-fp16";
    TrajectoryOptions t;
    bool no_diag = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("trajectory", "forward error and diagnostics over a training run's checkpoints (Exp-2)");
  cmd->add_option("run", o->run, "run directory (ckpt/step_N.safetensors, log.csv) from scripts/train_digits.py")->required();
  cmd->add_option("--model,-m", o->model, "model TOML of the checkpoints (default RUN/../../model.toml)");
  cmd->add_option("--probe", o->probe, "probe batch safetensors (default RUN/../../probe.safetensors)");
  cmd->add_option("--plan,-p", o->plan, "precision plan of the emulated forward (default autocast-fp16)");
  cmd->add_option("--from", o->t.first_step, "first step to evaluate");
  cmd->add_option("--every", o->t.every, "evaluate every n-th step");
  cmd->add_flag("--no-diagnostics", o->no_diag, "forward error only (faster)");
  cmd->callback([o] {
    namespace fs = std::filesystem;
    const fs::path study = fs::path(o->run).parent_path().parent_path();
    const ModelConfig cfg = load_model_config(o->model.empty() ? (study / "model.toml").string() : o->model);
    const auto probe = read_probe(o->probe.empty() ? (study / "probe.safetensors").string() : o->probe, cfg);
    o->t.diagnostics = !o->no_diag;
    const int n = run_trajectory(o->run, cfg, probe, load_plan(o->plan), o->t);
    fmt::print("trajectory: {} steps in {}/series.csv and trajectory.csv\n", n, o->run);
  });
}

void add_checkpoint_forward_command(CLI::App& app) {
  struct Options {
    std::string checkpoint, model, probe, plan = "fp32", out, weights_out;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("checkpoint-forward", "one checkpoint's block outputs on a probe batch (peer checks)");
  cmd->add_option("checkpoint", o->checkpoint, "safetensors checkpoint")->required();
  cmd->add_option("--model,-m", o->model, "model TOML")->required();
  cmd->add_option("--probe", o->probe, "probe batch safetensors")->required();
  cmd->add_option("--plan,-p", o->plan, "precision plan (default fp32)");
  cmd->add_option("--out,-o", o->out, "block outputs: tensor block.<l>, [n, tokens, width] in F64")->required();
  cmd->add_option("--weights-out", o->weights_out, "the weights as lpsim loaded them (F32)");
  cmd->callback([o] {
    const ModelConfig cfg = load_model_config(o->model);
    const Weights<double> w = load_safetensors_weights(o->checkpoint, cfg);
    const auto probe = read_probe(o->probe, cfg);
    const PrecisionPlan plan = load_plan(o->plan);
    std::map<std::string, Tensor> out;
    for (int l = 0; l < cfg.depth; ++l)
      out["block." + std::to_string(l)] = Tensor{"F64", {std::int64_t(probe.size()), cfg.tokens, cfg.width}, {}};
    for (const auto& in : probe) {
      EmulatedBackend be(plan);
      forward<EmulatedBackend, double>(be, cfg, w, in, [&](int l, Tap t, const Matrix<double>& m) {
        if (t == Tap::block) out["block." + std::to_string(l)].values.insert(out["block." + std::to_string(l)].values.end(),
                                                                             m.data.begin(), m.data.end());
      });
    }
    write_safetensors(o->out, out);
    if (!o->weights_out.empty()) save_safetensors_weights(o->weights_out, cfg, w, "F32");
    fmt::print("checkpoint-forward: {} probe inputs, {} blocks -> {}\n", probe.size(), cfg.depth, o->out);
  });
}

}  // namespace lpsim::cli
