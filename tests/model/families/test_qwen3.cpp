// Qwen3 as a family description (src/model/families/qwen3.cpp): config.json onto the recipe, its tensor names,
// and QK-norm in the one forward against an independent oracle (Eigen) and a property it must have.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "lpsim/config/config_error.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/safetensors.hpp"
#include "support/eigen_transformer.hpp"
#include "support/hf_config_dir.hpp"
#include "support/scratch_dir.hpp"

namespace lpsim {
namespace {

std::filesystem::path scratch(const std::string& name) { return test::scratch_dir("qwen3_" + name); }

// Hidden 64 with head_dim 32 (Qwen3 sets it apart from hidden / heads), 4 query and 2 key/value heads.
const std::string config_json = R"({"model_type": "qwen3", "hidden_size": 64, "num_attention_heads": 4,
  "num_key_value_heads": 2, "head_dim": 32, "intermediate_size": 96, "num_hidden_layers": 2, "vocab_size": 128,
  "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": true, "max_position_embeddings": 64})";

ModelConfig toml_qwen3() {
  return parse_model_config(R"([model]
arch = "qwen3"
width = 64
heads = 4
kv_heads = 2
head_dim = 32
ffn = 96
depth = 2
vocab = 128
tokens = 12
tie_word_embeddings = true
[init]
norm_gain = 1.0
)", "qwen3.toml");
}

TEST(Qwen3, ConfigJsonAndCheckpointNamesRoundTrip) {
  const auto dir = scratch("dir");
  std::ofstream(dir / "config.json") << config_json;
  ModelConfig made = toml_qwen3();
  made.tokens = 32;
  Weights<double> w = make_weights(made, 3);
  for (auto& l : w.layers)  // gains apart from 1 so that a swapped or missing norm shows
    for (std::size_t i = 0; i < l.q_norm.gamma.size(); ++i) l.q_norm.gamma[i] = 0.5 + i / 64.0, l.k_norm.gamma[i] = 1.5 - i / 64.0;
  save_safetensors_weights((dir / "model.safetensors").string(), made, w);
  const auto names = read_safetensors((dir / "model.safetensors").string());
  EXPECT_TRUE(names.contains("layers.1.self_attn.q_norm.weight"));
  EXPECT_EQ(names.at("layers.1.self_attn.k_norm.weight").shape, (std::vector<std::int64_t>{32}));
  EXPECT_EQ(names.at("layers.0.self_attn.q_proj.weight").shape, (std::vector<std::int64_t>{128, 64}));  // out x in
  EXPECT_FALSE(names.contains("lm_head.weight"));  // tied

  const ModelConfig c = load_model_config(dir.string());
  EXPECT_EQ(c.arch, "qwen3");
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.head_width(), 32);
  EXPECT_EQ(c.q_width(), 128);
  EXPECT_EQ(c.kv_head_count(), 2);
  EXPECT_FALSE(c.has_qkv_bias());
  EXPECT_TRUE(c.norm_cast && c.final_norm && c.lm_head && c.tie_word_embeddings);
  EXPECT_EQ(c.rope.theta, 1e6);
  const Weights<double> back = make_weights(c, 0);
  for (int l = 0; l < 2; ++l) {
    EXPECT_EQ(back.layers[l].q_norm.gamma, w.layers[l].q_norm.gamma);
    EXPECT_EQ(back.layers[l].k_norm.gamma, w.layers[l].k_norm.gamma);
    EXPECT_EQ(back.layers[l].wq.data, w.layers[l].wq.data);
    EXPECT_EQ(back.layers[l].w3.data, w.layers[l].w3.data);
  }
}

TEST(Qwen3, ConfigFieldsNotModelledAreRefusedByName) {
  const auto dir = scratch("bad");
  auto with = [&](const std::string& extra) { return test::config_error_with(dir, config_json, extra); };
  EXPECT_NE(with(R"("use_sliding_window": true)").find("'use_sliding_window'"), std::string::npos);
  EXPECT_NE(with(R"("attention_bias": true)").find("'attention_bias'"), std::string::npos);
  EXPECT_NE(with(R"("layer_types": ["full_attention", "sliding_attention"])").find("'layer_types'"), std::string::npos);
  EXPECT_EQ(with(R"("layer_types": ["full_attention", "full_attention"])"), "");
  EXPECT_NE(with(R"("hidden_act": "gelu")").find("'hidden_act'"), std::string::npos);
  EXPECT_NE(with(R"("rope_parameters": {"rope_type": "yarn", "factor": 4.0})").find("'rope_type'"), std::string::npos);
  // Without head_dim, Qwen3Config's default of 128 applies (not hidden / heads = 16).
  std::string no_head_dim = config_json;
  no_head_dim.replace(no_head_dim.find(R"("head_dim": 32, )"), 16, "");
  std::ofstream(dir / "config.json") << no_head_dim;
  EXPECT_EQ(load_model_config(dir.string()).head_width(), 128);
}

Matrix<double> attention_tap(const ModelConfig& c, const Weights<double>& w, const ModelInput<double>& in) {
  EmulatedBackend be(plan_preset("fp64"));
  Matrix<double> out;
  forward(be, c, w, in, TapSink<double>([&](int layer, Tap t, const Matrix<double>& m) {
    if (layer == 0 && t == Tap::attn) out = m;
  }));
  return out;
}

double relative(const Matrix<double>& a, const Matrix<double>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) num += (a.data[i] - b.data[i]) * (a.data[i] - b.data[i]), den += b.data[i] * b.data[i];
  return std::sqrt(num / den);
}

// QK-norm divides each query and key head by its RMS: with eps = 0 the attention cannot see a positive scale of
// W_Q or W_K. Without QK-norm the same scaling changes the attention, so the test can fail.
TEST(Qwen3, QkNormMakesAttentionBlindToTheQueryAndKeyScale) {
  ModelConfig c = toml_qwen3();
  c.norm_eps = 0;
  const Weights<double> w = make_weights(c, 1);
  const ModelInput<double> in = make_input(c, 2);
  Weights<double> scaled = w;
  for (double& v : scaled.layers[0].wq.data) v *= 8;
  for (double& v : scaled.layers[0].wk.data) v *= 0.25;
  EXPECT_LT(relative(attention_tap(c, scaled, in), attention_tap(c, w, in)), 1e-13);
  c.qk_norm = false;
  EXPECT_GT(relative(attention_tap(c, scaled, in), attention_tap(c, w, in)), 1e-2);
}

// Layer 0's attention branch against Eigen: RMSNorm, projections, per-head RMSNorm of q and k with their gains,
// rotation by the model's tables, causal softmax(q k^T / sqrt(d)), v, the output projection.
TEST(Qwen3, AttentionBranchMatchesAnEigenOracle) {
  const ModelConfig c = toml_qwen3();
  Weights<double> w = make_weights(c, 5);
  for (std::size_t i = 0; i < 32; ++i)
    w.layers[0].q_norm.gamma[i] = 0.75 + i / 40.0, w.layers[0].k_norm.gamma[i] = 1.25 - i / 50.0;
  const ModelInput<double> in = make_input(c, 6);
  using M = test::Mat;
  using test::to_eigen;
  const int n = c.tokens, dh = 32;
  auto rms = [&](const M& x, const NormWeights<double>& g) { return test::layer_norm(x, g, c.norm_eps, true); };
  auto rotate = [&](const M& x) { return test::rotary(x, w.rope_cos, w.rope_sin); };
  M x(n, c.width);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < c.width; ++j) x(i, j) = w.wte(in.ids[i], j);
  const auto& lw = w.layers[0];
  const M h = rms(x, lw.norm1);
  const M q = h * to_eigen(lw.wq), k = h * to_eigen(lw.wk), v = h * to_eigen(lw.wv);
  M heads(n, 4 * dh);
  for (int head = 0; head < 4; ++head) {
    const int g = head / 2;
    const M qh = rotate(rms(q.middleCols(head * dh, dh), lw.q_norm));
    const M kh = rotate(rms(k.middleCols(g * dh, dh), lw.k_norm));
    const M s = qh * kh.transpose() / std::sqrt(double(dh));
    heads.middleCols(head * dh, dh) = test::softmax(s, true) * v.middleCols(g * dh, dh);
  }
  const Matrix<double> got = attention_tap(c, w, in);
  EXPECT_LT(relative(got, test::from_eigen(heads * to_eigen(lw.wo))), 1e-13);
}

}  // namespace
}  // namespace lpsim
