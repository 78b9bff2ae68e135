// Qwen3-MoE as a family description (src/model/families/qwen3_moe.cpp): config.json onto the recipe (QK-norm,
// moe_intermediate_size, norm_topk_prob), its tensor names, the dense-layer fields it refuses, and the routing
// weights cast to the logits' dtype as transformers does (Mixtral keeps them in fp32).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "lpsim/config/config_error.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/safetensors.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "support/hf_config_dir.hpp"
#include "support/scratch_dir.hpp"

namespace lpsim {
namespace {

const std::string config_json = R"({"model_type": "qwen3_moe", "hidden_size": 64, "num_attention_heads": 4,
  "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 96, "moe_intermediate_size": 40,
  "num_hidden_layers": 2, "vocab_size": 128, "num_experts": 6, "num_experts_per_tok": 3, "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0, "tie_word_embeddings": true, "max_position_embeddings": 64})";

TEST(Qwen3Moe, ConfigJsonAndCheckpointNamesRoundTrip) {
  const auto dir = test::scratch_dir("qwen3_moe_dir");
  std::ofstream(dir / "config.json") << config_json;
  ModelConfig c = load_model_config(dir.string());
  EXPECT_EQ(c.arch, "qwen3_moe");
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.experts, 6);
  EXPECT_EQ(c.experts_per_token, 3);
  EXPECT_EQ(c.expert_width(), 40);
  EXPECT_FALSE(c.router_renormalize);  // norm_topk_prob's default
  EXPECT_TRUE(c.router_weights_cast);
  const Weights<double> w = make_weights([&] {
    ModelConfig init = c;
    init.init.weights.clear();
    return init;
  }(), 3);
  // No checkpoint yet: make_weights drew them; write them under the family's names and read them back.
  save_safetensors_weights((dir / "model.safetensors").string(), c, w);
  const auto names = read_safetensors((dir / "model.safetensors").string());
  EXPECT_EQ(names.at("layers.0.mlp.gate.weight").shape, (std::vector<std::int64_t>{6, 64}));
  EXPECT_EQ(names.at("layers.1.mlp.experts.5.gate_proj.weight").shape, (std::vector<std::int64_t>{40, 64}));
  EXPECT_EQ(names.at("layers.1.mlp.experts.5.down_proj.weight").shape, (std::vector<std::int64_t>{64, 40}));
  EXPECT_TRUE(names.contains("layers.1.self_attn.q_norm.weight"));
  const Weights<double> back = make_weights(load_model_config(dir.string()), 0);
  EXPECT_EQ(back.layers[1].router.data, w.layers[1].router.data);
  EXPECT_EQ(back.layers[1].experts[5].w3.data, w.layers[1].experts[5].w3.data);

  std::ofstream(dir / "config.json") << config_json.substr(0, config_json.size() - 1) + R"(, "norm_topk_prob": true})";
  EXPECT_TRUE(load_model_config(dir.string()).router_renormalize);
}

TEST(Qwen3Moe, DenseLayersAmongSparseOnesAreRefusedByName) {
  const auto dir = test::scratch_dir("qwen3_moe_bad");
  auto with = [&](const std::string& extra) { return test::config_error_with(dir, config_json, extra); };
  EXPECT_NE(with(R"("decoder_sparse_step": 2)").find("'decoder_sparse_step'"), std::string::npos);
  EXPECT_NE(with(R"("mlp_only_layers": [0])").find("'mlp_only_layers'"), std::string::npos);
  EXPECT_EQ(with(R"("mlp_only_layers": [])"), "");
  EXPECT_NE(with(R"("use_sliding_window": true)").find("'use_sliding_window'"), std::string::npos);
}

// Under autocast-bf16 the router's logits are bf16, and Qwen3-MoE casts the selected weights to them: every weight
// the forward used is a bf16 number. Mixtral's recipe (no cast) keeps fp32 weights, most of which bf16 cannot hold.
TEST(Qwen3Moe, RoutingWeightsAreCastToTheLogitsDtype) {
  ModelConfig c = parse_model_config(R"([model]
arch = "qwen3_moe"
width = 64
heads = 4
kv_heads = 2
head_dim = 16
ffn = 96
depth = 1
vocab = 128
tokens = 16
)", "qwen3_moe.toml");
  const Weights<double> w = make_weights(c, 11);
  const ModelInput<double> in = make_input(c, 12);
  auto bf16_weights = [&](const ModelConfig& cfg) {
    EmulatedBackend be(plan_preset("autocast-bf16"));
    const Taps<double> taps = emulated_taps(be, cfg, w, in);
    int held = 0;
    for (double v : taps.routes.at(0).weights) held += round_to(v, formats::bf16, Rounding::nearest_even) == v;
    return double(held) / double(taps.routes.at(0).weights.size());
  };
  EXPECT_EQ(bf16_weights(c), 1.0);
  c.router_weights_cast = false;
  EXPECT_LT(bf16_weights(c), 0.5);
}

}  // namespace
}  // namespace lpsim
