// Phi-3 (model_type "phi3"): the Llama block with its projections fused as stored: qkv_proj holds q, k and v
// (out x in, rows in that order) and gate_up_proj holds gate then up (transformers' Phi3MLP: chunk(2) of one
// GEMM's output). Attention may carry a sliding window (as Mistral's: refused where the input is longer). Rotary
// embeddings over part of a head (partial_rotary_factor < 1, read_rope) and longrope scaling are refused by name.
#include "lpsim/model/family.hpp"
#include "model/families/llama.hpp"
#include "model/hf_fields.hpp"

namespace lpsim {
namespace {

ModelConfig defaults() {
  ModelConfig c = llama_family::defaults();
  c.arch = "phi3";
  c.norm_eps = 1e-5;
  return c;
}

void from_hf(const HfFields& f, std::string_view type, ModelConfig& c) {
  llama_family::read_fields(f, type, c);
  c.norm_eps = f.number("rms_norm_eps", 1e-5);  // Phi3Config's default
  if (f.has("sliding_window")) c.sliding_window = f.integer("sliding_window");
}

CheckpointLayout layout(const ModelConfig& c) {
  using P = LayerParam;
  CheckpointLayout l = llama_family::layout(c);
  l.block.clear();
  l.block.push_back({"self_attn.qkv_proj.weight", {P::wq, P::wk, P::wv}});
  l.block.push_back({"self_attn.o_proj.weight", {P::wo}});
  l.block.push_back({"mlp.gate_up_proj.weight", {P::w1, P::w3}});
  l.block.push_back({"mlp.down_proj.weight", {P::w2}});
  l.block.push_back({"input_layernorm", {P::norm1}});
  l.block.push_back({"post_attention_layernorm", {P::norm2}});
  return l;
}

}  // namespace

extern const Family family_phi3{.arch = "phi3",
                                .model_types = {"phi3"},
                                .summary = "phi3: Phi-3 (the Llama block with fused qkv and gate_up projections)",
                                .defaults = defaults,
                                .from_hf = from_hf,
                                .layout = layout,
                                .checkpoint_family = {}};

}  // namespace lpsim
