// Gemma 3 text as a family description (src/model/families/gemma3.cpp): config.json onto the recipe as 4.x and 5.x
// write it (rope_local_base_freq and sliding_window_pattern, or rope_parameters per layer type and layer_types),
// refusals by name, and the per-layer RoPE bases: a sliding-window layer rotates exactly as a model whose only base is
// the local one, a full-attention layer as one whose only base is the global one.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "lpsim/config/config_error.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "support/scratch_dir.hpp"

namespace lpsim {
namespace {

const std::string base_json = R"({"model_type": "gemma3_text", "hidden_size": 64, "num_attention_heads": 4,
  "num_key_value_heads": 2, "head_dim": 32, "intermediate_size": 96, "num_hidden_layers": 4, "vocab_size": 128,
  "rms_norm_eps": 1e-06, "query_pre_attn_scalar": 32, "sliding_window": 512, "max_position_embeddings": 64)";

ModelConfig load(const std::string& extra, std::string* error = nullptr) {
  const auto dir = test::scratch_dir("gemma3");
  std::ofstream(dir / "config.json") << base_json + (extra.empty() ? "" : ", " + extra) + "}";
  try {
    return load_model_config(dir.string());
  } catch (const ConfigError& e) {
    if (!error) throw;
    *error = e.what();
  }
  return {};
}

TEST(Gemma3, ConfigJsonAsTransformers4And5WriteIt) {
  const ModelConfig v4 = load(R"("rope_theta": 1000000.0, "rope_local_base_freq": 10000.0, "rope_scaling": null,
    "sliding_window_pattern": 2, "attn_logit_softcapping": null, "final_logit_softcapping": null)");
  EXPECT_EQ(v4.arch, "gemma3");
  EXPECT_TRUE(v4.qk_norm);
  EXPECT_EQ(v4.position, NormPosition::sandwich);
  EXPECT_EQ(v4.norm_gain_offset, 1);
  EXPECT_TRUE(v4.embed_scale);
  EXPECT_EQ(v4.attn_softcap, 0);
  EXPECT_EQ(v4.final_softcap, 0);
  EXPECT_EQ(v4.rope.theta, 1e6);
  EXPECT_EQ(v4.rope_local_theta, 1e4);
  EXPECT_TRUE(v4.local_layer(0));
  EXPECT_FALSE(v4.local_layer(1));
  const ModelConfig v5 = load(R"("rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 500000.0},
    "sliding_attention": {"rope_type": "default", "rope_theta": 20000.0}},
    "layer_types": ["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"])");
  EXPECT_EQ(v5.rope.theta, 5e5);
  EXPECT_EQ(v5.rope_local_theta, 2e4);
  EXPECT_EQ(v5.sliding_pattern, 3);
  EXPECT_TRUE(v5.local_layer(0) && v5.local_layer(1) && !v5.local_layer(2) && v5.local_layer(3));
  EXPECT_EQ(load("").sliding_pattern, 6);  // Gemma3TextConfig's default
  EXPECT_EQ(load(R"("attn_logit_softcapping": 20.0)").attn_softcap, 20);
}

TEST(Gemma3, FieldsNotModelledAreRefusedByName) {
  std::string e;
  load(R"("rope_scaling": {"rope_type": "linear", "factor": 8.0})", &e);
  EXPECT_NE(e.find("'rope_type'"), std::string::npos) << e;
  e.clear();
  load(R"("rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0}, "sliding_attention": {"rope_type": "default"}})", &e);
  EXPECT_NE(e.find("full_attention"), std::string::npos) << e;
  e.clear();
  load(R"("layer_types": ["full_attention", "sliding_attention", "sliding_attention", "full_attention"])", &e);
  EXPECT_NE(e.find("'layer_types'"), std::string::npos) << e;
}

Matrix<double> attention_tap(const ModelConfig& c, const Weights<double>& w, const ModelInput<double>& in) {
  EmulatedBackend be(plan_preset("fp64"));
  Matrix<double> out;
  forward(be, c, w, in, TapSink<double>([&](int layer, Tap t, const Matrix<double>& m) {
    if (layer == 0 && t == Tap::attn) out = m;
  }));
  return out;
}

ModelConfig one_layer(double global, double local, int pattern) {
  ModelConfig c = load("");
  c.init.weights.clear();  // drawn, not read from the (config-only) directory
  c.depth = 1, c.tokens = 24;
  c.rope.theta = global, c.rope_local_theta = local, c.sliding_pattern = pattern;
  return c;
}

TEST(Gemma3, EachLayerRotatesByItsOwnBase) {
  const ModelConfig sliding = one_layer(1e6, 10, 2), full = one_layer(1e6, 10, 1);
  const ModelInput<double> in = make_input(sliding, 3);
  const Weights<double> w = make_weights(sliding, 3);
  ASSERT_FALSE(w.rope_local_cos.empty());
  auto same_weights_under = [&](ModelConfig c) {  // the same parameters with c's tables
    Weights<double> v = make_weights(c, 3);
    return attention_tap(c, v, in);
  };
  const Matrix<double> local_only = same_weights_under(one_layer(10, 0, 0)), global_only = same_weights_under(one_layer(1e6, 0, 0));
  EXPECT_EQ(attention_tap(sliding, w, in).data, local_only.data);  // layer 0 slides: the local base
  EXPECT_EQ(attention_tap(full, make_weights(full, 3), in).data, global_only.data);  // pattern 1: every layer full
  EXPECT_NE(local_only.data, global_only.data);  // the test can tell the bases apart
}

// Gemma's operations in the references: the double-double forward against MPFR at 256 bits, with soft-capping of
// scores and logits switched on, local and global layers, QK-norm and the sandwich.
TEST(Gemma3, DoubleDoubleReferenceAgreesWithMpfr) {
  ModelConfig c = load("");
  c.init.weights.clear();
  c.depth = 2, c.tokens = 12, c.sliding_pattern = 2, c.attn_softcap = 5, c.final_softcap = 3;
  const Weights<double> w = make_weights(c, 4);
  const ModelInput<double> in = make_input(c, 4);
  const Taps<DD> dd = dd_taps(c, w, in, 4);
  const Taps<Real> mp = reference_taps(256, c, w, in);
  set_reference_bits(128);
  ReferenceCheck check;
  compare_references(check, dd, mp);
  EXPECT_LT(check.fro_rel, 1e-27);
  EXPECT_EQ(dd.size(), mp.size());
}

}  // namespace
}  // namespace lpsim
