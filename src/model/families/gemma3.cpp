// Gemma 3 text (model_type "gemma3_text"): Gemma 2's block (sandwich RMSNorms with 1 + w, the embedding times
// sqrt(width), GeGLU, score scalar) with QK-norm (Gemma's RMSNorm over each query and key head, its output in the
// projection's dtype) and per-layer RoPE bases: sliding-window layers rotate with rope_local_base_freq, every
// sliding_window_pattern-th layer (full attention) with rope_theta. No soft-capping unless the config sets it. The
// sliding window equals full attention while the input is no longer than it (longer inputs are refused); rope types
// other than default (Gemma 3 4B+'s linear scaling of the global layers) are refused by name.
#include <fmt/format.h>

#include "lpsim/model/family.hpp"
#include "model/hf_fields.hpp"

namespace lpsim {
namespace {

ModelConfig defaults() {
  ModelConfig c = family_by_arch("gemma2")->defaults();
  c.arch = "gemma3";
  c.qk_norm = true;
  c.attn_softcap = 0;
  c.final_softcap = 0;
  c.rope.theta = 1000000;
  c.rope_local_theta = 10000;
  c.sliding_pattern = 2;
  return c;
}

// A rope object of Gemma 3's (rope_scaling in 4.x, or rope_parameters' per-layer-type entries in 5.x): only the
// default type is modelled; its rope_theta, where present, is the base.
void read_base(const HfFields& f, const std::string& key, double& theta) {
  if (!f.has(key)) return;
  const HfFields p = f.object(key);
  if (const std::string type = p.text("rope_type", p.text("type", "default")); type != "default")
    p.fail("rope_type", fmt::format("= '{}' is not modelled for Gemma 3 (default)", type));
  if (p.has("rope_theta")) theta = p.number("rope_theta");
}

void from_hf(const HfFields& f, std::string_view type, ModelConfig& c) {
  family_by_arch("gemma2")->from_hf(f, type, c);  // sizes, norms, embedding, GeGLU, score scalar, window
  c.qk_norm = true;
  for (auto [key, cap] : {std::pair{"attn_logit_softcapping", &c.attn_softcap}, {"final_logit_softcapping", &c.final_softcap}}) {
    *cap = f.has(key) ? f.number(key) : 0;  // Gemma 3: none unless set
    if (!(*cap >= 0)) f.fail(key, "must be > 0 (null: none)");
  }
  double global = f.number("rope_theta", 1000000), local = f.number("rope_local_base_freq", 10000);
  if (f.has("rope_parameters") && f.json().at("rope_parameters").contains("full_attention")) {  // 5.x
    const HfFields p = f.object("rope_parameters");
    read_base(p, "full_attention", global);
    read_base(p, "sliding_attention", local);
  } else {
    read_base(f, "rope_scaling", global);
  }
  if (!(global > 0 && local > 0)) f.fail("rope_theta", "and rope_local_base_freq must be > 0");
  c.rope = RopeConfig{};
  c.rope.theta = global, c.rope_local_theta = local;
  c.sliding_pattern = f.integer("sliding_window_pattern", 6);
  if (f.has("layer_types")) {  // 5.x: the same pattern written out; another arrangement is refused
    const auto& types = f.json().at("layer_types");
    if (!types.is_array()) f.fail("layer_types", "must be a list");
    int first_full = -1;
    for (std::size_t l = 0; l < types.size() && first_full < 0; ++l)
      if (types[l] == "full_attention") first_full = int(l);
    c.sliding_pattern = first_full < 0 ? 0 : first_full + 1;  // 0: every layer slides (all local)
    for (std::size_t l = 0; l < types.size(); ++l) {
      const bool full = c.sliding_pattern > 0 && (int(l) + 1) % c.sliding_pattern == 0;
      if (types[l] != (full ? "full_attention" : "sliding_attention"))
        f.fail("layer_types", fmt::format("holds {} at layer {}: only every {}-th layer with full attention is modelled",
                                          types[l].dump(), l, c.sliding_pattern));
    }
    if (c.sliding_pattern == 0) c.sliding_pattern = int(types.size()) + 1;  // no full layer within the depth
  }
}

CheckpointLayout layout(const ModelConfig& c) { return family_by_arch("gemma2")->layout(c); }

}  // namespace

extern const Family family_gemma3{.arch = "gemma3",
                                  .model_types = {"gemma3_text"},
                                  .summary = "gemma3: Gemma 3 text (Gemma 2's block with QK-norm and per-layer RoPE bases)",
                                  .defaults = defaults,
                                  .from_hf = from_hf,
                                  .layout = layout,
                                  .checkpoint_family = {}};

}  // namespace lpsim
