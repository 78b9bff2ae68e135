// Sweep files (errors before any work, naming file, line and key), the expansion of the grid, and the runner's
// promises: the same files at any thread count, after an interruption, and from shards merged.
#include <gtest/gtest.h>

#include "lpsim/sweep/sweep_lock.hpp"
#include "lpsim/config/config_error.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "lpsim/config/config_error.hpp"
#include "lpsim/stats/csv_table.hpp"
#include "lpsim/stats/regression.hpp"
#include "lpsim/sweep/runner.hpp"
#include "lpsim/diag/residual_gain.hpp"
#include "lpsim/model/init.hpp"

namespace lpsim {
namespace {

namespace fs = std::filesystem;

std::string tiny_model() { return std::string(LPSIM_SOURCE_DIR) + "/models/tiny.toml"; }

std::string error_of(const std::string& text) {
  try {
    expand(parse_sweep(text, "s.toml"));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(SweepConfig, MistakesFailBeforeAnyWork) {
  const std::string head = "[sweep]\nmodel = \"" + tiny_model() + "\"\n";
  EXPECT_EQ(error_of(head + "seds = 3\n"), "s.toml line 3: key 'sweep.seds' is unknown (did you mean 'seeds'?)");
  EXPECT_EQ(error_of(head + "[axes]\nplna = [\"fp32\"]\n").substr(0, 38), "s.toml line 4: axis 'plna' is unknown:");
  EXPECT_NE(error_of(head + "[axes]\nplna = [\"fp32\"]\n").find("(did you mean 'plan'?)"), std::string::npos);
  EXPECT_EQ(error_of(head + "[axes]\nplan = []\n"), "s.toml line 4: axis 'plan' is empty");
  EXPECT_EQ(error_of(head + "[axes]\nplan = \"fp32\"\n"), "s.toml line 4: axis 'plan' must be a list of values");
  EXPECT_NE(error_of(head + "[axes]\nplan = [\"fp32\", \"autocast-bf61\"]\n")
                .find("s.toml line 4: axis 'plan' = 'autocast-bf61': plan 'autocast-bf61' is neither a preset"),
            std::string::npos);
  EXPECT_NE(error_of(head + "[axes]\nformat = [\"fp17\"]\n").find("s.toml line 4: axis 'format' = 'fp17'"),
            std::string::npos);
  EXPECT_NE(error_of(head + "[axes]\nplan = [\"fp32\"]\n\"model.width\" = [8, \"wide\"]\n")
                .find("s.toml line 5: axes model.width = wide: "),
            std::string::npos);
  EXPECT_NE(error_of(head + "[axes]\n\"model.widht\" = [8]\n").find("key 'model.widht' is unknown (did you mean 'width'?)"),
            std::string::npos);
  EXPECT_NE(error_of(head + "[axes]\n\"model.width\" = [9]\n").find("not divisible by model.heads"), std::string::npos);
  EXPECT_EQ(error_of("[sweep]\nmodel = \"nowhere.toml\"\n"), "s.toml line 2: key 'sweep.model' = 'nowhere.toml': no such file");
}

TEST(SweepConfig, ExpansionOrderAndPlanAxes) {
  const SweepConfig s = parse_sweep("[sweep]\nmodel = \"" + tiny_model() + "\"\nseeds = [4, 9]\nbatches = 2\n"
                                    "[axes]\n\"model.depth\" = [1, 3]\nformat = [\"bf16\", \"e5m2\"]\n"
                                    "policy = [\"fp16-tc\"]\n\"init.scale\" = [0.5, 2.0, 1.5]\n", "s.toml");
  const SweepPlan p = expand(s);
  ASSERT_EQ(p.units.size(), 2u * 3 * 2 * 2);
  EXPECT_EQ(p.model_axes, (std::vector<std::string>{"model.depth", "init.scale"}));
  const Unit& u = p.units[11];  // depth 1 (slowest), scale 1.5 (third), seed 9, batch 1
  EXPECT_EQ(u.model_values, (std::vector<std::string>{"1", "1.5"}));
  EXPECT_EQ(u.model.depth, 1);
  EXPECT_DOUBLE_EQ(u.model.init.scale, 1.5);
  EXPECT_EQ(u.seed, 9u);
  EXPECT_EQ(u.batch, 1);
  ASSERT_EQ(p.plans.size(), 2u);
  const PrecisionPlan& e5m2 = p.plans[1].plan;
  EXPECT_EQ(e5m2.name, "e5m2+fp16-tc");
  EXPECT_EQ(e5m2[Op::qkv].gemm->input.name, "e5m2");  // the format stays, the accumulation is the policy's
  EXPECT_EQ(e5m2[Op::qkv].gemm->tc.k, 16);
  EXPECT_EQ(e5m2[Op::residual].out.name, "e5m2");
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class SweepRun : public ::testing::Test {
 protected:
  void SetUp() override {
    // One directory per test: ctest runs tests as parallel processes.
    root_ = (fs::temp_directory_path() / ("lpsim_sweep_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()))).string();
    fs::remove_all(root_);
    sweep_ = parse_sweep("[sweep]\nname = \"t\"\nmodel = \"" + tiny_model() + "\"\nseeds = 2\nbatches = 2\n"
                         "[axes]\nplan = [\"autocast-fp16\", \"pure-bf16\"]\n\"model.depth\" = [1, 2]\n", "t.toml");
  }
  SweepOutcome run(const std::string& sub, int threads, int shard = 0, int shards = 1) {
    SweepOptions o;
    o.results_root = root_ + "/" + sub;
    o.threads = threads;
    o.progress = false;
    o.shard = shard, o.shards = shards;
    return run_sweep(sweep_, o);
  }
  std::string file(const std::string& sub, const std::string& name) { return slurp(root_ + "/" + sub + "/t/" + name); }
  std::string root_;
  SweepConfig sweep_;
};

// One process per shard: a second run of the same shard while the first holds its lock is refused by name; another
// shard runs beside it; the lock goes with its holder.
TEST_F(SweepRun, OneProcessPerShard) {
  fs::create_directories(root_ + "/x/t/parts");
  {
    const SweepLock held(root_ + "/x/t/parts", 0, 1);
    try {
      run("x", 1);
      ADD_FAILURE() << "a second process on the same shard ran";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("another lpsim sweep is running shard 0 of 1 here (pid "), std::string::npos)
          << e.what();
    }
    EXPECT_NO_THROW(run("x", 1, 1, 2));
  }
  EXPECT_TRUE(run("x", 1).complete);
}

TEST_F(SweepRun, SameFilesAtAnyThreadCountAfterInterruptionAndFromShards) {
  const SweepOutcome one = run("one", 1);
  EXPECT_TRUE(one.complete);
  EXPECT_EQ(one.units, 8);
  const std::string taps = file("one", "taps.csv"), summary = file("one", "summary.csv");
  EXPECT_EQ(std::count(taps.begin(), taps.end(), '\n'), 1 + 2 * (2 * 2) * (1 + 2) * 4);  // plans x seeds x batches x taps
  run("two", 2);
  EXPECT_EQ(file("two", "taps.csv"), taps);
  EXPECT_EQ(file("two", "summary.csv"), summary);

  // An interrupted run: some parts missing, a torn temporary left behind. Running again finishes the rest only.
  fs::remove(root_ + "/two/t/parts/chunk-000003.csv");
  fs::remove(root_ + "/two/t/parts/chunk-000006.csv");
  fs::remove(root_ + "/two/t/taps.csv");
  std::ofstream(root_ + "/two/t/parts/chunk-000003.csv.tmp123") << "unit,half a line";
  const SweepOutcome resumed = run("two", 2);
  EXPECT_EQ(resumed.ran, 2);
  EXPECT_EQ(resumed.skipped, 6);
  EXPECT_EQ(file("two", "taps.csv"), taps);

  const SweepOutcome first = run("shards", 2, 0, 3);
  EXPECT_FALSE(first.complete);
  run("shards", 1, 1, 3);
  EXPECT_THROW(assemble_sweep(sweep_, expand(sweep_), root_ + "/shards/t"), ConfigError);  // shard 2 missing
  run("shards", 2, 2, 3);
  assemble_sweep(sweep_, expand(sweep_), root_ + "/shards/t");
  EXPECT_EQ(file("shards", "taps.csv"), taps);
  EXPECT_EQ(file("shards", "summary.csv"), summary);
}

// Issue 20: a finished sweep run again does nothing and succeeds (it used to fail reading the reference check);
// so does one killed after its last part and before the final files; parts of another definition are refused.
TEST_F(SweepRun, ResumesFinishedRunsAndRefusesPartsOfAnotherDefinition) {
  run("one", 2);
  const std::string taps = file("one", "taps.csv");
  const SweepOutcome again = run("one", 2);
  EXPECT_TRUE(again.complete);
  EXPECT_EQ(again.ran, 0);
  fs::remove(root_ + "/one/t/taps.csv");  // killed between the last part and assembly
  EXPECT_TRUE(run("one", 1).complete);
  EXPECT_EQ(file("one", "taps.csv"), taps);
  sweep_ = parse_sweep("[sweep]\nname = \"t\"\nmodel = \"" + tiny_model() + "\"\nseeds = 2\nbatches = 2\n"
                       "[axes]\nplan = [\"autocast-fp16\", \"fp8-e4m3\"]\n\"model.depth\" = [1, 2]\n", "t.toml");
  try {
    run("one", 2);
    ADD_FAILURE() << "parts of another plan axis were reused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("different definition"), std::string::npos) << e.what();
  }
}

// summary.csv's tail statistics recomputed from taps.csv by the test itself.
TEST_F(SweepRun, SummaryIsTheTailOfTheTaps) {
  run("one", 2);
  const CsvTable taps = read_csv(root_ + "/one/t/taps.csv"), summary = read_csv(root_ + "/one/t/summary.csv");
  ASSERT_EQ(summary.rows.size(), 2u * 2 * 2);  // depth x seed x plan
  for (const auto& row : summary.rows) {
    std::vector<double> block;
    for (const auto& t : taps.rows)
      if (t[taps.column("model.depth")] == row[summary.column("model.depth")] &&
          t[taps.column("seed")] == row[summary.column("seed")] && t[taps.column("precision")] == row[summary.column("precision")] &&
          t[taps.column("tap")] == "block")
        block.push_back(std::stod(t[taps.column("rel_fro")]));
    ASSERT_EQ(block.size(), 2u * std::stoul(row[summary.column("model.depth")]));  // batches x layers
    std::sort(block.begin(), block.end());
    const double pos = 0.95 * (block.size() - 1);
    const std::size_t lo = std::size_t(pos);
    const double p95 = block[lo] + (pos - lo) * (block[std::min(lo + 1, block.size() - 1)] - block[lo]);
    EXPECT_NEAR(std::stod(row[summary.column("r_block_p95")]), p95, 1e-9 * p95);
    EXPECT_NEAR(std::stod(row[summary.column("r_block_max")]), block.back(), 1e-9 * block.back());
  }
  // The diagnostics in every row: the scaled predictor is the predictor times eps_mach = 2u; summary's p95 of it.
  for (const auto& t : taps.rows) {
    const double pred = std::stod(t[taps.column("predictor")]), eps = std::stod(t[taps.column("eps_mach")]);
    EXPECT_NEAR(std::stod(t[taps.column("predictor_eps")]), pred * eps, 1e-6 * pred * eps);
    EXPECT_DOUBLE_EQ(eps, 2 * std::stod(t[taps.column("u")]));
    EXPECT_GT(std::stod(t[taps.column("kappa_softmax")]), 0.0);
  }
  for (const auto& row : summary.rows) {
    std::vector<double> pred;
    for (const auto& t : taps.rows)
      if (t[taps.column("model.depth")] == row[summary.column("model.depth")] &&
          t[taps.column("seed")] == row[summary.column("seed")] &&
          t[taps.column("precision")] == row[summary.column("precision")] && t[taps.column("tap")] == "block")
        pred.push_back(std::stod(t[taps.column("predictor")]));
    EXPECT_NEAR(std::stod(row[summary.column("predictor_p95")]), quantile(pred, 0.95), 1e-6 * quantile(pred, 0.95));
  }
  const std::string manifest = slurp(root_ + "/one/t/manifest.json");
  EXPECT_NE(slurp(root_ + "/one/t/run.json").find("\"git_commit\""), std::string::npos);
  EXPECT_EQ(manifest.find("\"seconds\""), std::string::npos);  // the manifest is the same on every run
  EXPECT_NE(manifest.find("\"adequate\": true"), std::string::npos);
}

}  // namespace
}  // namespace lpsim

namespace lpsim {
namespace {

// residual_gains = true: every row carries rho of both branches, checked against the dense Jacobian's spectral norm
// (an independent computation: one JVP per input, then an SVD), and Theorem 3's downstream amplification, checked
// against the product formed here from the CSV's own rho columns.
TEST(SweepResidualGains, RhoColumnsMatchDenseJacobiansAndAmplificationIsTheirProduct) {
  const std::string root = (fs::temp_directory_path() / "lpsim_sweep_residual").string();
  fs::remove_all(root);
  const SweepConfig s = parse_sweep("[sweep]\nname = \"r\"\nmodel = \"" + tiny_model() + "\"\nseeds = [3]\n"
                                    "residual_gains = true\nreference = \"fp64\"\n"
                                    "[axes]\nplan = [\"autocast-bf16\"]\n", "r.toml");
  SweepOptions o;
  o.results_root = root, o.threads = 1, o.progress = false;
  run_sweep(s, o);
  const CsvTable taps = read_csv(root + "/r/taps.csv");
  const std::vector<double> layer = taps.numbers("layer"), ra = taps.numbers("rho_attn"), rf = taps.numbers("rho_ffn"),
                            amp = taps.numbers("residual_amplification");
  const ModelConfig cfg = load_model_config(tiny_model());
  const auto checks = residual_checks(cfg, make_weights(cfg, 3), make_input(cfg, 3, 0));
  std::vector<double> rho_attn(cfg.depth), rho_ffn(cfg.depth);
  for (const ResidualCheck& c : checks) (c.branch == Branch::attention ? rho_attn : rho_ffn)[c.layer] = c.rho_dense;
  for (std::size_t i = 0; i < layer.size(); ++i) {
    const int l = int(layer[i]);
    EXPECT_NEAR(ra[i], rho_attn[l], 1e-4 * rho_attn[l]) << "layer " << l;
    EXPECT_NEAR(rf[i], rho_ffn[l], 1e-4 * rho_ffn[l]) << "layer " << l;
    double product = 1;
    for (int k = l + 1; k < cfg.depth; ++k) product *= (1 + rho_attn[k]) * (1 + rho_ffn[k]);
    EXPECT_NEAR(amp[i], product, 1e-4 * product) << "layer " << l;
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace lpsim
