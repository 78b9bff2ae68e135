// GPT-2 (model_type "gpt2"): pre-LN decoder, tanh-GELU (gelu_new as transformers' chain of ops), learned
// positions, Conv1D weights stored in x out with q, k and v fused in c_attn, final LayerNorm, tied LM head.
#include <fmt/format.h>

#include <algorithm>

#include "lpsim/model/family.hpp"
#include "model/hf_fields.hpp"

namespace lpsim {
namespace {

ModelConfig defaults() {
  ModelConfig c;
  c.arch = "gpt2";
  c.activation = Activation::gelu_tanh;
  c.causal = true;
  c.init.scheme = "gaussian";
  c.tokens = 64;
  return c;
}

void from_hf(const HfFields& f, std::string_view, ModelConfig& c) {
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
  c.tokens = default_tokens(f, "n_positions", 1024);
  read_gelu_or_relu(f, "activation_function", "gelu_new", c);
  if (!f.boolean("scale_attn_weights", true)) f.fail("scale_attn_weights", "= false is not modelled");
  if (f.boolean("scale_attn_by_inverse_layer_idx", false)) f.fail("scale_attn_by_inverse_layer_idx", "= true is not modelled");
  if (f.boolean("reorder_and_upcast_attn", false)) f.fail("reorder_and_upcast_attn", "= true is not modelled");
  c.final_norm = true;
  c.lm_head = true;
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", true);
}

CheckpointLayout layout(const ModelConfig& c) {
  using P = LayerParam;
  CheckpointLayout l;
  l.prefixes = {"", "transformer."};
  l.layer = "h.{}.";
  l.block.push_back({"attn.c_attn.weight", {P::wq, P::wk, P::wv}, Stored::in_out});
  if (c.has_qkv_bias()) l.block.push_back({"attn.c_attn.bias", {P::bq, P::bk, P::bv}});
  for (auto [name, w, b] : {std::tuple{"attn.c_proj", P::wo, P::bo}, {"mlp.c_fc", P::w1, P::b1}, {"mlp.c_proj", P::w2, P::b2}}) {
    l.block.push_back({fmt::format("{}.weight", name), {w}, Stored::in_out});
    if (c.bias) l.block.push_back({fmt::format("{}.bias", name), {b}});
  }
  l.block.push_back({"ln_1", {P::norm1}});
  l.block.push_back({"ln_2", {P::norm2}});
  l.token_embedding = "wte.weight";
  l.positions = "wpe.weight";
  l.final_norm = "ln_f";
  l.ignored_suffixes = {".attn.bias", ".attn.masked_bias"};  // GPT-2's causal-mask buffers
  return l;
}

}  // namespace

extern const Family family_gpt2{.arch = "gpt2",
                                .model_types = {"gpt2"},
                                .summary = "gpt2: GPT-2 (pre-LN decoder, tanh-GELU, learned positions, tied head)",
                                .defaults = defaults,
                                .from_hf = from_hf,
                                .layout = layout,
                               .checkpoint_family = {}};

}  // namespace lpsim
