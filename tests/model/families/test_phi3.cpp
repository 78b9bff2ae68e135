// Phi-3 as a family description (src/model/families/phi3.cpp): fused qkv_proj and gate_up_proj read in
// transformers' order, config.json's fields, and the refusals.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "lpsim/config/config_error.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/safetensors.hpp"
#include "support/scratch_dir.hpp"

namespace lpsim {
namespace {

std::filesystem::path scratch(const std::string& name) { return test::scratch_dir("phi3_" + name); }

const std::string config_json = R"({"model_type": "phi3", "hidden_size": 32, "num_attention_heads": 4,
  "num_key_value_heads": 2, "intermediate_size": 48, "num_hidden_layers": 1, "vocab_size": 64,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": false, "max_position_embeddings": 64,
  "sliding_window": 47})";

// A tensor whose every entry names its place: row r, column c holds r * 1000 + c (exact in F32).
Tensor numbered(std::int64_t rows, std::int64_t cols) {
  Tensor t{"F32", {rows, cols}, {}};
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) t.values.push_back(double(r * 1000 + c));
  return t;
}

// transformers' Phi3Attention: query = qkv[..., :heads*d], key the next kv_heads*d, value the rest; Phi3MLP: gate,
// up = gate_up_proj(x).chunk(2). nn.Linear stores out x in, so output feature o is row o of the tensor.
TEST(Phi3, FusedProjectionsSplitInTransformersOrder) {
  const auto dir = scratch("fused");
  std::ofstream(dir / "config.json") << config_json;
  const ModelConfig c = load_model_config(dir.string());
  ASSERT_EQ(c.arch, "phi3");
  EXPECT_EQ(c.sliding_window, 47);
  EXPECT_EQ(c.head_width(), 8);
  std::map<std::string, Tensor> t;
  t["model.layers.0.self_attn.qkv_proj.weight"] = numbered(32 + 2 * 16, 32);
  t["model.layers.0.self_attn.o_proj.weight"] = numbered(32, 32);
  t["model.layers.0.mlp.gate_up_proj.weight"] = numbered(2 * 48, 32);
  t["model.layers.0.mlp.down_proj.weight"] = numbered(32, 48);
  for (const char* n : {"model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight", "model.norm.weight"})
    t[n] = Tensor{"F32", {32}, std::vector<double>(32, 1.0)};
  t["model.embed_tokens.weight"] = numbered(64, 32);
  t["lm_head.weight"] = numbered(64, 32);
  write_safetensors((dir / "model.safetensors").string(), t);
  const Weights<double> w = make_weights(c, 0);
  const LayerWeights<double>& l = w.layers[0];
  // wq is in x out: wq(i, o) = tensor row o, column i.
  EXPECT_EQ(l.wq(5, 7), 7 * 1000 + 5);
  EXPECT_EQ(l.wk(5, 3), (32 + 3) * 1000 + 5);
  EXPECT_EQ(l.wv(2, 15), (32 + 16 + 15) * 1000 + 2);
  EXPECT_EQ(l.w1(4, 47), 47 * 1000 + 4);         // gate: the first half
  EXPECT_EQ(l.w3(4, 0), (48 + 0) * 1000 + 4);    // up: the second half
  EXPECT_EQ(l.w3(31, 47), (48 + 47) * 1000 + 31);
}

// The same parameters stored fused (Phi-3) and apart (Llama) run the same forward, bit for bit, under a plan that
// rounds: the storage is not part of the arithmetic.
TEST(Phi3, FusedAndSeparateStorageRunTheSameBits) {
  const auto dir = scratch("same");
  ModelConfig phi = parse_model_config("[model]\narch = \"phi3\"\nwidth = 64\nheads = 4\nkv_heads = 2\nffn = 96\n"
                                       "depth = 2\nvocab = 100\ntokens = 16\n", "phi.toml");
  const Weights<double> w = make_weights(phi, 4);
  save_safetensors_weights((dir / "phi.safetensors").string(), phi, w);
  ModelConfig llama = phi;
  llama.arch = "llama";
  save_safetensors_weights((dir / "llama.safetensors").string(), llama, w);
  EXPECT_TRUE(read_safetensors((dir / "phi.safetensors").string()).contains("layers.1.mlp.gate_up_proj.weight"));
  EXPECT_TRUE(read_safetensors((dir / "llama.safetensors").string()).contains("layers.1.mlp.up_proj.weight"));
  phi.init.weights = (dir / "phi.safetensors").string();
  llama.init.weights = (dir / "llama.safetensors").string();
  const ModelInput<double> in = make_input(phi, 1);
  EmulatedBackend a(plan_preset("autocast-bf16")), b(plan_preset("autocast-bf16"));
  const Matrix<double> x = forward(a, phi, make_weights(phi, 0), in), y = forward(b, llama, make_weights(llama, 0), in);
  EXPECT_EQ(x.data, y.data);
  EXPECT_EQ(x.rows, 16);
}

TEST(Phi3, FieldsNotModelledAreRefusedByName) {
  const auto dir = scratch("bad");
  auto error_with = [&](const std::string& extra) {
    std::ofstream(dir / "config.json") << config_json.substr(0, config_json.size() - 1) + ", " + extra + "}";
    try {
      load_model_config(dir.string());
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_with(R"("partial_rotary_factor": 0.75)").find("'partial_rotary_factor'"), std::string::npos);
  // transformers 5.x writes it inside rope_parameters (as its Phi3Config saves: results/hf/models/phi3)
  EXPECT_NE(error_with(R"("rope_parameters": {"rope_theta": 10000.0, "rope_type": "default", "partial_rotary_factor": 0.75})")
                .find("rope_parameters: field 'partial_rotary_factor'"),
            std::string::npos);
  EXPECT_EQ(error_with(R"("rope_parameters": {"rope_theta": 10000.0, "rope_type": "default", "partial_rotary_factor": 1.0})"), "");
  EXPECT_NE(error_with(R"("rope_scaling": {"type": "longrope", "short_factor": [1.0], "long_factor": [1.0]})").find("'rope_type'"),
            std::string::npos);
  EXPECT_EQ(error_with(R"("partial_rotary_factor": 1.0)"), "");
}

}  // namespace
}  // namespace lpsim
