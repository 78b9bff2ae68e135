// The GPU's emulated GEMM and forward (cuda/emulated_gemm.hpp), held in CI from what the H200 computed:
// results/cuda/raw/emulated_gemm.csv has a digest of every GPU output of device_gemm_cases(), emulated_forward.csv
// one per tap of forwards whose GEMMs ran on the GPU, as emulated_taps runs a plan (both written by
// `lpsim-cuda gemm` / `emulate`, see docs/CUDA.md). Here the CPU computes the same products and forwards and must give the same digests.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "lpsim/accum/gemm.hpp"
#include "lpsim/hw/device_gemm_cases.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "lpsim/stats/csv_table.hpp"

namespace lpsim {
namespace {

const std::string raw = std::string(LPSIM_SOURCE_DIR) + "/results/cuda/raw/";

std::uint64_t hex(const std::string& s) { return std::stoull(s, nullptr, 16); }

TEST(DeviceGemm, GpuOutputsStoredFromTheH200MatchTheCpuKernels) {
  if (!std::filesystem::exists(raw + "emulated_gemm.csv")) GTEST_SKIP() << "no stored GPU outputs";
  const CsvTable t = read_csv(raw + "emulated_gemm.csv");
  std::set<std::string> stored;
  int checked = 0, gpu_kernels = 0;
  for (const auto& r : t.rows) {
    const DeviceGemmCase c{r[t.column("policy")], std::stoi(r[t.column("m")]), std::stoi(r[t.column("n")]),
                           std::stoi(r[t.column("k")]), std::stoull(r[t.column("seed")]),
                           r[t.column("operands")] == "extreme"};
    const AccumPolicy p = parse_policy(c.policy);
    const GemmOperands o = make_operands(c, p);
    std::vector<double> cpu(std::size_t(c.m) * c.n);
    GemmOptions options;
    options.sr = case_stream(c);
    gemm(p, c.m, c.n, c.k, o.a, o.b, cpu, options);
    EXPECT_EQ(value_digest(cpu), hex(r[t.column("fnv1a64")])) << c.policy << " " << c.m << "x" << c.n << "x" << c.k;
    stored.insert(c.policy + "/" + std::to_string(c.seed));
    gpu_kernels += r[t.column("kernel")] != "cpu";
    ++checked;
  }
  // The stored file covers the current case list (a case added since the last GPU run shows up here).
  for (const auto& c : device_gemm_cases()) EXPECT_TRUE(stored.count(c.policy + "/" + std::to_string(c.seed))) << c.policy;
  EXPECT_GT(gpu_kernels, checked / 2);
}

TEST(DeviceGemm, ForwardsWithGpuGemmsStoredFromTheH200MatchTheCpuForward) {
  if (!std::filesystem::exists(raw + "emulated_forward.csv")) GTEST_SKIP() << "no stored GPU forwards";
  const CsvTable t = read_csv(raw + "emulated_forward.csv");
  // model, plan, seed, tokens -> the stored digest of each tap in forward order
  std::map<std::tuple<std::string, std::string, std::uint64_t, int>, std::vector<std::pair<std::string, std::uint64_t>>> runs;
  for (const auto& r : t.rows)
    runs[{r[t.column("model")], r[t.column("plan")], std::stoull(r[t.column("seed")]), std::stoi(r[t.column("tokens")])}]
        .emplace_back(r[t.column("layer")] + "," + r[t.column("tap")], hex(r[t.column("fnv1a64")]));
  ASSERT_FALSE(runs.empty());
  for (const auto& [key, taps] : runs) {
    const auto& [model, plan_name, seed, tokens] = key;
    ModelConfig cfg = load_model_config(std::string(LPSIM_SOURCE_DIR) + "/models/" + model + ".toml");
    cfg.tokens = tokens;
    const std::string plan_file = std::string(LPSIM_SOURCE_DIR) + "/cuda/plans/" + plan_name + ".toml";
    const PrecisionPlan plan = load_plan(std::filesystem::exists(plan_file) ? plan_file : plan_name);
    EmulatedBackend be(plan, seed);
    std::vector<std::pair<std::string, std::uint64_t>> cpu;
    const Taps<double> emulated = emulated_taps(be, cfg, make_weights(cfg, seed), make_input(cfg, seed));
    for (std::size_t t = 0; t < emulated.size(); ++t) {
      const TapPosition at = tap_at(cfg, t);
      cpu.emplace_back(std::to_string(at.layer) + "," + std::string(tap_name(at.tap)), value_digest(emulated[t].data));
    }
    EXPECT_EQ(cpu, taps) << model << " under " << plan_name;
  }
}

}  // namespace
}  // namespace lpsim
