#pragma once
// The forward pass, once for every backend. Pre-LN: X' = X + MHSA(N1(X)), X'' = X' + FFN(N2(X')).
// Post-LN: X' = N1(X + MHSA(X)), X'' = N2(X' + FFN(X')). Four taps per block: the attention branch, the stream
// after it, the FFN branch and the block output; then the final norm and the logits where the model has them.
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

// W: the scalar the weights and input are held in (T itself, or double for the double-double reference).
template <class B, class T = typename B::Scalar, class W = T>
Matrix<T> forward(B& be, const ModelConfig& cfg, const Weights<W>& w, const ModelInput<W>& in,
                  const TapSink<T>& tap = {}) {
  auto emit = [&](int l, Tap t, const Matrix<T>& m) {
    if (tap) tap(l, t, m);
  };
  Matrix<T> x = layers::embed<B, T>(be, cfg, w, in);
  for (int l = 0; l < cfg.depth; ++l) {
    be.set_layer(l);
    const LayerWeights<W>& lw = w.layers[l];
    const bool pre = cfg.position == NormPosition::pre;
    auto normed = [&](const Matrix<T>& v, const NormWeights<W>& nw) {
      return layers::norm(be, cfg.norm, v, nw, cfg.norm_eps, cfg.norm_cast);
    };
    const Matrix<T> a = layers::attention(be, cfg, lw, pre ? normed(x, lw.norm1) : x, w.rope_cos, w.rope_sin);
    emit(l, Tap::attn, a);
    x = layers::residual_add(be, x, a);
    if (!pre) x = normed(x, lw.norm1);
    emit(l, Tap::mid, x);
    const Matrix<T> f = layers::feed_forward(be, cfg, lw, pre ? normed(x, lw.norm2) : x);
    emit(l, Tap::ffn, f);
    x = layers::residual_add(be, x, f);
    if (!pre) x = normed(x, lw.norm2);
    emit(l, Tap::block, x);
  }
  be.set_layer(cfg.depth);
  if (cfg.final_norm) {
    x = layers::norm(be, cfg.norm, x, w.final_norm, cfg.norm_eps, cfg.norm_cast, false);
    emit(cfg.depth, Tap::final, x);
  }
  if (cfg.lm_head) {
    x = be.linear(Op::lm_head, x, w.lm_head, nullptr);
    emit(cfg.depth, Tap::logits, x);
  }
  return x;
}

}  // namespace lpsim
