// The emulation side of issue 7's GPU comparisons, from outputs an H100 produced (results/cuda/raw, written by
// scripts/cuda_validate.sh): CI has no GPU, so these tests keep lpsim bit-exact against stored hardware bits.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "lpsim/accum/gemm.hpp"
#include "lpsim/hw/native_runs.hpp"
#include "lpsim/hw/tc_probe.hpp"
#include "lpsim/model/forward.hpp"

namespace lpsim {
namespace {

const std::string raw = std::string(LPSIM_SOURCE_DIR) + "/results/cuda/raw";

const ProbeSet& probe(const std::vector<ProbeSet>& sets, const std::string& key) {
  for (const auto& s : sets)
    if (s.key() == key) return s;
  throw std::runtime_error("no probe set " + key);
}

std::vector<float> floats(const Tensor& t) { return {t.values.begin(), t.values.end()}; }

// The presets fitted to the H100 reproduce every stored tensor-core output: fp16/bf16 mma.sync and cuBLAS through
// torch.mm with fp32 output; fp8 mma.sync (compiled for sm_90 to fp16 HMMA steps); fp8 cuBLASLt through
// torch._scaled_mm with and without fast accumulation (wgmma with 13 fraction bits in the accumulator).
TEST(H100Bits, TensorCorePresetsReproduceStoredOutputs) {
  const auto sets = make_probe_sets(0, 16, 512);  // the inputs the device used, regenerated from the seed
  const auto mma = read_safetensors(raw + "/mma.safetensors");
  const auto torch = read_safetensors(raw + "/torch.safetensors");
  for (const char* fmt : {"fp16", "bf16"})
    for (const char* kind : {"random", "wide", "cancel"}) {
      AccumPolicy p = parse_policy(std::string(fmt) + "-tc");
      p.output = parse_format("fp32");
      const std::string key = std::string(fmt) + "." + kind;
      EXPECT_EQ(score_probe(probe(sets, key), floats(mma.at(key)), p).match, 1.0) << "mma.sync " << key;
      EXPECT_EQ(score_probe(probe(sets, key), floats(torch.at(key + ".mm.fp32")), p).match, 1.0) << "torch.mm " << key;
    }
  auto fp32_out = [](const char* preset) {
    AccumPolicy p = parse_policy(preset);
    p.output = parse_format("fp32");
    return p;
  };
  for (const char* kind : {"random", "wide", "cancel"}) {
    for (const char* fmt : {"e4m3", "e5m2"}) {
      const std::string key = std::string(fmt) + "." + kind;
      EXPECT_EQ(score_probe(probe(sets, key), floats(mma.at(key)), fp32_out(fmt == std::string("e4m3") ? "fp8e4m3-mma" : "fp8e5m2-mma")).match, 1.0)
          << "mma.sync " << key;
    }
    const std::string key = std::string("e4m3.") + kind;
    EXPECT_EQ(score_probe(probe(sets, key), floats(torch.at(key + ".scaledfast.fp32")), fp32_out("fp8e4m3-tc")).match, 1.0)
        << "scaled_mm fast " << key;
    EXPECT_EQ(score_probe(probe(sets, key), floats(torch.at(key + ".scaled.fp32")), fp32_out("fp8e4m3-tc-promote")).match,
              1.0)
        << "scaled_mm " << key;
  }
}

// One mma.sync.m16n8k32 fp8 instruction with a nonzero accumulator, on an H200 (scripts/fp8_mma_single.py,
// results/cuda/raw/mma_single.safetensors): D = A B + C through lpsim's accumulate_gemm under fp8e4m3-mma /
// fp8e5m2-mma, where the chunk's two fp16 steps start from zero and C is added in fp32 afterwards.
TEST(H100Bits, FpEightMmaSyncSingleInstructions) {
  const auto t = read_safetensors(raw + "/mma_single.safetensors");
  int checked = 0;
  for (const char* fmt : {"e4m3", "e5m2"})
    for (const char* kind : {"wide", "wideC", "sparse", "sparseC", "narrow", "narrowC"}) {
      const std::string key = std::string(fmt) + "." + kind;
      AccumPolicy p = parse_policy(fmt == std::string("e4m3") ? "fp8e4m3-mma" : "fp8e5m2-mma");
      const Tensor &a = t.at(key + ".a"), &b = t.at(key + ".b"), &c = t.at(key + ".c"), &d = t.at(key + ".d");
      const int tiles = int(a.shape.at(0));
      int same = 0;
      for (int i = 0; i < tiles; ++i) {
        const std::vector<double> at(a.values.begin() + i * 512, a.values.begin() + (i + 1) * 512),
            bt(b.values.begin() + i * 256, b.values.begin() + (i + 1) * 256);
        std::vector<double> acc(c.values.begin() + i * 128, c.values.begin() + (i + 1) * 128);
        accumulate_gemm(p, 16, 8, 32, at, bt, acc);
        for (int j = 0; j < 128; ++j) same += float(acc[j]) == float(d.values[size_t(i) * 128 + j]), ++checked;
      }
      EXPECT_EQ(same, tiles * 128) << key;
    }
  EXPECT_EQ(checked, 12 * 8 * 128);
}

// Every tap of the deterministic native forwards (66 model x plan pairs on the H100 and H200, 36 with the flash
// kernel) has the digest of the
// emulated tap under the same plan.
TEST(H100Bits, EmulatedForwardsMatchNativeDigests) {
  std::ifstream in(raw + "/native_bits.csv");
  ASSERT_TRUE(in) << raw << "/native_bits.csv";
  std::string line;
  std::getline(in, line);
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> runs;  // run -> (layer|tap, digest)
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string model, plan, seed, layer, tap, elements, digest;
    std::getline(ss, model, ','), std::getline(ss, plan, ','), std::getline(ss, seed, ',');
    std::getline(ss, layer, ','), std::getline(ss, tap, ','), std::getline(ss, elements, ','), std::getline(ss, digest);
    runs[model + "|" + plan + "|" + seed].emplace_back(layer + "|" + tap, digest);
  }
  ASSERT_EQ(runs.size(), 66u);  // 6 models x (5 math plans + 4 flash presets + 2 flash plans with small tiles)
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(LPSIM_SOURCE_DIR);  // model and plan paths are relative to the repository
  for (const auto& [id, taps] : runs) {
    NativeRun r;
    std::stringstream ss(id);
    std::string seed;
    std::getline(ss, r.model_file, '|'), std::getline(ss, r.plan, '|'), std::getline(ss, seed);
    r.seed = std::stoull(seed);
    const auto emulated = emulate_native_run(r);
    ASSERT_EQ(emulated.size(), taps.size()) << id;
    for (std::size_t t = 0; t < taps.size(); ++t)
      EXPECT_EQ(fmt::format("{:016x}", tap_digest(std::span<const double>(emulated[t]))), taps[t].second)
          << id << " layer|tap " << taps[t].first;
  }
  std::filesystem::current_path(cwd);
}

TEST(H100Bits, UlpDistanceCountsRepresentableFloatsBetween) {
  EXPECT_EQ(ulp_distance(1.0f, std::nextafter(1.0f, 2.0f)), 1u);
  EXPECT_EQ(ulp_distance(-0.0f, 0.0f), 0u);
  EXPECT_EQ(ulp_distance(std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::denorm_min()), 2u);
  EXPECT_EQ(ulp_distance(1.0f, 2.0f), 1u << 23);
}

}  // namespace
}  // namespace lpsim
