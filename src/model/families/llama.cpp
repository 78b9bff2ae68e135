// The Llama family (model_types llama, mistral, qwen2): RMSNorm with LlamaRMSNorm's cast, rotary embeddings
// (llama3 scaling), grouped-query attention, SwiGLU, no biases (Qwen2: q/k/v biases), final norm, LM head.
#include <fmt/format.h>

#include "model/families/llama.hpp"

#include "model/hf_fields.hpp"

namespace lpsim {
namespace llama_family {
namespace {

// The block's recipe, shared by a TOML file's defaults and config.json.
void recipe(ModelConfig& c) {
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
}

}  // namespace

ModelConfig defaults() {
  ModelConfig c;
  c.arch = "llama";
  recipe(c);
  c.norm_eps = 1e-6;
  c.qkv_bias = 0;
  c.rope.theta = 10000;
  c.init.scheme = "gaussian";
  c.width = 64;
  c.heads = 4;
  c.kv_heads = 2;
  c.ffn = 172;
  c.depth = 2;
  c.tokens = 32;
  c.vocab = 256;
  return c;
}

void read_fields(const HfFields& f, std::string_view type, ModelConfig& c, int head_dim_fallback) {
  recipe(c);
  c.width = f.integer("hidden_size");
  c.heads = f.integer("num_attention_heads");
  c.kv_heads = f.integer("num_key_value_heads", c.heads);
  c.head_dim = f.integer("head_dim", head_dim_fallback > 0 ? head_dim_fallback : c.heads ? c.width / c.heads : 0);
  if (static_cast<long long>(c.head_dim) * c.heads == c.width) c.head_dim = 0;  // the usual width / heads
  c.depth = f.integer("num_hidden_layers");
  c.ffn = f.integer("intermediate_size");
  c.vocab = f.integer("vocab_size");
  c.norm_eps = f.number("rms_norm_eps", 1e-6);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  c.tokens = default_tokens(f, "max_position_embeddings", 2048);
  const std::string act = f.text("hidden_act", "silu");
  if (act != "silu") f.fail("hidden_act", fmt::format("= '{}' is not modelled (silu)", act));
  c.qkv_bias = type == "qwen2" ? 1 : 0;  // Qwen2's q/k/v projections always carry biases
  if (f.boolean("attention_bias", false)) f.fail("attention_bias", "= true is not modelled (biases on q, k, v and o)");
  if (f.boolean("mlp_bias", false)) f.fail("mlp_bias", "= true is not modelled");
  if (type == "qwen2" && f.boolean("use_sliding_window", false)) f.fail("use_sliding_window", "= true is not modelled");
  if (type == "mistral" && f.has("sliding_window")) c.sliding_window = f.integer("sliding_window");
  read_rope(f, c);
}

CheckpointLayout layout(const ModelConfig& c) {
  using P = LayerParam;
  CheckpointLayout l;
  l.prefixes = {"", "model."};
  l.layer = "layers.{}.";
  for (auto [name, w, b] : {std::tuple{"q_proj", P::wq, P::bq}, {"k_proj", P::wk, P::bk}, {"v_proj", P::wv, P::bv}}) {
    l.block.push_back({fmt::format("self_attn.{}.weight", name), {w}});
    if (c.has_qkv_bias()) l.block.push_back({fmt::format("self_attn.{}.bias", name), {b}});
  }
  l.block.push_back({"self_attn.o_proj.weight", {P::wo}});
  if (c.qk_norm) l.block.push_back({"self_attn.q_norm", {P::q_norm}}), l.block.push_back({"self_attn.k_norm", {P::k_norm}});
  l.block.push_back({"mlp.gate_proj.weight", {P::w1}});
  l.block.push_back({"mlp.up_proj.weight", {P::w3}});
  l.block.push_back({"mlp.down_proj.weight", {P::w2}});
  l.block.push_back({"input_layernorm", {P::norm1}});
  l.block.push_back({"post_attention_layernorm", {P::norm2}});
  l.token_embedding = "embed_tokens.weight";
  l.final_norm = "norm";
  l.ignored_suffixes = {"rotary_emb.inv_freq"};  // a buffer some versions save
  return l;
}

void with_experts(CheckpointLayout& l, std::string router, std::string expert, const std::array<std::string, 3>& gate_up_down) {
  using P = LayerParam;
  std::erase_if(l.block, [](const LayerTensor& t) { return t.name.starts_with("mlp."); });
  l.router = std::move(router);
  l.expert = std::move(expert);
  l.expert_block = {{gate_up_down[0], {P::w1}}, {gate_up_down[1], {P::w3}}, {gate_up_down[2], {P::w2}}};
  l.fused_experts = "mlp.experts.";
  l.fused_router = "mlp.gate.weight";
}

}  // namespace llama_family

extern const Family family_llama{.arch = "llama",
                                 .model_types = {"llama", "mistral", "qwen2"},
                                 .summary = "llama: Llama, Mistral, Qwen2 (RMSNorm, RoPE, GQA, SwiGLU)",
                                 .defaults = llama_family::defaults,
                                 .from_hf = [](const HfFields& f, std::string_view type, ModelConfig& c) {
                                   llama_family::read_fields(f, type, c);
                                 },
                                 .layout = llama_family::layout,
                               .checkpoint_family = {}};

}  // namespace lpsim
