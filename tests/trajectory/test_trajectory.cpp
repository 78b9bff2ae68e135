// lpsim trajectory's promises on checkpoints written by lpsim itself (no PyTorch needed): the same files at 1 and 2
// threads and after an interruption, the per-norm eps a checkpoint carries reaching the forward, rows that agree
// with a direct evaluation, and errors that name the bad file.
#include <gtest/gtest.h>
#include <omp.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "lpsim/config/config_error.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/safetensors.hpp"
#include "lpsim/stats/csv_table.hpp"
#include "lpsim/trajectory/trajectory.hpp"

namespace lpsim {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

ModelConfig vit() {  // a small patch-embedding encoder, like the digits model
  ModelConfig c;
  c.width = 16, c.heads = 2, c.ffn = 32, c.depth = 2, c.embedding = Embedding::patch, c.image = 4, c.patch = 2;
  c.channels = 1, c.tokens = 5;
  return c;
}

// A run directory with checkpoints at steps 1..n (weights of seed = step; step 3 with its own norm eps) and a log.
fs::path make_run(const fs::path& root, int n) {
  const ModelConfig c = vit();
  const fs::path run = root / "runs" / "fp16_seed0_control";
  fs::create_directories(run / "ckpt");
  std::ofstream log(run / "log.csv");
  log << "step,loss\n";
  for (int s = 1; s <= n; ++s) {
    Weights<double> w = make_weights(c, s);
    if (s == 3) w.layers[0].norm1.eps = 1e-2;
    save_safetensors_weights((run / "ckpt" / ("step_000" + std::to_string(s) + ".safetensors")).string(), c, w, "F32");
    log << s << "," << 2.5 - 0.1 * s << "\n";
  }
  Tensor images{"F32", {3, 1, 4, 4}, {}};
  for (int i = 0; i < 48; ++i) images.values.push_back(double(float(normal_at(7, 1, i))));
  write_safetensors((root / "probe.safetensors").string(), {{"images", images}});
  return run;
}

TEST(Trajectory, SameFilesAtAnyThreadCountAndAfterAnInterruption) {
  const fs::path root = fs::temp_directory_path() / "lpsim_trajectory_test";
  fs::remove_all(root);
  const ModelConfig c = vit();
  const PrecisionPlan plan = load_plan("autocast-fp16");
  std::string series[3], traj[3];
  for (int variant = 0; variant < 3; ++variant) {
    const fs::path run = make_run(root / std::to_string(variant), 5);
    const auto probe = read_probe((root / std::to_string(variant) / "probe.safetensors").string(), c);
    omp_set_num_threads(variant == 1 ? 2 : 1);
    if (variant == 2) {  // interrupted after steps >= 4, then resumed over everything
      EXPECT_EQ(run_trajectory(run.string(), c, probe, plan, {.first_step = 4, .quiet = true}), 2);
    }
    EXPECT_EQ(run_trajectory(run.string(), c, probe, plan, {.quiet = true}), 5);
    series[variant] = slurp(run / "series.csv"), traj[variant] = slurp(run / "trajectory.csv");
  }
  omp_set_num_threads(2);
  EXPECT_EQ(series[0], series[1]);
  EXPECT_EQ(traj[0], traj[1]);
  EXPECT_EQ(series[0], series[2]);
  EXPECT_EQ(traj[0], traj[2]);

  // The rows are those of a direct evaluation; step 3's own eps reached the forward.
  const CsvTable t = read_csv((root / "0" / "runs" / "fp16_seed0_control" / "trajectory.csv").string());
  const std::vector<double> step = t.numbers("step"), layer = t.numbers("layer"), eps1 = t.numbers("eps_norm1"),
                            r = t.numbers("r_block"), loss = t.numbers("loss");
  const auto probe = read_probe((root / "0" / "probe.safetensors").string(), c);
  for (std::size_t i = 0; i < step.size(); ++i) {
    EXPECT_DOUBLE_EQ(loss[i], 2.5 - 0.1 * step[i]);
    EXPECT_EQ(eps1[i], step[i] == 3 && layer[i] == 0 ? 1e-2 : c.norm_eps);
    if (step[i] == 3) {
      const Weights<double> w = load_safetensors_weights(
          (root / "0" / "runs" / "fp16_seed0_control" / "ckpt" / "step_0003.safetensors").string(), c);
      const TrajectoryPoint p = evaluate_checkpoint(c, w, probe, plan, false);
      EXPECT_NEAR(r[i], p.layers[int(layer[i])].r_block, 1e-6 * r[i]);  // the CSV keeps 7 digits
      Weights<double> plain = w;
      plain.layers[0].norm1.eps = -1;
      EXPECT_NE(evaluate_checkpoint(c, plain, probe, plan, false).layers[0].r_attn, p.layers[0].r_attn);
    }
  }
  fs::remove_all(root);
}

TEST(Trajectory, BadProbeNamesTheFile) {
  const fs::path root = fs::temp_directory_path() / "lpsim_trajectory_probe";
  fs::create_directories(root);
  write_safetensors((root / "p.safetensors").string(), {{"pixels", Tensor{"F32", {1}, {0.0}}}});
  try {
    read_probe((root / "p.safetensors").string(), vit());
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("p.safetensors': no tensor 'images'"), std::string::npos) << e.what();
  }
  write_safetensors((root / "q.safetensors").string(), {{"images", Tensor{"F32", {2, 3}, std::vector<double>(6, 0.0)}}});
  try {
    read_probe((root / "q.safetensors").string(), vit());
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("has shape [2, 3], the model needs [n, 1, 4, 4]"), std::string::npos) << e.what();
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace lpsim
