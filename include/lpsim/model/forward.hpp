#pragma once
// The forward pass, once for every backend. Pre-LN: X' = X + MHSA(N1(X)), X'' = X' + FFN(N2(X')).
// Post-LN: X' = N1(X + MHSA(X)), X'' = N2(X' + FFN(X')). Sandwich (Gemma): X' = X + M1(MHSA(N1(X))),
// X'' = X' + M2(FFN(N2(X'))), the branch taps after M1 and M2. Four taps per block: the attention branch, the stream
// after it, the FFN branch and the block output; then the final norm and the logits where the model has them.
#include <array>
#include <functional>
#include <string_view>
#include <vector>

#include "lpsim/model/layers.hpp"

namespace lpsim {

// After the last block, at layer = depth: "final" (the final norm's output) and "logits" (the LM head's).
enum class Tap : std::uint8_t { attn, mid, ffn, block, final, logits };
inline constexpr Tap all_taps[] = {Tap::attn, Tap::mid, Tap::ffn, Tap::block};
inline std::string_view tap_name(Tap t) {
  constexpr std::string_view names[] = {"attn", "mid", "ffn", "block", "final", "logits"};
  return names[static_cast<int>(t)];
}
// The taps after the blocks, in order (head_tap_count(cfg) of them).
inline std::vector<Tap> head_taps(const ModelConfig& cfg) {
  std::vector<Tap> t;
  if (cfg.final_norm) t.push_back(Tap::final);
  if (cfg.lm_head) t.push_back(Tap::logits);
  return t;
}

// The layer and tap of the index-th tap of a forward (the order a TapSink sees, and emulated_taps returns).
struct TapPosition {
  int layer;
  Tap tap;
};
inline TapPosition tap_at(const ModelConfig& cfg, std::size_t index) {
  const std::size_t blocks = 4 * std::size_t(cfg.depth);
  if (index < blocks) return {int(index / 4), all_taps[index % 4]};
  return {cfg.depth, head_taps(cfg).at(index - blocks)};
}

template <class T>
using TapSink = std::function<void(int layer, Tap tap, const Matrix<T>& value)>;
// Takes each tap's value and returns where it keeps it; the forward reads the value there for as long as it needs
// it, so a caller that stores every tap (run_taps) moves them instead of copying each (1 GB per Llama-1B forward at
// 1024 tokens). The returned reference must stay valid until the forward returns.
template <class T>
using TapKeeper = std::function<const Matrix<T>&(int layer, Tap tap, Matrix<T>&& value)>;

// The forward with every tap handed to keep; returns nothing: the last tap (or, for a model without blocks or
// head, the embedding's output, handed to keep as the block output of layer -1) is its result.
// W: the scalar the weights and input are held in (T itself, or double for the double-double reference).
// routes, when given, receives each mixture-of-experts layer's Routing (after its ffn tap).
template <class B, class T = typename B::Scalar, class W = T>
void forward_kept(B& be, const ModelConfig& cfg, const Weights<W>& w, const ModelInput<W>& in,
                  const TapKeeper<T>& keep, const RouteSink& routes = {}) {
  Matrix<T> embedded = layers::embed<B, T>(be, cfg, w, in);
  if (cfg.depth == 0 && !cfg.final_norm && !cfg.lm_head) {
    keep(-1, Tap::block, std::move(embedded));
    return;
  }
  const Matrix<T>* x = &embedded;  // the residual stream, where it is kept
  for (int l = 0; l < cfg.depth; ++l) {
    be.set_layer(l);
    const LayerWeights<W>& lw = w.layers[l];
    const bool pre = cfg.position != NormPosition::post, sandwich = cfg.position == NormPosition::sandwich;
    auto normed = [&](const Matrix<T>& v, const NormWeights<W>& nw) {
      return layers::norm(be, cfg.norm, v, nw, cfg.norm_eps, cfg.norm_cast);
    };
    // The sandwich's post-norm of a branch, cast back to the branch's dtype (Gemma's `.type_as(x)`).
    auto post_normed = [&](Matrix<T>&& v, const NormWeights<W>& nw, Op branch) {
      return sandwich ? layers::norm(be, cfg.norm, v, nw, cfg.norm_eps, cfg.norm_cast, true, branch) : std::move(v);
    };
    // Gemma 3's sliding-window layers rotate by their own tables.
    const bool local = cfg.local_layer(l) && !w.rope_local_cos.empty();
    const Matrix<W>& cos = local ? w.rope_local_cos : w.rope_cos;
    const Matrix<W>& sin = local ? w.rope_local_sin : w.rope_sin;
    const Matrix<T>& a = keep(l, Tap::attn, post_normed(pre ? layers::normed_attention(be, cfg, lw, *x, cos, sin)
                                                            : layers::attention(be, cfg, lw, *x, cos, sin),
                                                        lw.post_norm1, Op::out_proj));
    Matrix<T> after = layers::residual_add(be, *x, a);
    if (!pre) after = normed(after, lw.norm1);
    x = &keep(l, Tap::mid, std::move(after));
    Routing routing;
    Routing* chosen = routes && !lw.experts.empty() ? &routing : nullptr;
    const Matrix<T>& f = keep(l, Tap::ffn, post_normed(pre ? layers::normed_feed_forward(be, cfg, lw, *x, chosen)
                                                           : layers::feed_forward(be, cfg, lw, *x, chosen),
                                                       lw.post_norm2, Op::ffn_down));
    if (chosen) {
      routing.layer = l;
      routes(std::move(routing));
    }
    Matrix<T> out = layers::residual_add(be, *x, f);
    if (!pre) out = normed(out, lw.norm2);
    x = &keep(l, Tap::block, std::move(out));
  }
  be.set_layer(cfg.depth);
  if (cfg.final_norm)
    x = &keep(cfg.depth, Tap::final, layers::norm(be, cfg.norm, *x, w.final_norm, cfg.norm_eps, cfg.norm_cast, false));
  if (cfg.lm_head) {
    Matrix<T> logits = be.linear(Op::lm_head, *x, w.lm_head, nullptr);
    if (cfg.final_softcap > 0) layers::soft_cap(be, Op::lm_head, logits, cfg.final_softcap);  // Gemma 2
    keep(cfg.depth, Tap::logits, std::move(logits));
  }
}

// The forward with each tap shown to `tap`; returns the last value (the logits where the model has an LM head).
template <class B, class T = typename B::Scalar, class W = T>
Matrix<T> forward(B& be, const ModelConfig& cfg, const Weights<W>& w, const ModelInput<W>& in,
                  const TapSink<T>& tap = {}) {
  // One slot per kind of tap: a value is dead by the time the next one of its kind arrives (the stream after a
  // block is last read by the next block's first residual add, before that block's output).
  std::array<Matrix<T>, 6> slots;
  Matrix<T>* last = nullptr;
  forward_kept<B, T, W>(be, cfg, w, in, [&](int l, Tap t, Matrix<T>&& m) -> const Matrix<T>& {
    last = &slots[static_cast<int>(t)];
    *last = std::move(m);
    if (tap && l >= 0) tap(l, t, *last);
    return *last;
  });
  return std::move(*last);
}

}  // namespace lpsim
