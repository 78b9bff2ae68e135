// Hugging Face model directories as transformers writes them, and lpsim's prediction of the error that
// transformers' own classes showed on the H200 (results/hf, scripts/hf_observe.py).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "lpsim/config/config_error.hpp"
#include "lpsim/hw/hf_observations.hpp"
#include "lpsim/model/hf_config.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/safetensors.hpp"
#include "support/scratch_dir.hpp"
#include "lpsim/sweep/sweep_config.hpp"

namespace lpsim {
namespace {

const std::string hf_dir = std::string(LPSIM_SOURCE_DIR) + "/results/hf";

std::filesystem::path scratch(const std::string& name) { return test::scratch_dir("hf_" + name); }

void write(const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; }

std::string error_of(const std::string& dir) {
  try {
    load_model_config(dir);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// The replay CI runs: every tap of every family and mode within 5% of what transformers showed, top-1 agreement
// within 0.02. Seven rows are known outside (results/hf/README.md lists them); they must stay within 10% / two tokens.
TEST(HfModels, PredictionsMatchTransformersOnTheGpu) {
  const std::vector<HfComparison> rows = compare_hf_observations(hf_dir);
  // 11 models (7 model types, 4 with sharper attention) x 4 modes x eager and sdpa: every block tap, final norm,
  // logits. Qwen3 (QK-norm, sharded) and Phi-3 (fused projections) were added with their family descriptions, then
  // Gemma 2 (and its sharp variant) and Gemma 3, eager only (sdpa cannot soft-cap): 3 x 4 x 11 rows.
  ASSERT_EQ(rows.size(), 1084u);
  const std::set<std::string> known = {"vit|autocast-fp16|2|attn", "vit|autocast-fp16+flash|1|attn",
                                       "vit-sharp|pure-fp16|1|attn", "llama-sharp|pure-fp16|2|ffn",
                                       "mistral|pure-bf16+flash|3|logits", "qwen3-sharp|autocast-fp16+flash|2|attn",
                                       "gemma2|pure-bf16|3|logits"};
  std::set<std::string> outside;
  for (const HfComparison& c : rows) {
    const std::string id = c.model + "|" + c.mode + "|" + std::to_string(c.layer) + "|" + c.tap;
    if (!within(c, HfTolerance{})) outside.insert(id);
    if (known.contains(id)) {
      EXPECT_NEAR(c.ratio(), 1.0, 0.10) << id;
      if (c.tap == "logits") EXPECT_LE(std::fabs(c.top1_predicted - c.top1_observed), 2.0 / 32 + 1e-12) << id;
    }
  }
  for (const std::string& id : outside) EXPECT_TRUE(known.contains(id)) << id << " is outside the tolerance";
}

TEST(HfModels, ConfigFieldsMapOntoTheLlamaFamily) {
  const ModelConfig llama = load_model_config(hf_dir + "/models/llama");
  EXPECT_EQ(llama.arch, "llama");
  EXPECT_EQ(llama.width, 64);
  EXPECT_EQ(llama.heads, 4);
  EXPECT_EQ(llama.kv_head_count(), 2);
  EXPECT_EQ(llama.head_width(), 16);
  EXPECT_EQ(llama.ffn, 172);
  EXPECT_EQ(llama.depth, 3);
  EXPECT_EQ(llama.vocab, 256);
  EXPECT_EQ(llama.rope.scaling, "llama3");
  EXPECT_EQ(llama.rope.theta, 500000.0);
  EXPECT_EQ(llama.rope.original_max_positions, 16);
  EXPECT_FALSE(llama.tie_word_embeddings);
  EXPECT_FALSE(llama.has_qkv_bias());
  const ModelConfig qwen = load_model_config(hf_dir + "/models/qwen2");
  EXPECT_TRUE(qwen.has_qkv_bias());
  EXPECT_TRUE(qwen.tie_word_embeddings);
  EXPECT_EQ(qwen.rope.scaling, "default");
  const ModelConfig gpt2 = load_model_config(hf_dir + "/models/gpt2");
  EXPECT_TRUE(gpt2.activation_chain);  // gelu_new
  EXPECT_TRUE(gpt2.lm_head && gpt2.final_norm && gpt2.tie_word_embeddings);
  const ModelConfig vit = load_model_config(hf_dir + "/models/vit");
  EXPECT_EQ(vit.tokens, 17);
  EXPECT_TRUE(vit.final_norm);
  EXPECT_FALSE(vit.lm_head);
}

// transformers 4.x writes rope_theta and rope_scaling at the top level, 5.x one rope_parameters object.
TEST(HfModels, Transformers4RopeFieldsReadAsTheFiveXObject) {
  const auto dir = scratch("rope4");
  write(dir / "config.json", R"({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
    "num_key_value_heads": 2, "intermediate_size": 172, "num_hidden_layers": 3, "vocab_size": 256,
    "rms_norm_eps": 1e-06, "rope_theta": 500000.0, "tie_word_embeddings": false,
    "rope_scaling": {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 16}})");
  std::filesystem::copy_file(hf_dir + "/models/llama/model.safetensors", dir / "model.safetensors");
  const ModelConfig four = load_model_config(dir.string()), five = load_model_config(hf_dir + "/models/llama");
  EXPECT_EQ(four.rope.theta, five.rope.theta);
  EXPECT_EQ(four.rope.scaling, five.rope.scaling);
  EXPECT_EQ(four.rope.factor, five.rope.factor);
  const Weights<double> a = make_weights(four, 0), b = make_weights(five, 0);
  EXPECT_EQ(a.rope_cos.data, b.rope_cos.data);
  EXPECT_EQ(a.layers[2].w3.data, b.layers[2].w3.data);
}

// The rotary tables against the textbook formula in long double: transformers computes them in fp32, so they
// agree to fp32's rounding (a few ulps after the fp32 angle), and the llama3 rule leaves the highest frequency
// alone and divides the lowest by the factor.
TEST(HfModels, RotaryTablesAreTheFp32Tables) {
  ModelConfig c = load_model_config(hf_dir + "/models/qwen2");  // default rope, theta 1e6
  const Weights<double> w = make_weights(c, 0);
  const int d = c.head_width();
  ASSERT_EQ(w.rope_cos.rows, c.tokens);
  for (int t = 0; t < c.tokens; ++t)
    for (int i = 0; i < d / 2; ++i) {
      const long double angle = t * std::pow(1e6L, -2.0L * i / d);
      EXPECT_NEAR(w.rope_cos(t, i), std::cos(angle), 4e-7L * (1 + t)) << t << " " << i;
      EXPECT_NEAR(w.rope_sin(t, i + d / 2), std::sin(angle), 4e-7L * (1 + t)) << t << " " << i;
      EXPECT_EQ(double(float(w.rope_cos(t, i))), w.rope_cos(t, i));  // an fp32 value
    }
  const ModelConfig l3 = load_model_config(hf_dir + "/models/llama");
  const Weights<double> v = make_weights(l3, 0);
  // i = 0: frequency 1, wavelength 2 pi between 16/4 and 16/1: smoothed, s = (16 / (2 pi) - 1) / (4 - 1), frequency
  // (1 - s) / 8 + s; the lowest frequency: wavelength > 16, divided by 8.
  const double s = (16 / (2 * M_PI) - 1) / 3, f0 = (1 - s) / 8 + s;
  EXPECT_NEAR(v.rope_sin(5, 0), std::sin(5 * f0), 1e-6);
  const int last = l3.head_width() / 2 - 1;
  const double low = std::pow(500000.0, -2.0 * last / l3.head_width()) / 8;
  EXPECT_NEAR(v.rope_sin(31, last), std::sin(31 * low), 1e-6);
}

TEST(HfModels, ShardedDirectoryReadsLikeTheSingleFile) {
  const auto dir = scratch("sharded");
  std::filesystem::copy_file(hf_dir + "/models/llama/config.json", dir / "config.json");
  const auto all = read_safetensors(hf_dir + "/models/llama/model.safetensors");
  std::map<std::string, Tensor> first, second;
  std::string map;
  int i = 0;
  for (const auto& [name, t] : all) {
    const bool one = i++ % 2 == 0;
    (one ? first : second)[name] = t;
    map += (map.empty() ? "" : ",") + ("\"" + name + "\": \"" + (one ? "a.safetensors" : "b.safetensors") + "\"");
  }
  write_safetensors((dir / "a.safetensors").string(), first);
  write_safetensors((dir / "b.safetensors").string(), second);
  write(dir / "model.safetensors.index.json", "{\"metadata\": {}, \"weight_map\": {" + map + "}}");
  const Weights<double> a = make_weights(load_model_config(dir.string()), 0);
  const Weights<double> b = make_weights(load_model_config(hf_dir + "/models/llama"), 0);
  EXPECT_EQ(a.lm_head.data, b.lm_head.data);
  EXPECT_EQ(a.layers[1].wk.data, b.layers[1].wk.data);
  EXPECT_EQ(a.final_norm.gamma, b.final_norm.gamma);
  // A tensor in both shards is an error naming it.
  second["model.norm.weight"] = all.at("model.norm.weight");
  first["model.norm.weight"] = all.at("model.norm.weight");
  write_safetensors((dir / "a.safetensors").string(), first);
  write_safetensors((dir / "b.safetensors").string(), second);
  try {
    make_weights(load_model_config(dir.string()), 0);
    ADD_FAILURE() << "a duplicated tensor was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.norm.weight"), std::string::npos) << e.what();
  }
}

TEST(HfModels, MissingExtraAndMisshapenTensorsAreNamed) {
  const auto all = read_safetensors(hf_dir + "/models/qwen2/model.safetensors");
  auto expect_error = [&](std::map<std::string, Tensor> t, const std::string& name) {
    const auto dir = scratch("bad");
    std::filesystem::copy_file(hf_dir + "/models/qwen2/config.json", dir / "config.json");
    write_safetensors((dir / "model.safetensors").string(), t);
    try {
      make_weights(load_model_config(dir.string()), 0);
      ADD_FAILURE() << name << ": accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  auto missing = all;
  missing.erase("model.layers.1.self_attn.k_proj.bias");
  expect_error(missing, "model.layers.1.self_attn.k_proj.bias");
  auto extra = all;
  extra["model.layers.3.mlp.up_proj.weight"] = all.at("model.layers.0.mlp.up_proj.weight");
  expect_error(extra, "model.layers.3.mlp.up_proj.weight");
  auto misshapen = all;
  misshapen["model.layers.0.self_attn.k_proj.weight"].shape = {16, 128};
  expect_error(misshapen, "model.layers.0.self_attn.k_proj.weight");
}

TEST(HfModels, BadConfigFieldsAreNamed) {
  const auto dir = scratch("config");
  auto expect_field = [&](const std::string& json, const std::string& field) {
    write(dir / "config.json", json);
    EXPECT_NE(error_of(dir.string()).find(field), std::string::npos) << json << " -> " << error_of(dir.string());
  };
  expect_field(R"({"model_type": "bert"})", "model_type");
  expect_field(R"({"hidden_size": 8})", "model_type");
  expect_field(R"({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 8,
                   "num_hidden_layers": 1})", "vocab_size");
  expect_field(R"({"model_type": "llama", "hidden_size": "64"})", "hidden_size");
  expect_field(R"({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 8,
                   "num_hidden_layers": 1, "vocab_size": 10, "hidden_act": "gelu"})", "hidden_act");
  expect_field(R"({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 8,
                   "num_hidden_layers": 1, "vocab_size": 10, "rope_parameters": {"rope_type": "yarn"}})", "rope_type");
  expect_field(R"({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 3,
                   "intermediate_size": 8, "num_hidden_layers": 1, "vocab_size": 10})", "kv_heads");
  // Zero heads divided by zero in validate() (SIGFPE) until the fuzzer found it (tests/fuzz).
  for (const char* gpt2 : {R"({"model_type": "gpt2", "n_embd": 64, "n_head": 0, "n_layer": 1, "vocab_size": 10})",
                           R"({"model_type": "vit", "hidden_size": 64, "num_attention_heads": 0, "num_hidden_layers": 1,
                              "intermediate_size": 8, "image_size": 16, "patch_size": 4})"})
    expect_field(gpt2, "model.heads = 0 is outside 1..4096");
  expect_field("{not json", "does not parse");
  std::filesystem::remove(dir / "config.json");
  EXPECT_NE(error_of(dir.string()).find("without config.json"), std::string::npos);
  EXPECT_NE(error_of("/dev/null").find("not a regular file"), std::string::npos);
}

// A sweep's model may be a directory: its units are the checkpoint's model (model axes override config.json).
TEST(HfModels, SweepsTakeAModelDirectory) {
  const SweepConfig s = parse_sweep("[sweep]\nmodel = \"" + hf_dir + "/models/llama\"\ndiagnostics = false\n"
                                    "[axes]\nplan = [\"fp32\"]\n\"model.tokens\" = [8, 16]\n", "s.toml");
  const SweepPlan plan = expand(s);
  ASSERT_EQ(plan.units.size(), 2u);
  EXPECT_EQ(plan.units[0].model.arch, "llama");
  EXPECT_EQ(plan.units[0].model.kv_head_count(), 2);
  EXPECT_EQ(plan.units[1].model.tokens, 16);
  EXPECT_EQ(plan.units[1].model.init.weights, std::filesystem::absolute(hf_dir + "/models/llama").string());
}

}  // namespace
}  // namespace lpsim
