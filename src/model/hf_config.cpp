#include "lpsim/model/hf_config.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "lpsim/config/config_error.hpp"
#include "lpsim/model/family.hpp"
#include "model/hf_fields.hpp"
#include "util/read_text.hpp"

namespace lpsim {

using Json = nlohmann::json;

void HfFields::fail(const std::string& key, const std::string& what) const {
  throw ConfigError(fmt::format("{}: field '{}' {}", file_, key, what));
}

int HfFields::integer(const std::string& key, std::optional<int> fallback) const {
  if (!has(key)) {
    if (fallback) return *fallback;
    fail(key, "is missing");
  }
  const Json& v = j_.at(key);
  if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() > (1LL << 30))
    fail(key, fmt::format("must be an integer in 0..2^30, not {}", v.dump()));
  return v.get<int>();
}

double HfFields::number(const std::string& key, std::optional<double> fallback) const {
  if (!has(key)) {
    if (fallback) return *fallback;
    fail(key, "is missing");
  }
  const Json& v = j_.at(key);
  if (!v.is_number() || !std::isfinite(v.get<double>())) fail(key, fmt::format("must be a finite number, not {}", v.dump()));
  return v.get<double>();
}

bool HfFields::boolean(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  if (!j_.at(key).is_boolean()) fail(key, fmt::format("must be true or false, not {}", j_.at(key).dump()));
  return j_.at(key).get<bool>();
}

std::string HfFields::text(const std::string& key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  if (!j_.at(key).is_string()) fail(key, fmt::format("must be a string, not {}", j_.at(key).dump()));
  return j_.at(key).get<std::string>();
}

HfFields HfFields::object(const std::string& key) const {
  if (!j_.at(key).is_object()) fail(key, "must be an object");
  return HfFields(j_.at(key), file_ + " " + key);
}

namespace {

// Rotary embeddings over part of each head (Phi-4-mini, GLM, ...): 4.x writes the factor at the top level, 5.x in
// rope_parameters.
void refuse_partial_rotary(const HfFields& f) {
  if (const double partial = f.number("partial_rotary_factor", 1.0); partial != 1.0)
    f.fail("partial_rotary_factor", fmt::format("= {} is not modelled (rotary embeddings over the whole head only)", partial));
}

}  // namespace

void read_rope(const HfFields& f, ModelConfig& c) {
  refuse_partial_rotary(f);
  std::string where;
  if (f.has("rope_parameters")) where = "rope_parameters";
  else if (f.has("rope_scaling")) where = "rope_scaling";
  c.rope.theta = f.number("rope_theta", 10000.0);
  if (!(c.rope.theta > 0)) f.fail("rope_theta", fmt::format("= {} must be > 0 (this family always rotates)", c.rope.theta));
  if (where.empty()) return;
  const HfFields p = f.object(where);
  refuse_partial_rotary(p);
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

void read_gelu_or_relu(const HfFields& f, const std::string& key, const std::string& fallback, ModelConfig& c) {
  const std::string act = f.text(key, fallback);
  if (act == "gelu") c.activation = Activation::gelu;
  else if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.activation = Activation::gelu_tanh;
  else if (act == "relu") c.activation = Activation::relu;
  else f.fail(key, fmt::format("= '{}' is not modelled (gelu, gelu_new, gelu_pytorch_tanh, relu)", act));
  c.activation_chain = act == "gelu_new";  // NewGELUActivation: a Python chain of ops; gelu_pytorch_tanh is one kernel
}

int default_tokens(const HfFields& f, const std::string& key, int fallback) { return std::min(32, f.integer(key, fallback)); }

// quantization_config: transformers' fine-grained fp8 (quant_method "fp8", fmt "e4m3", weight_block_size [r, c]) is
// read; every other method is refused by name (its stored integers would be read as values).
void read_quantization_config(const HfFields& f, ModelConfig& c) {
  if (!f.has("quantization_config")) return;
  const HfFields q = f.object("quantization_config");
  const std::string method = q.text("quant_method", "");
  if (method != "fp8")
    q.fail("quant_method", fmt::format("= '{}' is not loaded yet (fp8 is: E4M3 weights with weight_scale_inv); lpsim "
                                       "would read its stored codes as values", method));
  if (const std::string fmt_name = q.text("fmt", "e4m3"); fmt_name != "e4m3")
    q.fail("fmt", fmt::format("= '{}' is not loaded yet (e4m3)", fmt_name));
  if (q.text("activation_scheme", "dynamic") != "dynamic")
    q.fail("activation_scheme", "is not 'dynamic' (static activation scales are not read yet)");
  const Json& block = q.json().contains("weight_block_size") ? q.json().at("weight_block_size") : Json();
  if (!block.is_array() || block.size() != 2 || !block[0].is_number_integer() || !block[1].is_number_integer() ||
      block[0].get<int>() < 1 || block[1].get<int>() < 1)
    q.fail("weight_block_size", "must be two positive integers (per-tensor fp8 scales are not read yet)");
  c.shipped_quantization = "fp8";
  c.shipped_block_rows = block[0].get<int>(), c.shipped_block_cols = block[1].get<int>();
}

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
  const HfFields f(j, path.string());
  const std::string type = f.text("model_type", "");
  if (type.empty()) f.fail("model_type", "is missing");
  const Family* family = family_by_model_type(type);
  if (!family) f.fail("model_type", fmt::format("= '{}' is not supported ({})", type, fmt::join(family_model_types(), ", ")));
  ModelConfig c;  // not defaults(): those are a TOML file's sizes and initialiser, config.json gives its own
  c.arch = family->arch;
  family->from_hf(f, type, c);
  read_quantization_config(f, c);
  c.init.weights = dir;
  c.name = std::filesystem::path(dir).filename().string();
  if (c.name.empty()) c.name = std::filesystem::path(dir).parent_path().filename().string();
  if (const std::string problem = validate(c); !problem.empty()) throw ConfigError(fmt::format("{}: {}", path.string(), problem));
  return c;
}

}  // namespace lpsim
