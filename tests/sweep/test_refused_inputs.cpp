// Nothing accepted that cannot be honoured (issue 40): each case is an audit's reproducer, refused before any work
// with a message naming the culprit, where before it crashed, hung, wrapped around or mixed stale results.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <Eigen/Dense>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lpsim/config/config_error.hpp"
#include "lpsim/diag/bounds.hpp"
#include "lpsim/diag/diagnostics.hpp"
#include "lpsim/model/hf_config.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/model_config.hpp"
#include "lpsim/model/plan.hpp"
#include "lpsim/model/safetensors.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "lpsim/reference/memory_estimate.hpp"
#include "lpsim/stats/regression.hpp"
#include "lpsim/sweep/runner.hpp"
#include "lpsim/sweep/sweep_config.hpp"
#include "util/atomic_file.hpp"

namespace lpsim {
namespace {

namespace fs = std::filesystem;

// A scratch folder of this test's own (ctest runs tests as parallel processes).
fs::path scratch() {
  const fs::path d = fs::temp_directory_path() /
                     ("lpsim_refused_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
                      "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

// The message of the ConfigError that f throws ("" if it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// 1. Activations are estimated: width 8 at 65,536 tokens needs two heads' 65536^2 scores, not just its parameters.
TEST(RefusedInputs, ActivationsTooLargeAreRefusedWithTheEstimate) {
  ModelConfig c;
  c.width = 8, c.heads = 2, c.ffn = 16, c.depth = 2, c.tokens = 65536;
  ASSERT_LT(parameter_count(c), 1e4);
  const MemoryEstimate m = study_memory(c, plan_preset("fp32"), "fp64", 128, false, 2);
  EXPECT_GT(m.emulated, 3 * 8.0 * 65536.0 * 65536.0);  // the scores, probabilities and a copy of one head at least
  for (const std::string reference : {"fp64", "dd", "mpfr"}) {
    StudyOptions o;
    o.reference = reference, o.check_reference = false;
    const std::string e = error_of([&] { run_study(c, plan_preset("fp32"), o); });
    EXPECT_TRUE(has(e, "needs about") && has(e, "GB are available")) << reference << ": " << e;
  }
  c.tokens = 64;  // the same model at 64 tokens fits
  EXPECT_LT(study_memory(c, plan_preset("fp32"), "mpfr", 128, true, 2).total(), 1e9);
}

// 1. A sweep's units are estimated side by side before its results directory is even made.
TEST(RefusedInputs, SweepsThatCannotFitAreRefusedBeforeWork) {
  const fs::path d = scratch();
  const std::string model = std::string(LPSIM_SOURCE_DIR) + "/models/tiny.toml";
  const SweepConfig s = parse_sweep("[sweep]\nname = \"big\"\nmodel = \"" + model + "\"\nreference = \"fp64\"\n"
                                    "diagnostics = false\n[axes]\n\"model.tokens\" = [16, 65536]\n", "big.toml");
  SweepOptions o;
  o.results_root = (d / "results").string(), o.threads = 2, o.progress = false;
  const std::string e = error_of([&] { run_sweep(s, o); });
  EXPECT_TRUE(has(e, "sweep 'big' (2 units") && has(e, "needs about")) << e;
  EXPECT_FALSE(fs::exists(d / "results"));
  fs::remove_all(d);
}

// 2. A grid of 10^12 units is refused before it is expanded, in well under a second.
TEST(RefusedInputs, HugeSweepGridsAreRefusedBeforeExpansion) {
  const std::string model = std::string(LPSIM_SOURCE_DIR) + "/models/tiny.toml";
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e = error_of([&] {
    expand(parse_sweep("[sweep]\nmodel = \"" + model + "\"\nseeds = 1000000\nbatches = 1000000\n", "big.toml"));
  });
  EXPECT_TRUE(has(e, "expands to 1e+12 units")) << e;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
}

// 3. A sweep reads a safetensors file; rewritten, the next run refuses the parts made from the old weights (before,
// "0 run now, 2 resumed" kept the old rows), and so does a merge of shards run on either side of the change.
TEST(RefusedInputs, ChangedWeightsAreNeverMixedWithOldResults) {
  const fs::path d = scratch();
  const ModelConfig base = parse_model_config("[model]\narch = \"gpt2\"\nwidth = 8\nheads = 2\nffn = 16\ndepth = 1\n"
                                              "tokens = 4\nvocab = 16\n", "base.toml");
  save_safetensors_weights((d / "w.safetensors").string(), base, make_weights(base, 1));
  write(d / "m.toml", "[model]\narch = \"gpt2\"\nwidth = 8\nheads = 2\nffn = 16\ndepth = 1\ntokens = 4\nvocab = 16\n"
                      "[init]\nweights = \"w.safetensors\"\n");
  const SweepConfig s = parse_sweep("[sweep]\nname = \"w\"\nmodel = \"" + (d / "m.toml").string() +
                                        "\"\nseeds = 2\nreference = \"fp64\"\ndiagnostics = false\n"
                                        "[axes]\nplan = [\"autocast-bf16\"]\n",
                                    "w.toml");
  SweepOptions o;
  o.results_root = (d / "results").string(), o.threads = 1, o.progress = false;
  EXPECT_EQ(run_sweep(s, o).ran, 2);
  EXPECT_EQ(run_sweep(s, o).skipped, 2);  // unchanged: resumed
  save_safetensors_weights((d / "w.safetensors").string(), base, make_weights(base, 2));
  const std::string e = error_of([&] { run_sweep(s, o); });
  EXPECT_TRUE(has(e, "different definition") && has(e, "w.safetensors")) << e;

  // Shard 0 of 2 before the change, shard 1 after: the merge is refused.
  o.results_root = (d / "sharded").string(), o.shards = 2, o.shard = 0;
  run_sweep(s, o);
  save_safetensors_weights((d / "w.safetensors").string(), base, make_weights(base, 3));
  o.shard = 1;
  EXPECT_TRUE(has(error_of([&] { run_sweep(s, o); }), "different definition"));
  EXPECT_TRUE(has(error_of([&] { assemble_sweep(s, expand(s), (d / "sharded/w").string()); }), "different definition"));
  fs::remove_all(d);
}

// 4. Sizes from config.json are computed in 64 bits and refused by name: none wraps around into a small number.
TEST(RefusedInputs, ConfigJsonSizesDoNotOverflow) {
  const fs::path d = scratch();
  auto error_for = [&](const std::string& json) {
    write(d / "config.json", json);
    return error_of([&] { model_config_from_hf(d.string()); });
  };
  EXPECT_TRUE(has(error_for(R"({"model_type": "vit", "hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1,
    "intermediate_size": 16, "image_size": 65536, "patch_size": 1})"), "model.image = 65536 is outside"));
  EXPECT_TRUE(has(error_for(R"({"model_type": "gpt2", "n_embd": 536870912, "n_head": 2, "n_layer": 1,
    "vocab_size": 16})"), "is outside"));
  EXPECT_TRUE(has(error_for(R"({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
    "num_hidden_layers": 1, "intermediate_size": 16, "vocab_size": 16, "head_dim": 1073741824})"),
                  "model.head_dim = 1073741824 is outside"));
  fs::remove_all(d);
}

// 5. config.json is held to the TOML path's rules: a negative epsilon, a rope_theta of 0 or below, no channels.
TEST(RefusedInputs, ConfigJsonValuesAreValidatedAsTheTomlPathValidatesThem) {
  const fs::path d = scratch();
  auto error_for = [&](const std::string& json) {
    write(d / "config.json", json);
    return error_of([&] { model_config_from_hf(d.string()); });
  };
  const std::string llama = R"({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
    "num_hidden_layers": 1, "intermediate_size": 16, "vocab_size": 16)";
  EXPECT_TRUE(has(error_for(llama + R"(, "rms_norm_eps": -1})"), "norm_eps = -1 must be >= 0"));
  EXPECT_TRUE(has(error_for(llama + R"(, "rope_theta": 0})"), "field 'rope_theta' = 0 must be > 0"));
  EXPECT_TRUE(has(error_for(llama + R"(, "rope_theta": -5})"), "field 'rope_theta' = -5 must be > 0"));
  EXPECT_TRUE(has(error_for(llama + R"(, "rope_parameters": {"rope_theta": 0, "rope_type": "default"}})"),
                  "'rope_theta' = 0 must be > 0"));
  const std::string vit = R"({"model_type": "vit", "hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1,
    "intermediate_size": 16, "image_size": 8, "patch_size": 4)";
  EXPECT_TRUE(has(error_for(vit + R"(, "layer_norm_eps": -1})"), "norm_eps = -1 must be >= 0"));
  EXPECT_TRUE(has(error_for(vit + R"(, "num_channels": 0})"), "model.channels = 0 is outside"));
  EXPECT_EQ(error_for(vit + "}"), "");  // and the valid one passes
  // The TOML path refuses the same values.
  EXPECT_TRUE(has(error_of([] { parse_model_config("[model]\nnorm_eps = -1\n", "m.toml"); }), "norm_eps"));
  EXPECT_TRUE(has(error_of([] { parse_model_config("[model]\nchannels = 0\n", "m.toml"); }), "channels"));
  fs::remove_all(d);
}

// 6. Only regular files are read: a FIFO would block forever, /dev/zero would be read until memory runs out.
// (A regression hangs here until ctest's timeout instead of failing fast: the open itself blocks.)
TEST(RefusedInputs, OnlyRegularFilesAreRead) {
  const fs::path d = scratch();
  ASSERT_EQ(::mkfifo((d / "fifo").c_str(), 0600), 0);
  fs::create_symlink("/dev/zero", d / "zero");
  const std::string fifo = (d / "fifo").string(), zero = (d / "zero").string();
  for (const std::string& f : {fifo, zero}) {
    EXPECT_TRUE(has(error_of([&] { load_plan(f); }), "is not a regular file")) << f;
    EXPECT_TRUE(has(error_of([&] { load_sweep(f); }), "is not a regular file")) << f;
    EXPECT_TRUE(has(error_of([&] { load_model_config(f); }), "not a regular file")) << f;
    EXPECT_TRUE(has(error_of([&] { read_safetensors(f); }), "is not a regular file")) << f;
    ModelConfig c = parse_model_config("[model]\narch = \"gpt2\"\nwidth = 8\nheads = 2\nffn = 16\ndepth = 1\n"
                                       "tokens = 4\nvocab = 16\nembedding = \"tokens\"\n", "m.toml");
    EXPECT_TRUE(has(error_of([&] { use_input_file(c, f); }), "is not a regular file")) << f;
    c.init.weights = f;
    EXPECT_TRUE(has(error_of([&] { make_weights(c, 0); }), "is not a regular file")) << f;
  }
  // A shard named by the index that is a FIFO or a link to /dev/zero.
  for (const std::string& shard : {"fifo", "zero"}) {
    const fs::path m = d / ("model-" + shard);
    fs::create_directories(m);
    write(m / "model.safetensors.index.json", R"({"weight_map": {"x": "s.safetensors"}})");
    if (shard == "fifo") ASSERT_EQ(::mkfifo((m / "s.safetensors").c_str(), 0600), 0);
    else fs::create_symlink("/dev/zero", m / "s.safetensors");
    EXPECT_TRUE(has(error_of([&] { read_checkpoint(m.string()); }), "is not a regular file")) << shard;
  }
  // A plan axis naming a device.
  const std::string model = std::string(LPSIM_SOURCE_DIR) + "/models/tiny.toml";
  EXPECT_TRUE(has(error_of([&] {
    expand(parse_sweep("[sweep]\nmodel = \"" + model + "\"\n[axes]\nplan = [\"" + zero + "\"]\n", "p.toml"));
  }), "is not a regular file"));
  fs::remove_all(d);
}

// 7. A file replaced by an atomic write keeps its permission bits; a new one gets 0644 less the umask.
TEST(RefusedInputs, OverwrittenOutputsKeepTheirPermissions) {
  const fs::path d = scratch();
  const std::string f = (d / "private.csv").string();
  write(f, "old");
  ASSERT_EQ(::chmod(f.c_str(), 0600), 0);
  write_atomically(f, "new");
  struct stat st {};
  ASSERT_EQ(::stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  const mode_t old_mask = ::umask(022);
  write_atomically((d / "fresh.csv").string(), "x");
  ::umask(old_mask);
  ASSERT_EQ(::stat((d / "fresh.csv").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  fs::remove_all(d);
}

// 8. logit_scale sets ||W_Q W_K^T||_2 / sqrt(d_head) per head, computed without the width x width product: checked
// against a full SVD of the product done here.
TEST(RefusedInputs, LogitScaleIsExactWithoutTheFullProduct) {
  ModelConfig c = parse_model_config("[model]\nwidth = 256\nheads = 4\nffn = 8\ndepth = 1\ntokens = 4\n"
                                     "[init]\nlogit_scale = 2.0\nstorage = \"fp64\"\n", "m.toml");
  const Weights<double> w = make_weights(c, 5);
  const int d = c.width, dh = c.head_width();
  for (int h = 0; h < c.heads; ++h) {
    Eigen::MatrixXd q(d, dh), k(d, dh);
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < dh; ++j) q(i, j) = w.layers[0].wq(i, h * dh + j), k(i, j) = w.layers[0].wk(i, h * dh + j);
    const double norm = Eigen::JacobiSVD<Eigen::MatrixXd>(q * k.transpose()).singularValues()(0);
    EXPECT_NEAR(norm / std::sqrt(double(dh)), 2.0, 1e-12) << "head " << h;
  }
}

// 9. -o naming a directory is refused before the run (it was found after 22 s of work).
TEST(RefusedInputs, OutputsAreCheckedWritableBeforeWork) {
  const fs::path d = scratch();
  EXPECT_TRUE(has(error_of([&] { check_writable(d.string()); }), "it is a directory"));
  EXPECT_EQ(error_of([&] { check_writable((d / "new/sub/out.csv").string()); }), "");
  EXPECT_TRUE(fs::is_directory(d / "new/sub"));
  EXPECT_FALSE(fs::exists(d / "new/sub/out.csv"));  // probed, not created
  fs::remove_all(d);
}

// 10. A regression on a constant x (or x = 1 on a log axis) says so and gives NaN, not pearson 0 and a slope.
TEST(RefusedInputs, DegenerateRegressionsAreReportedAsSuch) {
  const std::vector<double> y = {1e-3, 2e-3, 4e-3, 3e-3, 5e-3};
  for (const double x0 : {0.00390625, 1.0, 1.0 / 3}) {
    const std::vector<double> x(y.size(), x0);
    const Regression r = regress(x, y, true, true, 200, 1);
    EXPECT_TRUE(has(r.degenerate, "x is constant")) << x0;
    EXPECT_TRUE(std::isnan(r.pearson) && std::isnan(r.fit.slope) && std::isnan(r.fit.r2) && std::isnan(r.slope_ci.low)) << x0;
  }
  const Regression ok = regress(std::vector<double>{1, 2, 3, 4}, std::vector<double>{2, 4, 6, 8}, false, false, 50, 1);
  EXPECT_EQ(ok.degenerate, "");
  EXPECT_NEAR(ok.fit.slope, 2.0, 1e-12);
}

// 11. Token ids are integers as written: "2.5" is refused by the TOML path as by --input (it became id 2).
TEST(RefusedInputs, TokenIdsAreParsedStrictly) {
  const fs::path d = scratch();
  write(d / "ids.txt", "1 2.5 3\n");
  write(d / "m.toml", "[model]\narch = \"gpt2\"\nwidth = 8\nheads = 2\nffn = 16\ndepth = 1\ntokens = 3\nvocab = 16\n"
                      "embedding = \"tokens\"\n"
                      "[input]\nfile = \"ids.txt\"\n");
  const ModelConfig c = load_model_config((d / "m.toml").string());
  EXPECT_TRUE(has(error_of([&] { make_input(c, 0, 0); }), "'2.5' (number 2) is not a token id in 0..15"));
  ModelConfig c2 = c;
  EXPECT_TRUE(has(error_of([&] { use_input_file(c2, (d / "ids.txt").string()); }), "'2.5' (number 2)"));
  for (const std::string bad : {"2e0", "-1", "0x2", "16", "99999999999999999999"}) {
    write(d / "ids.txt", "1 " + bad + " 3\n");
    EXPECT_TRUE(has(error_of([&] { make_input(c, 0, 0); }), "is not a token id")) << bad;
  }
  write(d / "ids.txt", "1 # a comment 2.5\n 2 3\n");
  EXPECT_EQ(make_input(c, 0, 0).ids, (std::vector<int>{1, 2, 3}));
  fs::remove_all(d);
}

// 14. A sweep with diagnostics over a model they are not defined for is refused while expanding, before any
// reference (it took 15 s of references before).
TEST(RefusedInputs, UndiagnosableSweepsAreRefusedBeforeAnyWork) {
  const std::string llama = std::string(LPSIM_SOURCE_DIR) + "/results/hf/models/llama";
  const std::string e = error_of([&] { expand(parse_sweep("[sweep]\nmodel = \"" + llama + "\"\n", "l.toml")); });
  EXPECT_TRUE(has(e, "sweep.diagnostics") && has(e, "grouped-query attention") && has(e, "rotary")) << e;
  EXPECT_EQ(error_of([&] { expand(parse_sweep("[sweep]\nmodel = \"" + llama + "\"\ndiagnostics = false\n", "l.toml")); }),
            "");
  EXPECT_TRUE(has(error_of([&] { check_local_bounds(load_model_config(llama), plan_preset("fp32"),
                                                    Weights<double>{}, ModelInput<double>{}, 128); }),
                  "grouped-query attention"));
}

}  // namespace
}  // namespace lpsim
