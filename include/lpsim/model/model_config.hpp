#pragma once
// What a model is: architecture, sizes, normalisation, activation, initialisation and inputs. Read from a small TOML
// file in models/ (docs/MODELS.md lists every key); `arch` picks the defaults of a family and any key overrides them.
#include <cstdint>
#include <string>
#include <string_view>

namespace lpsim {

enum class NormKind : std::uint8_t { layernorm, rmsnorm };
// pre: X + f(N(X)); post: N(X + f(X)); sandwich (Gemma 2/3): X + M(f(N(X))), a norm before and after each branch
enum class NormPosition : std::uint8_t { pre, post, sandwich };
enum class Activation : std::uint8_t { gelu, gelu_tanh, relu, silu };
enum class Mlp : std::uint8_t { plain, gated };          // gated: down(act(gate(X)) * up(X)), SwiGLU with silu
enum class ScoreScale : std::uint8_t { divide, multiply };  // S / fl(sqrt(d)) (GPT-2, ViT) or S * fl32(d^-1/2) (Llama)
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

// Rotary position embeddings (Llama family). theta 0: none. Scaling "llama3" stretches the low frequencies
// (Llama 3.1's rope_scaling: factor, low/high_freq_factor, original_max_position_embeddings).
struct RopeConfig {
  double theta = 0;
  std::string scaling = "default";  // default | llama3
  double factor = 1, low_freq_factor = 1, high_freq_factor = 4;
  int original_max_positions = 8192;
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
  // The Llama family (docs/MODELS.md): grouped-query attention, head width, SwiGLU, RoPE, final norm, LM head.
  int kv_heads = 0;    // 0: heads (multi-head attention); else heads / kv_heads query heads share a key/value head
  int head_dim = 0;    // 0: width / heads
  Mlp mlp = Mlp::plain;
  int qkv_bias = -1;           // q/k/v biases: -1 as `bias`, 0 none, 1 present (Qwen2: only these; ViT may drop them)
  ScoreScale score_scale = ScoreScale::divide;
  bool norm_cast = false;
  // The activation is a chain of framework kernels (transformers' gelu_new: pow, mul, add, tanh, ... each its own
  // PyTorch op); plans whose act class is `composite` round every step to act's out (docs/MODELS.md).
  bool activation_chain = false;      // RMSNorm rounds x * rstd to the stream's storage before the gain (LlamaRMSNorm)
  RopeConfig rope;
  bool final_norm = false;     // a norm after the last block (GPT-2's ln_f, Llama's norm, ViT's layernorm)
  bool lm_head = false;        // logits = final (width) x W_head (width x vocab)
  bool tie_word_embeddings = false;  // W_head = wte^T
  // A checkpoint that ships quantised (config.json's quantization_config; docs/BLOCKSCALE.md, "Pre-quantised
  // checkpoints"): "fp8" = E4M3 weights with fp32 weight_scale_inv per block of block_rows x block_cols of the
  // stored [out, in] weight (DeepSeek-V3, Qwen3-FP8); the weights load as codes times scales, exactly.
  std::string shipped_quantization;
  int shipped_block_rows = 0, shipped_block_cols = 0;
  bool learned_positions = true;     // token embedding plus learned positions (GPT-2); false with RoPE
  bool qk_norm = false;              // Qwen3: RMSNorm of each query and key head (its own gains) before RoPE
  int sliding_window = 0;            // Mistral: > 0 must be >= tokens (a window shorter than the input is not modelled)
  // Mixture of experts (Mixtral, Qwen3-MoE; docs/MODELS.md): experts > 0 replaces every block's MLP by a router
  // (width x experts, the Op::router class), a softmax over its logits and the top experts_per_token experts, each
  // an MLP of expert_ffn (0: ffn) with the block's recipe. The selected weights are renormalised to sum 1
  // (router_renormalize: Mixtral always, Qwen3-MoE's norm_topk_prob); router_weights_cast rounds them to the
  // router logits' dtype before they scale the experts' outputs (Qwen3-MoE's `.to(router_logits.dtype)`).
  int experts = 0;
  int experts_per_token = 2;
  int expert_ffn = 0;
  bool router_renormalize = true;
  bool router_weights_cast = false;
  // Gemma 2 (docs/MODELS.md): the token embedding times sqrt(width) rounded to the stream's dtype (embed_scale);
  // norm gains stored as w and applied as (norm_gain_offset + w) in the norm's compute (Gemma's RMSNorm: 1 + w);
  // scores times score_scalar^-1/2 (query_pre_attn_scalar; 0: the head width) and soft-capped as tanh(s / c) c
  // (attn_softcap; 0: none); the logits soft-capped likewise (final_softcap).
  bool embed_scale = false;
  double norm_gain_offset = 0;
  double score_scalar = 0;
  double attn_softcap = 0, final_softcap = 0;
  // Gemma 3: sliding-window layers rotate with their own base (rope_local_theta; 0: every layer rope.theta); with
  // sliding_pattern p > 0 layer l is a sliding-window layer unless (l + 1) is a multiple of p (Gemma 3: 6).
  double rope_local_theta = 0;
  int sliding_pattern = 0;
  // Scores other than S / sqrt(d_head) (Gemma's scalar or soft-capping): what the devices and the flash kernel lack.
  bool rescaled_scores() const { return score_scalar > 0 || attn_softcap > 0; }
  bool local_layer(int l) const { return rope_local_theta > 0 && sliding_pattern > 0 && (l + 1) % sliding_pattern != 0; }
  InitConfig init;
  InputConfig input;

  bool has_qkv_bias() const { return qkv_bias < 0 ? bias : qkv_bias == 1; }
  int head_width() const { return head_dim > 0 ? head_dim : width / heads; }
  int kv_head_count() const { return kv_heads > 0 ? kv_heads : heads; }
  int q_width() const { return heads * head_width(); }
  int expert_width() const { return expert_ffn > 0 ? expert_ffn : ffn; }
  int kv_width() const { return kv_head_count() * head_width(); }
  int patch_dim() const { return channels * patch * patch; }
  int num_patches() const { return patch ? (image / patch) * (image / patch) : 0; }
};

// Reads models/<name>.toml, or a Hugging Face model directory (config.json + safetensors, hf_config.hpp), or a
// TOML file whose [model] table has `hf = "DIR"` with overrides (or TOML text, for tests). Throws ConfigError
// naming file, line and key.
ModelConfig load_model_config(const std::string& path);
ModelConfig parse_model_config(std::string_view toml_text, const std::string& file_name);
// Checks sizes fit together (width divisible by heads, tokens = patches + class token, ...); "" when fine.
std::string validate(const ModelConfig& c);

std::string_view norm_name(NormKind k);
std::string_view activation_name(Activation a);
std::string_view embedding_name(Embedding e);
std::string_view position_name(NormPosition p);
// Parameters of the forward (every block, embeddings, final norm, LM head), as a double: no overflow at any size.
double parameter_count(const ModelConfig& c);
// The taps after the last block: "final" with a final norm, then "logits" with an LM head.
int head_tap_count(const ModelConfig& c);

}  // namespace lpsim
