#include "lpsim/model/hf_config.hpp"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <optional>
#include <nlohmann/json.hpp>

#include "lpsim/config/config_error.hpp"
#include "util/read_text.hpp"

namespace lpsim {

namespace {

using Json = nlohmann::json;

// Typed reads of config.json that name the field in every error.
struct Fields {
  const Json& j;
  std::string file;

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw ConfigError(fmt::format("{}: field '{}' {}", file, key, what));
  }
  bool has(const std::string& key) const { return j.contains(key) && !j.at(key).is_null(); }
  int integer(const std::string& key, std::optional<int> fallback = std::nullopt) const {
    if (!has(key)) {
      if (fallback) return *fallback;
      fail(key, "is missing");
    }
    const Json& v = j.at(key);
    if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() > (1LL << 30))
      fail(key, fmt::format("must be an integer in 0..2^30, not {}", v.dump()));
    return v.get<int>();
  }
  double number(const std::string& key, std::optional<double> fallback = std::nullopt) const {
    if (!has(key)) {
      if (fallback) return *fallback;
      fail(key, "is missing");
    }
    const Json& v = j.at(key);
    if (!v.is_number() || !std::isfinite(v.get<double>())) fail(key, fmt::format("must be a finite number, not {}", v.dump()));
    return v.get<double>();
  }
  bool boolean(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j.at(key).is_boolean()) fail(key, fmt::format("must be true or false, not {}", j.at(key).dump()));
    return j.at(key).get<bool>();
  }
  std::string text(const std::string& key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!j.at(key).is_string()) fail(key, fmt::format("must be a string, not {}", j.at(key).dump()));
    return j.at(key).get<std::string>();
  }
};

void gpt2(const Fields& f, ModelConfig& c) {
  c.arch = "gpt2";
  c.activation = Activation::gelu_tanh;
  c.causal = true;
  c.embedding = Embedding::tokens;
  c.width = f.integer("n_embd");
  c.heads = f.integer("n_head");
  c.depth = f.integer("n_layer");
  // 4 * n_embd in 64 bits: an n_embd of 2^29 wrapped here before; validate() names the size refused.
  c.ffn = f.has("n_inner") ? f.integer("n_inner") : int(std::min<long long>(4LL * c.width, 1LL << 30));
  c.vocab = f.integer("vocab_size");
  c.norm_eps = f.number("layer_norm_epsilon", 1e-5);
  c.tokens = std::min(32, f.integer("n_positions", 1024));
  const std::string act = f.text("activation_function", "gelu_new");
  if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.activation = Activation::gelu_tanh;
  else if (act == "gelu") c.activation = Activation::gelu;
  else if (act == "relu") c.activation = Activation::relu;
  else f.fail("activation_function", fmt::format("= '{}' is not modelled (gelu_new, gelu_pytorch_tanh, gelu, relu)", act));
  c.activation_chain = act == "gelu_new";  // NewGELUActivation: a Python chain of ops; gelu_pytorch_tanh is one kernel
  if (!f.boolean("scale_attn_weights", true)) f.fail("scale_attn_weights", "= false is not modelled");
  if (f.boolean("scale_attn_by_inverse_layer_idx", false)) f.fail("scale_attn_by_inverse_layer_idx", "= true is not modelled");
  if (f.boolean("reorder_and_upcast_attn", false)) f.fail("reorder_and_upcast_attn", "= true is not modelled");
  c.final_norm = true;
  c.lm_head = true;
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", true);
}

void vit(const Fields& f, ModelConfig& c) {
  c.arch = "encoder";
  c.embedding = Embedding::patch;
  c.width = f.integer("hidden_size");
  c.heads = f.integer("num_attention_heads");
  c.depth = f.integer("num_hidden_layers");
  c.ffn = f.integer("intermediate_size");
  c.norm_eps = f.number("layer_norm_eps", 1e-12);
  c.image = f.integer("image_size");
  c.patch = f.integer("patch_size");
  c.channels = f.integer("num_channels", 3);
  c.class_token = true;
  // In 64 bits: image_size 65536 with patch_size 1 wrapped 65536^2 to 0 before; validate() refuses the sizes.
  const long long side = c.patch > 0 ? c.image / c.patch : 0;
  c.tokens = int(std::min<long long>(side * side + 1, 1LL << 30));
  c.qkv_bias = f.boolean("qkv_bias", true) ? -1 : 0;
  const std::string act = f.text("hidden_act", "gelu");
  if (act == "gelu") c.activation = Activation::gelu;
  else if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.activation = Activation::gelu_tanh;
  else if (act == "relu") c.activation = Activation::relu;
  else f.fail("hidden_act", fmt::format("= '{}' is not modelled (gelu, gelu_new, relu)", act));
  c.activation_chain = act == "gelu_new";
  c.final_norm = true;  // ViTModel's layernorm after the encoder
}

// rope_theta and rope_scaling (4.x: top-level fields) or rope_parameters (5.x: one object holding both).
void rope(const Fields& f, ModelConfig& c) {
  const Json* params = nullptr;
  std::string where = "rope_scaling";
  if (f.has("rope_parameters")) params = &f.j.at("rope_parameters"), where = "rope_parameters";
  else if (f.has("rope_scaling")) params = &f.j.at("rope_scaling");
  c.rope.theta = f.number("rope_theta", 10000.0);
  if (!(c.rope.theta > 0)) f.fail("rope_theta", fmt::format("= {} must be > 0 (this family always rotates)", c.rope.theta));
  if (!params) return;
  if (!params->is_object()) f.fail(where, "must be an object");
  const Fields p{*params, f.file + " " + where};
  if (p.has("rope_theta")) c.rope.theta = p.number("rope_theta");
  if (!(c.rope.theta > 0)) p.fail("rope_theta", fmt::format("= {} must be > 0 (this family always rotates)", c.rope.theta));
  const std::string type = p.text("rope_type", p.text("type", "default"));
  if (type == "default") return;
  if (type != "llama3") p.fail("rope_type", fmt::format("= '{}' is not modelled (default, llama3)", type));
  c.rope.scaling = "llama3";
  c.rope.factor = p.number("factor");
  c.rope.low_freq_factor = p.number("low_freq_factor");
  c.rope.high_freq_factor = p.number("high_freq_factor");
  c.rope.original_max_positions = p.integer("original_max_position_embeddings");
}

void llama(const Fields& f, ModelConfig& c, const std::string& type) {
  c.arch = "llama";
  c.norm = NormKind::rmsnorm;
  c.activation = Activation::silu;
  c.mlp = Mlp::gated;
  c.causal = true;
  c.bias = false;
  c.embedding = Embedding::tokens;
  c.learned_positions = false;
  c.score_scale = ScoreScale::multiply;
  c.norm_cast = true;
  c.final_norm = true;
  c.lm_head = true;
  c.width = f.integer("hidden_size");
  c.heads = f.integer("num_attention_heads");
  c.kv_heads = f.integer("num_key_value_heads", c.heads);
  c.head_dim = f.integer("head_dim", c.heads ? c.width / c.heads : 0);
  if (static_cast<long long>(c.head_dim) * c.heads == c.width) c.head_dim = 0;  // the usual width / heads
  c.depth = f.integer("num_hidden_layers");
  c.ffn = f.integer("intermediate_size");
  c.vocab = f.integer("vocab_size");
  c.norm_eps = f.number("rms_norm_eps", 1e-6);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  c.tokens = std::min(32, f.integer("max_position_embeddings", 2048));
  const std::string act = f.text("hidden_act", "silu");
  if (act != "silu") f.fail("hidden_act", fmt::format("= '{}' is not modelled (silu)", act));
  c.qkv_bias = type == "qwen2" ? 1 : 0;  // Qwen2's q/k/v projections always carry biases
  if (f.boolean("attention_bias", false)) f.fail("attention_bias", "= true is not modelled (biases on q, k, v and o)");
  if (f.boolean("mlp_bias", false)) f.fail("mlp_bias", "= true is not modelled");
  if (type == "qwen2" && f.boolean("use_sliding_window", false)) f.fail("use_sliding_window", "= true is not modelled");
  if (type == "mistral" && f.has("sliding_window")) c.sliding_window = f.integer("sliding_window");
  rope(f, c);
}

}  // namespace

ModelConfig model_config_from_hf(const std::string& dir) {
  const std::filesystem::path path = std::filesystem::path(dir) / "config.json";
  if (!std::filesystem::is_regular_file(path))
    throw ConfigError(fmt::format("'{}' is a directory without config.json (not a Hugging Face model directory)", dir));
  Json j;
  try {
    j = Json::parse(read_text(path.string(), "Hugging Face config"));
  } catch (const Json::exception& e) {
    throw ConfigError(fmt::format("{}: does not parse as JSON: {}", path.string(), e.what()));
  }
  if (!j.is_object()) throw ConfigError(fmt::format("{}: is not a JSON object", path.string()));
  const Fields f{j, path.string()};
  ModelConfig c;
  const std::string type = f.text("model_type", "");
  if (type == "gpt2") gpt2(f, c);
  else if (type == "vit") vit(f, c);
  else if (type == "llama" || type == "mistral" || type == "qwen2") llama(f, c, type);
  else if (type.empty()) f.fail("model_type", "is missing");
  else f.fail("model_type", fmt::format("= '{}' is not supported (gpt2, vit, llama, mistral, qwen2)", type));
  c.init.weights = dir;
  c.name = std::filesystem::path(dir).filename().string();
  if (c.name.empty()) c.name = std::filesystem::path(dir).parent_path().filename().string();
  if (const std::string problem = validate(c); !problem.empty()) throw ConfigError(fmt::format("{}: {}", path.string(), problem));
  return c;
}

}  // namespace lpsim
