#pragma once
// The contract between the one forward (layers.hpp, forward.hpp) and the arithmetic it runs on. A backend has a
// Scalar (the values of the forward), the operations every forward needs (the Backend concept), and declares in
// `static constexpr BackendHooks hooks` which optional hooks it offers. layers.hpp calls exactly the declared ones,
// and hooks_of<B>() refuses to compile where a declared hook is missing or misspelt, or a hook is defined but not
// declared: a misspelt hook can no longer switch itself off in silence.
#include <concepts>
#include <span>
#include <vector>

#include "lpsim/model/matrix.hpp"
#include "lpsim/model/model_config.hpp"
#include "lpsim/model/plan.hpp"
#include "lpsim/model/weights.hpp"

namespace lpsim {

struct BackendHooks {
  bool rows_in_parallel = false;         // row loops may run on threads (same bits in any order)
  bool heads_in_parallel = false;        // attention heads may run on threads of their own
  bool store_computed = false;           // a store of compute's own values may skip a rounding
  bool attention_kernel = false;         // the plan's attention kernel (flash) is emulated
  bool device_head = false;              // one head on an accelerator
  bool device_heads = false;             // a layer's heads on an accelerator (takes_heads, device_heads)
  bool device_attention = false;         // a whole attention layer on an accelerator
  bool device_feed_forward = false;      // a whole MLP on an accelerator
  bool kv_cache = false;                 // keys and values stored in a KV cache format (plan.hpp, KvCache)
  bool observe_norm_input = false;       // diagnostics: each block norm's input
  bool observe_attention_input = false;  // diagnostics: each attention layer's input
  bool observe_head = false;             // diagnostics: q, k, scores, probabilities and v of each head
  bool check_norm = false;               // a reference's sampled check of each norm
  bool check_softmax = false;            // ... and of each softmax
};

template <class B>
struct weight_scalar {
  using type = typename B::Scalar;
};
template <class B>
  requires requires { typename B::Weight; }
struct weight_scalar<B> {
  using type = typename B::Weight;  // the weights' scalar where it is not the forward's (double-double: double)
};
template <class B>
using weight_of = typename weight_scalar<B>::type;

// What every forward calls.
template <class B>
concept Backend = requires(B& be, Op op, const typename B::Scalar& x, std::span<const typename B::Scalar> s,
                           Matrix<typename B::Scalar>& m, const std::vector<typename B::Scalar>* bias) {
  { be.compute(op, x) } -> std::convertible_to<typename B::Scalar>;
  { be.chain_step(op, x) } -> std::convertible_to<typename B::Scalar>;
  { be.sum(op, s) } -> std::convertible_to<typename B::Scalar>;
  { be.dot(op, s, s) } -> std::convertible_to<typename B::Scalar>;
  { be.gemm(op, m, m, bias) } -> std::same_as<Matrix<typename B::Scalar>>;
  be.store(op, m);
  be.set_layer(0);
};

// One named concept per optional hook, with the signature layers.hpp calls it with.
namespace hook {
template <class B, class S = typename B::Scalar, class W = weight_of<B>>
concept rows_in_parallel = requires(const B& be) { { be.rows_in_parallel() } -> std::convertible_to<bool>; };
template <class B, class S = typename B::Scalar, class W = weight_of<B>>
concept heads_in_parallel = requires(const B& be) { { be.heads_in_parallel() } -> std::convertible_to<bool>; };
template <class B, class S = typename B::Scalar, class W = weight_of<B>>
concept store_computed = requires(B& be, Op op, Matrix<S>& m) { be.store_computed(op, m); };
template <class B, class S = typename B::Scalar, class W = weight_of<B>>
concept attention_kernel = requires(B& be) { { be.attention_kernel() } -> std::convertible_to<const AttentionKernel&>; };
template <class B, class S = typename B::Scalar, class W = weight_of<B>>
concept device_head = requires(B& be, const Matrix<S>& q, bool causal, ScoreScale scale) {
  { *be.device_head(q, q, q, causal, scale) } -> std::convertible_to<Matrix<S>>;
};
template <class B, class S = typename B::Scalar, class W = weight_of<B>>
concept device_heads = requires(B& be, std::vector<Matrix<S>>& q, bool causal, ScoreScale scale) {
  { be.takes_heads() } -> std::convertible_to<bool>;
  { *be.device_heads(q, q, q, causal, scale) } -> std::convertible_to<Matrix<S>>;
};
template <class B, class S = typename B::Scalar, class W = weight_of<B>>
concept device_attention = requires(B& be, const ModelConfig& c, const LayerWeights<W>& w, const Matrix<S>& h,
                                    const Matrix<W>& table, const NormWeights<W>* norm) {
  { *be.device_attention(c, w, h, table, table) } -> std::convertible_to<Matrix<S>>;
  { *be.device_attention(c, w, h, table, table, norm) } -> std::convertible_to<Matrix<S>>;
};
template <class B, class S = typename B::Scalar, class W = weight_of<B>>
concept device_feed_forward = requires(B& be, const ModelConfig& c, const LayerWeights<W>& w, const Matrix<S>& h,
                                       const NormWeights<W>* norm) {
  { *be.device_feed_forward(c, w, h) } -> std::convertible_to<Matrix<S>>;
  { *be.device_feed_forward(c, w, h, norm) } -> std::convertible_to<Matrix<S>>;
};
template <class B, class S = typename B::Scalar, class W = weight_of<B>>
concept kv_cache = requires(B& be, std::vector<Matrix<S>>& heads) { be.store_kv(heads, heads); };
template <class B, class S = typename B::Scalar, class W = weight_of<B>>
concept observe_norm_input = requires(B& be, const Matrix<S>& x) { be.observe_norm_input(x); };
template <class B, class S = typename B::Scalar, class W = weight_of<B>>
concept observe_attention_input = requires(B& be, const Matrix<S>& x) { be.observe_attention_input(x); };
template <class B, class S = typename B::Scalar, class W = weight_of<B>>
concept observe_head = requires(B& be, const Matrix<S>& m) { be.observe_head(m, m, m, m, m); };
template <class B, class S = typename B::Scalar, class W = weight_of<B>>
concept check_norm = requires(B& be, NormKind kind, const Matrix<S>& x, const NormWeights<W>& w, double eps, bool cast) {
  be.check_norm(kind, x, w, eps, cast, x);
};
template <class B, class S = typename B::Scalar, class W = weight_of<B>>
concept check_softmax = requires(B& be, const Matrix<S>& s, bool causal) { be.check_softmax(s, causal, s); };
}  // namespace hook

template <class B>
constexpr BackendHooks declared_hooks() {
  if constexpr (requires { B::hooks; }) return B::hooks;
  else return {};
}

// The hooks B declares, after checking that they are the hooks B defines.
template <class B>
consteval BackendHooks hooks_of() {
  static_assert(Backend<B>, "not a backend: compute, chain_step, sum, dot, gemm, store and set_layer are needed");
  constexpr BackendHooks h = declared_hooks<B>();
#define LPSIM_CHECK_HOOK(name)                                                                                        \
  static_assert(h.name == hook::name<B>, "backend hook '" #name "': declared in hooks but not defined with the "      \
                                         "signature layers.hpp calls, or defined but not declared in hooks")
  LPSIM_CHECK_HOOK(rows_in_parallel);
  LPSIM_CHECK_HOOK(heads_in_parallel);
  LPSIM_CHECK_HOOK(store_computed);
  LPSIM_CHECK_HOOK(attention_kernel);
  LPSIM_CHECK_HOOK(device_head);
  LPSIM_CHECK_HOOK(device_heads);
  LPSIM_CHECK_HOOK(device_attention);
  LPSIM_CHECK_HOOK(device_feed_forward);
  LPSIM_CHECK_HOOK(kv_cache);
  LPSIM_CHECK_HOOK(observe_norm_input);
  LPSIM_CHECK_HOOK(observe_attention_input);
  LPSIM_CHECK_HOOK(observe_head);
  LPSIM_CHECK_HOOK(check_norm);
  LPSIM_CHECK_HOOK(check_softmax);
#undef LPSIM_CHECK_HOOK
  return h;
}

}  // namespace lpsim
