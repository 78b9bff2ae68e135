// The encoder family: arXiv 2510.21770's Tiny-ViT (TOML) and Hugging Face's ViTModel (model_type "vit"): LayerNorm
// before both branches, exact GELU, patch embedding with a class token and learned positions, a final LayerNorm.
#include <fmt/format.h>

#include <algorithm>

#include "lpsim/model/family.hpp"
#include "model/hf_fields.hpp"

namespace lpsim {
namespace {

ModelConfig defaults() {
  ModelConfig c;
  c.arch = "encoder";
  return c;
}

void from_hf(const HfFields& f, std::string_view, ModelConfig& c) {
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
  read_gelu_or_relu(f, "hidden_act", "gelu", c);
  c.final_norm = true;  // ViTModel's layernorm after the encoder
}

CheckpointLayout layout(const ModelConfig& c) {
  using P = LayerParam;
  CheckpointLayout l;
  l.prefixes = {"", "vit."};
  l.layer = "encoder.layer.{}.";
  const bool qkv_bias = c.has_qkv_bias();
  for (auto [name, w, b] : {std::tuple{"attention.attention.query", P::wq, P::bq}, {"attention.attention.key", P::wk, P::bk},
                            {"attention.attention.value", P::wv, P::bv}}) {
    l.block.push_back({fmt::format("{}.weight", name), {w}});
    if (qkv_bias) l.block.push_back({fmt::format("{}.bias", name), {b}});
  }
  for (auto [name, w, b] : {std::tuple{"attention.output.dense", P::wo, P::bo}, {"intermediate.dense", P::w1, P::b1},
                            {"output.dense", P::w2, P::b2}}) {
    l.block.push_back({fmt::format("{}.weight", name), {w}});
    if (c.bias) l.block.push_back({fmt::format("{}.bias", name), {b}});
  }
  l.block.push_back({"layernorm_before", {P::norm1}});
  l.block.push_back({"layernorm_after", {P::norm2}});
  l.token_embedding = "wte.weight";  // an encoder over token ids reads GPT-2's embedding names
  l.positions = "wpe.weight";
  l.patch_projection = "embeddings.patch_embeddings.projection";
  l.class_token = "embeddings.cls_token";
  l.patch_positions = "embeddings.position_embeddings";
  l.final_norm = "layernorm";
  l.ignored_prefixes = {"pooler.", "vit.pooler.", "classifier."};
  return l;
}

}  // namespace

extern const Family family_vit{.arch = "encoder",
                               .model_types = {"vit"},
                               .summary = "encoder: arXiv 2510.21770's Tiny-ViT and ViTModel (pre-LN, GELU, patches)",
                               .defaults = defaults,
                               .from_hf = from_hf,
                               .layout = layout,
                               .checkpoint_family = {}};

}  // namespace lpsim
