// Gemma 2 as a family description (src/model/families/gemma2.cpp): config.json onto the recipe, its tensor names,
// the whole forward in float64 against an independent oracle (Eigen), and the dtypes of its new steps under the
// presets (the embedding's normalizer rounded to the stream's dtype, the post-norms cast to the branch's).
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "lpsim/config/config_error.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/safetensors.hpp"
#include "support/eigen_transformer.hpp"
#include "support/hf_config_dir.hpp"
#include "support/scratch_dir.hpp"

namespace lpsim {
namespace {

const std::string config_json = R"({"model_type": "gemma2", "hidden_size": 64, "num_attention_heads": 4,
  "num_key_value_heads": 2, "head_dim": 32, "intermediate_size": 96, "num_hidden_layers": 2, "vocab_size": 128,
  "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "query_pre_attn_scalar": 24, "attn_logit_softcapping": 50.0,
  "final_logit_softcapping": 30.0, "sliding_window": 4096, "hidden_activation": "gelu_pytorch_tanh",
  "max_position_embeddings": 64})";

ModelConfig toml_gemma2(int depth = 2) {
  ModelConfig c = parse_model_config(R"([model]
arch = "gemma2"
width = 64
heads = 4
kv_heads = 2
head_dim = 32
ffn = 96
vocab = 128
tokens = 12
score_scalar = 24
attn_softcap = 5.0
final_softcap = 3.0
)", "gemma2.toml");
  c.depth = depth;
  return c;
}

TEST(Gemma2, ConfigJsonAndCheckpointNamesRoundTrip) {
  const auto dir = test::scratch_dir("gemma2_dir");
  std::ofstream(dir / "config.json") << config_json;
  const ModelConfig c = load_model_config(dir.string());
  EXPECT_EQ(c.arch, "gemma2");
  EXPECT_EQ(c.position, NormPosition::sandwich);
  EXPECT_EQ(c.norm_gain_offset, 1);
  EXPECT_TRUE(c.embed_scale && c.tie_word_embeddings && c.final_norm && c.lm_head);
  EXPECT_EQ(c.activation, Activation::gelu_tanh);
  EXPECT_FALSE(c.activation_chain);
  EXPECT_EQ(c.mlp, Mlp::gated);
  EXPECT_EQ(c.score_scalar, 24);
  EXPECT_EQ(c.attn_softcap, 50);
  EXPECT_EQ(c.final_softcap, 30);
  EXPECT_EQ(c.head_width(), 32);
  ModelConfig made = toml_gemma2();
  made.tokens = 32;
  Weights<double> w = make_weights(made, 3);
  for (auto& l : w.layers)  // four different gains per block so that a swapped norm shows
    for (std::size_t i = 0; i < 64; ++i)
      l.norm1.gamma[i] = i / 128.0, l.post_norm1.gamma[i] = -0.1875, l.norm2.gamma[i] = 0.25, l.post_norm2.gamma[i] = -(i / 256.0);
  save_safetensors_weights((dir / "model.safetensors").string(), made, w);
  const auto names = read_safetensors((dir / "model.safetensors").string());
  EXPECT_TRUE(names.contains("layers.1.pre_feedforward_layernorm.weight"));
  EXPECT_TRUE(names.contains("layers.1.post_feedforward_layernorm.weight"));
  EXPECT_FALSE(names.contains("lm_head.weight"));
  const Weights<double> back = make_weights(load_model_config(dir.string()), 0);
  for (int l = 0; l < 2; ++l) {
    EXPECT_EQ(back.layers[l].norm1.gamma, w.layers[l].norm1.gamma);
    EXPECT_EQ(back.layers[l].post_norm1.gamma, w.layers[l].post_norm1.gamma);
    EXPECT_EQ(back.layers[l].norm2.gamma, w.layers[l].norm2.gamma);
    EXPECT_EQ(back.layers[l].post_norm2.gamma, w.layers[l].post_norm2.gamma);
    EXPECT_EQ(back.layers[l].post_norm2.gain_offset, 1);
  }
  EXPECT_EQ(back.final_norm.gain_offset, 1);
}

TEST(Gemma2, ConfigFieldsAreReadOrRefusedByName) {
  const auto dir = test::scratch_dir("gemma2_bad");
  auto with = [&](const std::string& extra) { return test::config_error_with(dir, config_json, extra); };
  EXPECT_NE(with(R"("hidden_activation": "gelu")").find("'hidden_activation'"), std::string::npos);
  EXPECT_NE(with(R"("attention_bias": true)").find("'attention_bias'"), std::string::npos);
  EXPECT_NE(with(R"("attn_logit_softcapping": -1)").find("'attn_logit_softcapping'"), std::string::npos);
  std::ofstream(dir / "config.json") << R"({"model_type": "gemma2", "hidden_size": 64, "num_attention_heads": 4,
    "num_hidden_layers": 1, "intermediate_size": 96, "vocab_size": 128, "head_dim": 16,
    "attn_logit_softcapping": null, "final_logit_softcapping": null, "max_position_embeddings": 16})";
  const ModelConfig c = load_model_config(dir.string());
  EXPECT_EQ(c.attn_softcap, 0);  // null: none
  EXPECT_EQ(c.final_softcap, 0);
  EXPECT_EQ(c.score_scalar, 256);  // Gemma2Config's default
  EXPECT_EQ(c.sliding_window, 0);
  ModelConfig long_input = toml_gemma2();
  long_input.sliding_window = 8;
  EXPECT_NE(validate(long_input).find("sliding window"), std::string::npos);
}

using M = test::Mat;
using test::to_eigen;

// The whole forward of a one-block Gemma 2 in float64 against Eigen, written from Gemma2's modelling code: the
// embedding times sqrt(width), RMSNorm x rstd (1 + w), q, k, v, RoPE, scores times 24^-1/2 soft-capped at 5,
// causal softmax, o_proj, its post-norm, the residual; the same around GeGLU; the final norm, the tied head and
// the logits soft-capped at 3.
TEST(Gemma2, ForwardMatchesAnEigenOracle) {
  const ModelConfig c = toml_gemma2(1);
  Weights<double> w = make_weights(c, 5);
  for (std::size_t i = 0; i < 64; ++i)
    w.layers[0].norm1.gamma[i] = 0.1 - 0.003 * i, w.layers[0].post_norm1.gamma[i] = 0.5,
    w.layers[0].norm2.gamma[i] = -0.25 + 0.01 * i, w.layers[0].post_norm2.gamma[i] = 0.002 * i, w.final_norm.gamma[i] = 0.2;
  const ModelInput<double> in = make_input(c, 6);
  const int n = c.tokens, dh = 32;
  auto rms = [&](const M& x, const std::vector<double>& g) {  // Gemma's gains: 1 + w
    NormWeights<double> gain{g, {}};
    for (double& v : gain.gamma) v += 1;
    return test::layer_norm(x, gain, c.norm_eps, true);
  };
  auto rotate = [&](const M& x) { return test::rotary(x, w.rope_cos, w.rope_sin); };
  M x(n, 64);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < 64; ++j) x(i, j) = w.wte(in.ids[i], j) * std::sqrt(64.0);
  const auto& lw = w.layers[0];
  const M h = rms(x, lw.norm1.gamma);
  const M q = h * to_eigen(lw.wq), k = h * to_eigen(lw.wk), v = h * to_eigen(lw.wv);
  M heads(n, 4 * dh);
  for (int head = 0; head < 4; ++head) {
    const int g = head / 2;
    M s = rotate(q.middleCols(head * dh, dh)) * rotate(k.middleCols(g * dh, dh)).transpose() / std::sqrt(24.0);
    s = ((s / 5.0).array().tanh() * 5.0).matrix();
    heads.middleCols(head * dh, dh) = test::softmax(s, true) * v.middleCols(g * dh, dh);
  }
  const M mid = x + rms(heads * to_eigen(lw.wo), lw.post_norm1.gamma);
  const M h2 = rms(mid, lw.norm2.gamma);
  M u = h2 * to_eigen(lw.w1);
  const M up = h2 * to_eigen(lw.w3);
  for (int i = 0; i < u.size(); ++i) u.data()[i] = test::activation(Activation::gelu_tanh, u.data()[i]) * up.data()[i];
  const M out = mid + rms(u * to_eigen(lw.w2), lw.post_norm2.gamma);
  const M want = ((rms(out, w.final_norm.gamma) * to_eigen(w.lm_head) / 3.0).array().tanh() * 3.0).matrix();
  EmulatedBackend be(plan_preset("fp64"));
  const Matrix<double> got = forward(be, c, w, in);
  EXPECT_LT((to_eigen(got) - want).norm() / want.norm(), 1e-13);
  EXPECT_LE(to_eigen(got).cwiseAbs().maxCoeff(), 3.0);  // capped
}

bool all_bf16(const Matrix<double>& m) {
  for (double v : m.data)
    if (round_to(v, formats::bf16, Rounding::nearest_even) != v) return false;
  return true;
}

// Under pure-bf16 the normalizer is bf16(sqrt(72)) = 8.5, not 8.485...: each embedded value is bf16(w 8.5) of the
// bf16 table. Under autocast-bf16 the sandwich's post-norms return the branch's dtype (bf16), not the fp32 stream's.
TEST(Gemma2, NormalizerAndPostNormsRoundToTheirDtypes) {
  ModelConfig c = toml_gemma2(0);
  c.width = 72, c.heads = 4, c.head_dim = 18, c.final_norm = false, c.lm_head = false, c.final_softcap = 0;
  const Weights<double> w = make_weights(c, 7);
  const ModelInput<double> in = make_input(c, 8);
  EmulatedBackend pure(plan_preset("pure-bf16"));
  const Matrix<double> embedded = forward(pure, c, pure.stored_params(w), in);
  const double normalizer = round_to(std::sqrt(72.0), formats::bf16, Rounding::nearest_even);
  ASSERT_EQ(normalizer, 8.5);
  int differs_from_exact = 0;
  for (int t = 0; t < c.tokens; ++t)
    for (int j = 0; j < c.width; ++j) {
      const double table = round_to(w.wte(in.ids[t], j), formats::bf16, Rounding::nearest_even);
      const double want = round_to(double(float(table * normalizer)), formats::bf16, Rounding::nearest_even);
      EXPECT_EQ(embedded(t, j), want);
      differs_from_exact += round_to(double(float(table * std::sqrt(72.0))), formats::bf16, Rounding::nearest_even) != want;
    }
  EXPECT_GT(differs_from_exact, 0);  // the test sees the normalizer's rounding

  ModelConfig one = toml_gemma2(1);
  const Weights<double> w1 = make_weights(one, 9);
  EmulatedBackend autocast(plan_preset("autocast-bf16"));
  Matrix<double> attn, mid;
  forward(autocast, one, w1, make_input(one, 9), TapSink<double>([&](int, Tap t, const Matrix<double>& m) {
            if (t == Tap::attn) attn = m;
            if (t == Tap::mid) mid = m;
          }));
  EXPECT_TRUE(all_bf16(attn));
  EXPECT_FALSE(all_bf16(mid));  // the stream stays fp32
}

}  // namespace
}  // namespace lpsim
