#include "lpsim/model/model_config.hpp"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/toml_fields.hpp"
#include "lpsim/model/family.hpp"
#include "lpsim/model/hf_config.hpp"
#include "util/read_text.hpp"
#include "lpsim/format/format.hpp"

namespace lpsim {

std::string_view norm_name(NormKind k) { return k == NormKind::layernorm ? "layernorm" : "rmsnorm"; }
std::string_view activation_name(Activation a) {
  return a == Activation::gelu ? "gelu" : a == Activation::gelu_tanh ? "gelu-tanh" : a == Activation::relu ? "relu" : "silu";
}
double parameter_count(const ModelConfig& c) {
  const double d = c.width, f = c.ffn, q = c.q_width(), kv = c.kv_width();
  const double mlps = c.experts > 0 ? double(c.experts) * (c.mlp == Mlp::gated ? 3 : 2) * d * c.expert_width() + d * c.experts
                                     : (c.mlp == Mlp::gated ? 3 : 2) * d * f;  // the experts and the router
  const double block = d * q + 2 * d * kv + q * d + mlps + 4 * d + 2 * f + q + 2 * kv + (c.qk_norm ? 2.0 * c.head_width() : 0.0);
  const double embed = c.embedding == Embedding::tokens ? double(c.vocab) * d + (c.learned_positions ? c.tokens * d : 0)
                       : c.embedding == Embedding::patch ? double(c.patch_dim()) * d + (c.tokens + 2) * d
                                                         : 0;
  return c.depth * block + embed + (c.lm_head ? double(c.vocab) * d : 0) + 2 * d;
}

int head_tap_count(const ModelConfig& c) { return (c.final_norm ? 1 : 0) + (c.lm_head ? 1 : 0); }

std::string_view position_name(NormPosition p) {
  return p == NormPosition::pre ? "pre" : p == NormPosition::post ? "post" : "sandwich";
}

std::string_view embedding_name(Embedding e) {
  return e == Embedding::none ? "none" : e == Embedding::patch ? "patch" : "tokens";
}

namespace {

// The defaults of a family (its description's); keys in the file override them.
ModelConfig family_defaults(const std::string& arch) { return family_by_arch(arch)->defaults(); }

template <class E>
E pick(const std::string& v, std::initializer_list<std::pair<std::string_view, E>> table) {
  for (auto& [n, e] : table)
    if (v == n) return e;
  return table.begin()->second;  // unreachable: get_choice checked v
}

}  // namespace

ModelConfig parse_model_config(std::string_view text, const std::string& file) {
  const toml::table root = parse_toml(text, file);
  TomlFields top(root, file, "");
  const toml::table* model = top.subtable("model");
  if (!model) throw ConfigError(fmt::format("{}: table [model] is missing", file));
  TomlFields m(*model, file, "model.");
  const std::string hf_dir = m.get<std::string>("hf", "");
  ModelConfig c;
  if (!hf_dir.empty()) {  // a Hugging Face directory (relative to this file) is the base; keys here override it
    const auto dir = std::filesystem::path(hf_dir).is_relative() ? std::filesystem::path(file).parent_path() / hf_dir
                                                                  : std::filesystem::path(hf_dir);
    try {
      c = model_config_from_hf(dir.string());
    } catch (const ConfigError& e) {
      m.fail("hf", e.what());
    }
    m.get_choice("arch", c.arch, family_arch_names());
  } else {
    c = family_defaults(m.get_choice("arch", "encoder", family_arch_names()));
  }
  c.name = std::filesystem::path(file).stem().string();
  c.width = m.get_int("width", c.width, 1, 1 << 16);
  c.heads = m.get_int("heads", c.heads, 1, 1 << 12);
  c.ffn = m.get_int("ffn", c.ffn, 1, 1 << 18);
  c.depth = m.get_int("depth", c.depth, 0, 4096);
  c.tokens = m.get_int("tokens", c.tokens, 1, 1 << 16);
  c.norm = pick<NormKind>(m.get_choice("norm", std::string(norm_name(c.norm)), {"layernorm", "rmsnorm"}),
                          {{"layernorm", NormKind::layernorm}, {"rmsnorm", NormKind::rmsnorm}});
  c.position = pick<NormPosition>(m.get_choice("position", std::string(position_name(c.position)), {"pre", "post", "sandwich"}),
                                  {{"pre", NormPosition::pre}, {"post", NormPosition::post}, {"sandwich", NormPosition::sandwich}});
  c.activation = pick<Activation>(
      m.get_choice("activation", std::string(activation_name(c.activation)), {"gelu", "gelu-tanh", "relu", "silu"}),
      {{"gelu", Activation::gelu}, {"gelu-tanh", Activation::gelu_tanh}, {"relu", Activation::relu}, {"silu", Activation::silu}});
  c.norm_eps = m.get<double>("norm_eps", c.norm_eps);
  if (!(c.norm_eps >= 0)) m.fail("norm_eps", "must be >= 0");
  c.causal = m.get<bool>("causal", c.causal);
  c.bias = m.get<bool>("bias", c.bias);
  c.embedding = pick<Embedding>(
      m.get_choice("embedding", std::string(embedding_name(c.embedding)), {"none", "patch", "tokens"}),
      {{"none", Embedding::none}, {"patch", Embedding::patch}, {"tokens", Embedding::tokens}});
  c.image = m.get_int("image", c.image, 0, 1 << 14);
  c.patch = m.get_int("patch", c.patch, 0, 1 << 14);
  c.channels = m.get_int("channels", c.channels, 1, 1 << 12);
  c.class_token = m.get<bool>("class_token", c.class_token);
  c.vocab = m.get_int("vocab", c.embedding == Embedding::tokens && c.vocab == 0 ? 1000 : c.vocab, 0, 1 << 24);
  c.kv_heads = m.get_int("kv_heads", c.kv_heads, 0, 1 << 12);
  c.head_dim = m.get_int("head_dim", c.head_dim, 0, 1 << 14);
  c.mlp = m.get_choice("mlp", c.mlp == Mlp::gated ? "gated" : "plain", {"plain", "gated"}) == "gated" ? Mlp::gated : Mlp::plain;
  if (const auto q = m.optional<bool>("qkv_bias")) c.qkv_bias = *q ? 1 : 0;
  else if (m.has("bias")) c.qkv_bias = -1;  // `bias` alone covers q/k/v too
  c.score_scale = m.get_choice("score_scale", c.score_scale == ScoreScale::multiply ? "multiply" : "divide",
                               {"divide", "multiply"}) == "multiply" ? ScoreScale::multiply : ScoreScale::divide;
  c.norm_cast = m.get<bool>("norm_cast", c.norm_cast);
  c.activation_chain = m.get<bool>("activation_chain", c.activation_chain);
  c.rope.theta = m.get<double>("rope_theta", c.rope.theta);
  if (!(c.rope.theta >= 0)) m.fail("rope_theta", "must be >= 0 (0: no rotary embedding)");
  c.rope.scaling = m.get_choice("rope_scaling", c.rope.scaling, {"default", "llama3"});
  c.rope.factor = m.get<double>("rope_factor", c.rope.factor);
  c.rope.low_freq_factor = m.get<double>("rope_low_freq_factor", c.rope.low_freq_factor);
  c.rope.high_freq_factor = m.get<double>("rope_high_freq_factor", c.rope.high_freq_factor);
  c.rope.original_max_positions = m.get_int("rope_original_max_positions", c.rope.original_max_positions, 1, 1 << 24);
  c.final_norm = m.get<bool>("final_norm", c.final_norm);
  c.lm_head = m.get<bool>("lm_head", c.lm_head);
  c.tie_word_embeddings = m.get<bool>("tie_word_embeddings", c.tie_word_embeddings);
  c.learned_positions = m.get<bool>("learned_positions", c.learned_positions);
  c.qk_norm = m.get<bool>("qk_norm", c.qk_norm);
  c.experts = m.get_int("experts", c.experts, 0, 1 << 12);
  c.experts_per_token = m.get_int("experts_per_token", c.experts_per_token, 1, 1 << 12);
  c.expert_ffn = m.get_int("expert_ffn", c.expert_ffn, 0, 1 << 18);
  c.router_renormalize = m.get<bool>("router_renormalize", c.router_renormalize);
  c.router_weights_cast = m.get<bool>("router_weights_cast", c.router_weights_cast);
  c.embed_scale = m.get<bool>("embed_scale", c.embed_scale);
  c.norm_gain_offset = m.get<double>("norm_gain_offset", c.norm_gain_offset);
  c.score_scalar = m.get<double>("score_scalar", c.score_scalar);
  c.attn_softcap = m.get<double>("attn_softcap", c.attn_softcap);
  c.final_softcap = m.get<double>("final_softcap", c.final_softcap);
  c.rope_local_theta = m.get<double>("rope_local_theta", c.rope_local_theta);
  c.sliding_pattern = m.get_int("sliding_pattern", c.sliding_pattern, 0, 4096);
  if (c.embedding == Embedding::patch && !m.has("tokens")) c.tokens = c.num_patches() + (c.class_token ? 1 : 0);
  m.finish();

  if (const toml::table* init = top.subtable("init")) {
    TomlFields f(*init, file, "init.");
    InitConfig& i = c.init;
    i.scheme = f.get_choice("scheme", i.scheme, {"xavier", "gaussian"});
    i.scale = f.get<double>("scale", i.scale);
    i.std = f.get<double>("std", i.std);
    i.kappa_qk = f.get<double>("kappa_qk", i.kappa_qk);
    i.kappa_v = f.get<double>("kappa_v", i.kappa_v);
    i.logit_scale = f.get<double>("logit_scale", i.logit_scale);
    i.norm_gain = f.get<double>("norm_gain", i.norm_gain);
    i.norm_bias = f.get<double>("norm_bias", i.norm_bias);
    i.bias_std = f.get<double>("bias_std", i.bias_std);
    i.storage = f.get<std::string>("storage", i.storage);
    i.weights = f.get<std::string>("weights", i.weights);
    for (auto [key, v] : {std::pair{"kappa_qk", i.kappa_qk}, {"kappa_v", i.kappa_v}})
      if (v != 0 && !(v >= 1)) f.fail(key, "must be 0 (as drawn) or >= 1");
    if (!(i.scale > 0)) f.fail("scale", "must be > 0");
    if (!(i.logit_scale >= 0)) f.fail("logit_scale", "must be >= 0");
    try {
      parse_format(i.storage);
    } catch (const FormatError& e) {
      f.fail("storage", e.what());
    }
    if (!i.weights.empty() && std::filesystem::path(i.weights).is_relative())  // relative to the config file
      i.weights = (std::filesystem::path(file).parent_path() / i.weights).string();
    f.finish();
  }
  if (const toml::table* input = top.subtable("input")) {
    TomlFields f(*input, file, "input.");
    c.input.dist = f.get_choice("dist", c.input.dist, {"normal", "uniform"});
    c.input.scale = f.get<double>("scale", c.input.scale);
    c.input.file = f.get<std::string>("file", c.input.file);
    if (!c.input.file.empty() && std::filesystem::path(c.input.file).is_relative())
      c.input.file = (std::filesystem::path(file).parent_path() / c.input.file).string();
    f.finish();
  }
  top.has("plan");  // a precision plan may sit beside the model (plan.hpp reads it)
  top.finish();
  if (const std::string problem = validate(c); !problem.empty())
    throw ConfigError(fmt::format("{}: {}", top.where("model"), problem));
  return c;
}

ModelConfig load_model_config(const std::string& path) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (std::filesystem::is_directory(st)) return model_config_from_hf(path);
  if (std::filesystem::exists(st) && !std::filesystem::is_regular_file(st))
    throw ConfigError(fmt::format("model file '{}' is not a regular file", path));
  return parse_model_config(read_text(path, "model file"), path);
}

std::string validate(const ModelConfig& c) {
  // The ranges the TOML reader enforces, for configs built elsewhere (config.json, sweep axes): a zero head count
  // divided by zero here before (found by tests/fuzz).
  struct Range {
    const char* name;
    long long value, lo, hi;
  };
  for (const Range& r : {Range{"image", c.image, 0, 1 << 14}, Range{"patch", c.patch, 0, 1 << 14},
                         Range{"channels", c.channels, 1, 1 << 12},
                         Range{"width", c.width, 1, 1 << 16}, Range{"heads", c.heads, 1, 1 << 12},
                         Range{"ffn", c.ffn, 1, 1 << 18}, Range{"depth", c.depth, 0, 4096},
                         Range{"tokens", c.tokens, 1, 1 << 16}, Range{"kv_heads", c.kv_heads, 0, 1 << 12},
                         Range{"head_dim", c.head_dim, 0, 1 << 14}, Range{"vocab", c.vocab, 0, 1 << 24},
                         Range{"experts", c.experts, 0, 1 << 12}, Range{"expert_ffn", c.expert_ffn, 0, 1 << 18}})
    if (r.value < r.lo || r.value > r.hi)
      return fmt::format("model.{} = {} is outside {}..{}", r.name, r.value, r.lo, r.hi);
  // The numbers the TOML reader checks, checked here too so that config.json is held to the same rules (an
  // rms_norm_eps of -1 ran with every tap Inf/NaN; a rope_theta of 0 switched RoPE off silently there).
  if (!(std::isfinite(c.norm_eps) && c.norm_eps >= 0)) return fmt::format("model.norm_eps = {} must be >= 0", c.norm_eps);
  if (!(std::isfinite(c.rope.theta) && c.rope.theta >= 0))
    return fmt::format("model.rope_theta = {} must be >= 0 (0: no rotary embedding)", c.rope.theta);
  if (c.head_dim == 0 && c.width % c.heads != 0)
    return fmt::format("model.width = {} is not divisible by model.heads = {}", c.width, c.heads);
  if (c.embedding == Embedding::patch) {
    if (c.patch <= 0 || c.image <= 0 || c.image % c.patch != 0)
      return fmt::format("model.image = {} must be a positive multiple of model.patch = {}", c.image, c.patch);
    const int want = c.num_patches() + (c.class_token ? 1 : 0);
    if (c.tokens != want)
      return fmt::format("model.tokens = {} but {} patches{} give {}", c.tokens, c.num_patches(),
                         c.class_token ? " and the class token" : "", want);
  }
  if (c.embedding == Embedding::tokens && c.vocab < 1) return "model.vocab must be >= 1 for a token embedding";
  if (c.head_dim == 0 && c.width % c.heads != 0) return "model.width is not divisible by model.heads";
  if (c.heads % c.kv_head_count() != 0)
    return fmt::format("model.heads = {} is not a multiple of model.kv_heads = {}", c.heads, c.kv_head_count());
  if (c.rope.theta > 0 && c.head_width() % 2 != 0)
    return fmt::format("rotary embeddings need an even head width, not {}", c.head_width());
  if (c.sliding_window > 0 && c.tokens > c.sliding_window)
    return fmt::format("{} tokens exceed the sliding window of {} (not modelled)", c.tokens, c.sliding_window);
  for (auto [key, v] : {std::pair{"score_scalar", c.score_scalar}, {"attn_softcap", c.attn_softcap},
                        {"final_softcap", c.final_softcap}, {"norm_gain_offset", c.norm_gain_offset},
                        {"rope_local_theta", c.rope_local_theta}})
    if (!(std::isfinite(v) && v >= 0)) return fmt::format("model.{} = {} must be >= 0 (0: none)", key, v);
  if (c.final_softcap > 0 && !c.lm_head) return "model.final_softcap needs an LM head";
  if (c.experts > 0 && (c.experts_per_token < 1 || c.experts_per_token > c.experts))
    return fmt::format("model.experts_per_token = {} must be in 1..model.experts = {}", c.experts_per_token, c.experts);
  if (c.lm_head && c.embedding != Embedding::tokens) return "model.lm_head needs a token embedding (model.vocab)";
  if (c.rope.scaling == "llama3" && !(c.rope.factor >= 1 && c.rope.high_freq_factor > c.rope.low_freq_factor))
    return "rope_scaling llama3 needs rope_factor >= 1 and rope_high_freq_factor > rope_low_freq_factor";
  return "";
}

}  // namespace lpsim
