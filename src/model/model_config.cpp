#include "lpsim/model/model_config.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/toml_fields.hpp"
#include "util/read_text.hpp"
#include "lpsim/format/format.hpp"

namespace lpsim {

std::string_view norm_name(NormKind k) { return k == NormKind::layernorm ? "layernorm" : "rmsnorm"; }
std::string_view activation_name(Activation a) {
  return a == Activation::gelu ? "gelu" : a == Activation::gelu_tanh ? "gelu-tanh" : "relu";
}
std::string_view embedding_name(Embedding e) {
  return e == Embedding::none ? "none" : e == Embedding::patch ? "patch" : "tokens";
}

namespace {

// The defaults of each family; keys in the file override them.
ModelConfig family_defaults(const std::string& arch) {
  ModelConfig c;
  c.arch = arch;
  if (arch == "gpt2") {
    c.activation = Activation::gelu_tanh;
    c.causal = true;
    c.init.scheme = "gaussian";
    c.tokens = 64;
  } else if (arch == "decoder002") {  // seed 002: single head, RMSNorm, two-layer ReLU perceptron, no biases
    c.norm = NormKind::rmsnorm;
    c.activation = Activation::relu;
    c.heads = 1;
    c.causal = true;
    c.bias = false;
    c.width = 64;
    c.ffn = 256;
    c.tokens = 32;
  }
  return c;
}

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
  ModelConfig c = family_defaults(m.get_choice("arch", "encoder", {"encoder", "gpt2", "decoder002"}));
  c.name = std::filesystem::path(file).stem().string();
  c.width = m.get_int("width", c.width, 1, 1 << 16);
  c.heads = m.get_int("heads", c.heads, 1, 1 << 12);
  c.ffn = m.get_int("ffn", c.ffn, 1, 1 << 18);
  c.depth = m.get_int("depth", c.depth, 0, 4096);
  c.tokens = m.get_int("tokens", c.tokens, 1, 1 << 16);
  c.norm = pick<NormKind>(m.get_choice("norm", std::string(norm_name(c.norm)), {"layernorm", "rmsnorm"}),
                          {{"layernorm", NormKind::layernorm}, {"rmsnorm", NormKind::rmsnorm}});
  c.position = pick<NormPosition>(m.get_choice("position", c.position == NormPosition::pre ? "pre" : "post", {"pre", "post"}),
                                  {{"pre", NormPosition::pre}, {"post", NormPosition::post}});
  c.activation = pick<Activation>(
      m.get_choice("activation", std::string(activation_name(c.activation)), {"gelu", "gelu-tanh", "relu"}),
      {{"gelu", Activation::gelu}, {"gelu-tanh", Activation::gelu_tanh}, {"relu", Activation::relu}});
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

ModelConfig load_model_config(const std::string& path) { return parse_model_config(read_text(path, "model file"), path); }

std::string validate(const ModelConfig& c) {
  if (c.width % c.heads != 0) return fmt::format("model.width = {} is not divisible by model.heads = {}", c.width, c.heads);
  if (c.embedding == Embedding::patch) {
    if (c.patch <= 0 || c.image <= 0 || c.image % c.patch != 0)
      return fmt::format("model.image = {} must be a positive multiple of model.patch = {}", c.image, c.patch);
    const int want = c.num_patches() + (c.class_token ? 1 : 0);
    if (c.tokens != want)
      return fmt::format("model.tokens = {} but {} patches{} give {}", c.tokens, c.num_patches(),
                         c.class_token ? " and the class token" : "", want);
  }
  if (c.embedding == Embedding::tokens && c.vocab < 1) return "model.vocab must be >= 1 for a token embedding";
  return "";
}

}  // namespace lpsim
