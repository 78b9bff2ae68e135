// A checkpoint that ships fine-grained fp8 (config.json quantization_config, quant_method "fp8": E4M3 weights with
// fp32 weight_scale_inv per 128 x 128 block, as DeepSeek-V3 and Qwen3-FP8 ship): built here from the shipped Llama
// checkpoint with codes and scales chosen by the test, loaded, and checked against codes times scales; then the
// fp8-128x128 scheme of the w8a16-fp8 and fp8-deepseek plans recovers exactly those codes and scales; other methods
// and malformed scale tensors are refused by name.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "lpsim/config/config_error.hpp"
#include "lpsim/format/block_scale.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/model_config.hpp"
#include "lpsim/model/safetensors.hpp"
#include "support/e4m3_table.hpp"
#include "support/scratch_dir.hpp"

namespace lpsim {
namespace {

const std::string llama = std::string(LPSIM_SOURCE_DIR) + "/results/hf/models/llama";

struct Shipped {
  std::filesystem::path dir;
  std::map<std::string, Tensor> codes, scales;  // by weight name
};

// The Llama checkpoint with every projection as E4M3 codes (one +-448 per block) and scales with at most 21
// significant bits (so that 448 s is exact in fp32, as the re-quantisation check below needs).
Shipped make_fp8_checkpoint(const std::string& name, const std::string& quantization_config) {
  Shipped s{test::scratch_dir(name), {}, {}};
  std::ifstream in(llama + "/config.json");
  nlohmann::json cfg = nlohmann::json::parse(in);
  cfg["quantization_config"] = nlohmann::json::parse(quantization_config);
  std::ofstream(s.dir / "config.json") << cfg.dump(2);
  std::map<std::string, Tensor> tensors = read_checkpoint(llama);
  const std::vector<double>& values = test::e4m3_values();
  std::mt19937_64 g(7);
  std::uniform_int_distribution<int> pick(0, int(values.size()) - 1), sign(0, 1), exponent(-16, -8);
  std::uniform_int_distribution<std::int64_t> mantissa(0, (1 << 20) - 1);
  for (auto& [tname, t] : std::map<std::string, Tensor>(tensors)) {
    if (!tname.ends_with("_proj.weight")) continue;
    const std::int64_t out = t.shape[0], inn = t.shape[1], gr = (out + 127) / 128, gc = (inn + 127) / 128;
    Tensor code{"F8_E4M3", t.shape, std::vector<double>(t.values.size())};
    for (double& v : code.values) v = (sign(g) ? -1 : 1) * values[pick(g)];
    for (std::int64_t br = 0; br < gr; ++br)
      for (std::int64_t bc = 0; bc < gc; ++bc) code.values[std::size_t(br * 128 * inn + bc * 128)] = sign(g) ? 448 : -448;
    Tensor scale{"F32", {gr, gc}, std::vector<double>(std::size_t(gr * gc))};
    for (double& v : scale.values) v = std::ldexp(1.0 + double(mantissa(g)) / (1 << 20), exponent(g));
    tensors[tname] = code;
    tensors[tname + "_scale_inv"] = scale;
    s.codes[tname] = code, s.scales[tname] = scale;
  }
  write_safetensors((s.dir / "model.safetensors").string(), tensors);
  return s;
}

const std::string fp8_config =
    R"({"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]})";

TEST(ShippedFp8, WeightsLoadAsCodesTimesScalesAndRequantiseToThem) {
  const Shipped s = make_fp8_checkpoint("fp8", fp8_config);
  const ModelConfig c = load_model_config(s.dir.string());
  EXPECT_EQ(c.shipped_quantization, "fp8");
  const Weights<double> w = make_weights(c, 0);
  const BlockScheme tiles = block_scheme("fp8-128x128");
  int checked = 0;
  for (int layer = 0; layer < c.depth; ++layer) {
    const std::pair<const char*, const Matrix<double>*> mats[] = {
        {"q_proj", &w.layers[layer].wq}, {"o_proj", &w.layers[layer].wo}, {"down_proj", &w.layers[layer].w2}};
    for (const auto& [proj, m] : mats) {
      const std::string prefix = std::string(proj) == "down_proj" ? ".mlp." : ".self_attn.";
      const std::string name = "model.layers." + std::to_string(layer) + prefix + proj + ".weight";
      const Tensor& code = s.codes.at(name);
      const Tensor& scale = s.scales.at(name);
      const std::int64_t inn = code.shape[1], gc = scale.shape[1];
      // Weights are [in, out]: the stored [out, in] transposed.
      for (int i = 0; i < m->rows; ++i)
        for (int o = 0; o < m->cols; ++o)
          ASSERT_EQ((*m)(i, o), code.values[std::size_t(o * inn + i)] * scale.values[std::size_t((o / 128) * gc + i / 128)])
              << name << " " << i << "," << o;
      const BlockQuantized q = quantize_blocks(tiles, m->data, m->rows, m->cols, 0);
      for (int i = 0; i < m->rows; ++i)
        for (int o = 0; o < m->cols; ++o) {
          ASSERT_EQ(q.elements[std::size_t(i) * m->cols + o], code.values[std::size_t(o * inn + i)]) << name;
          ASSERT_EQ(q.scales[q.block_of(i, o)], scale.values[std::size_t((o / 128) * gc + i / 128)]) << name;
        }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3 * c.depth);
}

std::string load_error(const Shipped& s) {
  try {
    make_weights(load_model_config(s.dir.string()), 0);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(ShippedFp8, OtherMethodsAndMalformedScalesAreRefusedByName) {
  EXPECT_NE(load_error(make_fp8_checkpoint("gptq", R"({"quant_method": "gptq", "bits": 4})")).find("quant_method"),
            std::string::npos);
  EXPECT_NE(load_error(make_fp8_checkpoint("fmt", R"({"quant_method": "fp8", "fmt": "e5m2", "weight_block_size": [128, 128]})"))
                .find("'e5m2'"), std::string::npos);
  EXPECT_NE(load_error(make_fp8_checkpoint("pertensor", R"({"quant_method": "fp8"})")).find("weight_block_size"),
            std::string::npos);
  // A scale tensor of the wrong shape, and codes without their scales.
  Shipped s = make_fp8_checkpoint("shape", fp8_config);
  auto tensors = read_checkpoint(s.dir.string());
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  tensors[q + "_scale_inv"].shape = {1, 2};
  tensors[q + "_scale_inv"].values = {1.0, 1.0};
  write_safetensors((s.dir / "model.safetensors").string(), tensors);
  EXPECT_NE(load_error(s).find("q_proj.weight_scale_inv' has shape"), std::string::npos);
  tensors.erase(q + "_scale_inv");
  write_safetensors((s.dir / "model.safetensors").string(), tensors);
  EXPECT_NE(load_error(s).find("is F8_E4M3 without a weight_scale_inv"), std::string::npos);
}

}  // namespace
}  // namespace lpsim
