// Gemma 2 (model_type "gemma2"): RMSNorm applied as x rstd (1 + w) in fp32 and cast back to its input's dtype
// (Gemma2RMSNorm), "sandwich" norms (a norm before and after each branch), the token embedding times sqrt(width) in
// the stream's dtype, GeGLU with the tanh GELU, scores times query_pre_attn_scalar^-1/2, attention and final logit
// soft-capping (tanh(x / c) c), grouped-query attention, RoPE, a tied LM head. Its alternate layers attend within a
// sliding window: equal to full attention while the input is no longer than the window (longer inputs are refused).
#include <fmt/format.h>

#include "lpsim/model/family.hpp"
#include "model/families/llama.hpp"
#include "model/hf_fields.hpp"

namespace lpsim {
namespace {

void recipe(ModelConfig& c) {
  c.norm = NormKind::rmsnorm;
  c.position = NormPosition::sandwich;
  c.norm_gain_offset = 1;
  c.norm_cast = false;  // the whole norm in fp32, one cast at the end
  c.activation = Activation::gelu_tanh;
  c.mlp = Mlp::gated;
  c.causal = true;
  c.bias = false;
  c.qkv_bias = 0;
  c.embedding = Embedding::tokens;
  c.embed_scale = true;
  c.learned_positions = false;
  c.score_scale = ScoreScale::multiply;
  c.final_norm = true;
  c.lm_head = true;
}

ModelConfig defaults() {
  ModelConfig c = llama_family::defaults();
  c.arch = "gemma2";
  recipe(c);
  c.tie_word_embeddings = true;
  c.head_dim = 32;
  c.score_scalar = 32;
  c.attn_softcap = 50;
  c.final_softcap = 30;
  return c;
}

// A soft-capping field: absent takes Gemma2Config's default, null switches it off.
double softcap(const HfFields& f, const std::string& key, double fallback) {
  if (f.json().contains(key) && f.json().at(key).is_null()) return 0;
  const double v = f.number(key, fallback);
  if (!(v > 0)) f.fail(key, fmt::format("= {} must be > 0 (null: none)", v));
  return v;
}

void from_hf(const HfFields& f, std::string_view, ModelConfig& c) {
  recipe(c);
  c.width = f.integer("hidden_size");
  c.heads = f.integer("num_attention_heads");
  c.kv_heads = f.integer("num_key_value_heads", c.heads);
  c.head_dim = f.integer("head_dim", 256);
  if (static_cast<long long>(c.head_dim) * c.heads == c.width) c.head_dim = 0;
  c.depth = f.integer("num_hidden_layers");
  c.ffn = f.integer("intermediate_size");
  c.vocab = f.integer("vocab_size");
  c.norm_eps = f.number("rms_norm_eps", 1e-6);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", true);
  c.tokens = default_tokens(f, "max_position_embeddings", 8192);
  const std::string key = f.has("hidden_activation") ? "hidden_activation" : "hidden_act";
  if (const std::string act = f.text(key, "gelu_pytorch_tanh"); act != "gelu_pytorch_tanh")
    f.fail(key, fmt::format("= '{}' is not modelled (gelu_pytorch_tanh)", act));
  if (f.boolean("attention_bias", false)) f.fail("attention_bias", "= true is not modelled");
  c.score_scalar = f.number("query_pre_attn_scalar", 256);
  if (!(c.score_scalar > 0)) f.fail("query_pre_attn_scalar", "must be > 0");
  c.attn_softcap = softcap(f, "attn_logit_softcapping", 50);
  c.final_softcap = softcap(f, "final_logit_softcapping", 30);
  if (f.has("sliding_window")) c.sliding_window = f.integer("sliding_window");
  read_rope(f, c);
}

CheckpointLayout layout(const ModelConfig& c) {
  using P = LayerParam;
  CheckpointLayout l = llama_family::layout(c);
  std::erase_if(l.block, [](const LayerTensor& t) { return t.name.ends_with("layernorm"); });
  l.block.push_back({"input_layernorm", {P::norm1}});
  l.block.push_back({"post_attention_layernorm", {P::post_norm1}});
  l.block.push_back({"pre_feedforward_layernorm", {P::norm2}});
  l.block.push_back({"post_feedforward_layernorm", {P::post_norm2}});
  return l;
}

}  // namespace

extern const Family family_gemma2{.arch = "gemma2",
                                  .model_types = {"gemma2"},
                                  .summary = "gemma2: Gemma 2 (sandwich RMSNorms with 1 + w, GeGLU, soft-capped scores and logits)",
                                  .defaults = defaults,
                                  .from_hf = from_hf,
                                  .layout = layout,
                                  .checkpoint_family = {}};

}  // namespace lpsim
