#pragma once
// Typed reads of a Hugging Face config.json that name the file and the field in every error; what family
// descriptions (src/model/families/) read config.json through.
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "lpsim/model/model_config.hpp"

namespace lpsim {

class HfFields {
 public:
  HfFields(const nlohmann::json& j, std::string file) : j_(j), file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const;
  bool has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }
  // Integers in 0..2^30; a missing field without a fallback is an error naming it.
  int integer(const std::string& key, std::optional<int> fallback = std::nullopt) const;
  double number(const std::string& key, std::optional<double> fallback = std::nullopt) const;
  bool boolean(const std::string& key, bool fallback) const;
  std::string text(const std::string& key, const std::string& fallback) const;
  // A nested object (rope_parameters, rope_scaling) read with the same rules, named "<file> <key>" in errors.
  HfFields object(const std::string& key) const;
  const nlohmann::json& json() const { return j_; }
  const std::string& file() const { return file_; }

 private:
  const nlohmann::json& j_;
  std::string file_;
};

// rope_theta and rope_scaling (transformers 4.x: top-level fields) or rope_parameters (5.x: one object holding
// both); rope types other than default and llama3 are refused by name.
void read_rope(const HfFields& f, ModelConfig& c);

// The activation of the GPT-2 and ViT classes' field `key`: gelu (erf), gelu_new (tanh, as transformers' chain of
// ops: activation_chain), gelu_pytorch_tanh (tanh, one kernel) or relu; another value is refused by name.
void read_gelu_or_relu(const HfFields& f, const std::string& key, const std::string& fallback, ModelConfig& c);

// The sequence length lpsim runs a checkpoint at by default: the model's context, at most 32 tokens.
int default_tokens(const HfFields& f, const std::string& key, int fallback);

}  // namespace lpsim
