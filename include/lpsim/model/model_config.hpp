#pragma once
// What a model is: architecture, sizes, normalisation, activation, initialisation and inputs. Read from a small TOML
// file in models/ (docs/MODELS.md lists every key); `arch` picks the defaults of a family and any key overrides them.
#include <cstdint>
#include <string>
#include <string_view>

namespace lpsim {

enum class NormKind : std::uint8_t { layernorm, rmsnorm };
enum class NormPosition : std::uint8_t { pre, post };  // pre: X + f(N(X)); post: N(X + f(X))
enum class Activation : std::uint8_t { gelu, gelu_tanh, relu };
enum class Embedding : std::uint8_t { none, patch, tokens };

struct InitConfig {
  std::string scheme = "xavier";  // xavier: N(0, scale^2 * 2/(in+out)); gaussian: N(0, (scale*std)^2)
  double scale = 1.0;
  double std = 0.02;              // gaussian only (GPT-2's 0.02)
  double kappa_qk = 0;            // > 0: per head, W_Q W_K^T gets singular values spaced geometrically over [s/kappa, s]
  double kappa_v = 0;             // > 0: W_V (per head) gets condition number kappa_v
  double logit_scale = 0;         // > 0: per head, ||W_Q W_K^T||_2 / sqrt(d_head) is set to this
  double norm_gain = 1.0;         // every LayerNorm/RMSNorm gamma
  double norm_bias = 0.0;         // every LayerNorm beta
  double bias_std = 0.0;          // linear-layer biases ~ N(0, bias_std^2)
  std::string storage = "fp32";   // weights and inputs are rounded to this format (the parameters' dtype)
  std::string weights;            // safetensors file instead of the initialiser (Hugging Face GPT-2 or ViT names)
};

struct InputConfig {
  std::string dist = "normal";  // normal | uniform: entries of the residual stream, pixels or token ids
  double scale = 1.0;
  std::string file;             // text file: one row per token (embedding none) or the flattened image (patch)
};

struct ModelConfig {
  std::string name;    // from the file name
  std::string arch = "encoder";  // encoder | gpt2 | decoder002
  int width = 128;
  int heads = 4;
  int ffn = 512;
  int depth = 6;
  int tokens = 65;     // sequence length (class token included)
  NormKind norm = NormKind::layernorm;
  NormPosition position = NormPosition::pre;
  Activation activation = Activation::gelu;
  double norm_eps = 1e-5;
  bool causal = false;
  bool bias = true;
  Embedding embedding = Embedding::none;
  int image = 0, patch = 0, channels = 3;  // patch embedding: image x image x channels in patches of patch x patch
  bool class_token = true;
  int vocab = 0;       // token embedding
  InitConfig init;
  InputConfig input;

  int head_width() const { return width / heads; }
  int patch_dim() const { return channels * patch * patch; }
  int num_patches() const { return patch ? (image / patch) * (image / patch) : 0; }
};

// Reads models/<name>.toml (or TOML text, for tests). Throws ConfigError naming file, line and key.
ModelConfig load_model_config(const std::string& path);
ModelConfig parse_model_config(std::string_view toml_text, const std::string& file_name);
// Checks sizes fit together (width divisible by heads, tokens = patches + class token, ...); "" when fine.
std::string validate(const ModelConfig& c);

std::string_view norm_name(NormKind k);
std::string_view activation_name(Activation a);
std::string_view embedding_name(Embedding e);

}  // namespace lpsim
