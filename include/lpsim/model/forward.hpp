#pragma once
// The forward pass, once for every backend. Pre-LN: X' = X + MHSA(N1(X)), X'' = X' + FFN(N2(X')).
// Post-LN: X' = N1(X + MHSA(X)), X'' = N2(X' + FFN(X')). Four taps per block: the attention branch, the stream
// after it, the FFN branch and the block output.
#include <functional>
#include <string_view>

#include "lpsim/model/layers.hpp"

namespace lpsim {

enum class Tap : std::uint8_t { attn, mid, ffn, block };
inline constexpr Tap all_taps[] = {Tap::attn, Tap::mid, Tap::ffn, Tap::block};
inline std::string_view tap_name(Tap t) {
  constexpr std::string_view names[] = {"attn", "mid", "ffn", "block"};
  return names[static_cast<int>(t)];
}

template <class T>
using TapSink = std::function<void(int layer, Tap tap, const Matrix<T>& value)>;

template <class B, class T = typename B::Scalar>
Matrix<T> forward(B& be, const ModelConfig& cfg, const Weights<T>& w, const ModelInput<T>& in,
                  const TapSink<T>& tap = {}) {
  auto emit = [&](int l, Tap t, const Matrix<T>& m) {
    if (tap) tap(l, t, m);
  };
  Matrix<T> x = layers::embed(be, cfg, w, in);
  for (int l = 0; l < cfg.depth; ++l) {
    be.set_layer(l);
    const LayerWeights<T>& lw = w.layers[l];
    const bool pre = cfg.position == NormPosition::pre;
    const Matrix<T> a = layers::attention(be, cfg, lw, pre ? layers::norm(be, cfg.norm, x, lw.norm1, cfg.norm_eps) : x);
    emit(l, Tap::attn, a);
    x = layers::residual_add(be, x, a);
    if (!pre) x = layers::norm(be, cfg.norm, x, lw.norm1, cfg.norm_eps);
    emit(l, Tap::mid, x);
    const Matrix<T> f = layers::feed_forward(be, cfg, lw, pre ? layers::norm(be, cfg.norm, x, lw.norm2, cfg.norm_eps) : x);
    emit(l, Tap::ffn, f);
    x = layers::residual_add(be, x, f);
    if (!pre) x = layers::norm(be, cfg.norm, x, lw.norm2, cfg.norm_eps);
    emit(l, Tap::block, x);
  }
  return x;
}

}  // namespace lpsim
