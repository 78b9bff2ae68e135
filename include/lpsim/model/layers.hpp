#pragma once
// The layers of the forward, written once for every backend (emulated, float, double, MPFR, dual numbers).
// A backend supplies what depends on precision (backend.hpp says what each hook means):
//   gemm(op, A, B, bias*)  A B (+ bias) under the op's accumulation policy, result stored (two activations)
//   linear(op, X, W, bias*) the same with W a weight that lives as long as the backend (it may cache W rounded)
//   sum(op, x), dot(op, x, y)  reductions under the op's reduction policy
//   compute(op, v)          one elementwise step rounded to the op's compute precision
//   store(op, M)            the op's result rounded to its storage format
// Everything else here is the arithmetic of the papers' equations, one rounding per step.
#include <fmt/format.h>

#include <boost/math/constants/constants.hpp>
#include <boost/multiprecision/number.hpp>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "lpsim/config/config_error.hpp"
#include "lpsim/model/backend.hpp"
#include "lpsim/model/matrix.hpp"
#include "lpsim/model/model_config.hpp"
#include "lpsim/model/plan.hpp"
#include "lpsim/model/routing.hpp"
#include "lpsim/model/row_kernels.hpp"
#include "lpsim/model/weights.hpp"
#include "lpsim/util/parallel_for.hpp"

namespace lpsim::layers {

// pi to the scalar's precision: Boost's constant for multiprecision types, the double constant otherwise (dual
// numbers and tapes carry it as a constant).
template <class T>
T pi_as() {
  if constexpr (boost::multiprecision::is_number<T>::value) return boost::math::constants::pi<T>();
  else if constexpr (requires { T::_pi; }) return T::_pi;  // QD's double-double
  else return T(3.141592653589793238462643383279502884);
}

// Whether a loop over `elements` values may run its rows on several threads: only for a backend that says its
// compute/sum/dot/chain_step are safe to call concurrently and give the same bits in any order (EmulatedBackend
// without stochastic rounding), and only where the loop is long enough to pay for the threads.
template <class B>
bool parallel_rows(const B& be, std::size_t elements) {
  if constexpr (hooks_of<B>().rows_in_parallel) return elements >= (std::size_t{1} << 11) && be.rows_in_parallel();
  else return false;
}

// Whether attention's heads run on threads of their own: the backend allows overlapping calls (heads_in_parallel)
// and there are threads and heads to share. Each head computes exactly what it would alone, so the bits do not
// depend on it.
template <class B>
bool parallel_heads(const B& be, int heads) {
  if constexpr (hooks_of<B>().heads_in_parallel)
    return heads > 1 && !omp_in_parallel() && omp_get_max_threads() > 1 && be.heads_in_parallel();
  else return false;
}

// store(op, M) where every value of M is a result of be.compute(op, ·) (or of chain_step after it): a backend may
// skip a rounding that cannot change such values (EmulatedBackend where out is compute's format).
template <class B, class T>
void store_computed(B& be, Op op, Matrix<T>& m) {
  if constexpr (hooks_of<B>().store_computed) be.store_computed(op, m);
  else be.store(op, m);
}

// Y (n x d) = LayerNorm(X) or RMSNorm(X) row by row, gamma/beta of length d, eps the norm's own when it has one. Two passes: mean, then the variance of
// the centred values (a careful kernel's choice; Welford's update would round differently).
// cast: RMSNorm as transformers' LlamaRMSNorm: x * rstd is rounded to its input's dtype (`hidden_states.to(
// input_dtype)`) before the gain multiplies it, itself rounded again. The input's dtype is the stream's for a block's
// norms (the norm class's `out`); cast_as names another class whose `out` it is (QK-norm: the q/k projection's, bf16
// under autocast, where the product with the fp32 gain is then fp32 by type promotion). Without cast, cast_as is the
// class whose `out` the result is finally cast to (Gemma's RMSNorm: `.type_as(x)` of its input, the branch output's
// dtype for the sandwich's post-norms). A gain offset (Gemma: 1 + w) is added to each gain in compute first.
template <class B, class T, class W>
Matrix<T> norm(B& be, NormKind kind, const Matrix<T>& x, const NormWeights<W>& w, double eps, bool cast = false,
               bool in_block = true, Op cast_as = Op::norm) {
  using std::sqrt;
  if constexpr (hooks_of<B>().observe_norm_input)  // diagnostics (diag/) look at the blocks' norms
    if (in_block) be.observe_norm_input(x);
  const int n = x.rows, d = x.cols;
  Matrix<T> y(n, d, uninitialized);  // every row written below
  const T width(d), epsilon = be.compute(Op::norm, T(w.eps >= 0 ? w.eps : eps));
  // With a gain offset, offset + gamma in the norm's compute (`1.0 + self.weight.float()`); without, gamma as held
  // (in W: the double-double reference multiplies by a double).
  std::vector<T> gain(w.gain_offset != 0 ? w.gamma.size() : 0);
  for (std::size_t j = 0; j < gain.size(); ++j) gain[j] = be.compute(Op::norm, T(T(w.gain_offset) + T(w.gamma[j])));
  std::vector<T> shift(w.gain_offset != 0 ? w.beta.size() : 0);
  for (std::size_t j = 0; j < shift.size(); ++j) shift[j] = T(w.beta[j]);
  parallel_for(n, parallel_rows(be, std::size_t(n) * d), [&](std::int64_t row_index) {
    const int i = int(row_index);
    std::vector<T> centred(d);
    const auto row = x.row(i);
    T second;  // mean square (RMSNorm) or variance (LayerNorm)
    if (kind == NormKind::layernorm) {
      const T mean = be.compute(Op::norm, T(be.sum(Op::norm, row) / width));
      for (int j = 0; j < d; ++j) centred[j] = be.compute(Op::norm, T(row[j] - mean));
      second = be.compute(Op::norm, T(be.dot(Op::norm, centred, centred) / width));
    } else {
      for (int j = 0; j < d; ++j) centred[j] = row[j];
      second = be.compute(Op::norm, T(be.dot(Op::norm, row, row) / width));
    }
    auto compute = [&](const T& v) { return be.compute(Op::norm, v); };
    const T rstd = rows::norm_rstd(second, epsilon, compute);
    if (cast) {
      for (int j = 0; j < d; ++j) y(i, j) = compute(T(centred[j] * rstd));
      return;
    }
    for (int j = 0; j < d; ++j)
      y(i, j) = gain.empty() ? rows::norm_affine(centred[j], rstd, w.gamma[j], w.beta.empty() ? nullptr : &w.beta[j], compute)
                             : rows::norm_affine(centred[j], rstd, gain[j], shift.empty() ? nullptr : &shift[j], compute);
  });
  if (cast && cast_as != Op::norm) be.store(cast_as, y);
  else store_computed(be, Op::norm, y);
  if (!cast && cast_as != Op::norm) be.store(cast_as, y);
  if (cast) {  // the gain times the rounded normalised value, rounded again
    parallel_for(n, parallel_rows(be, std::size_t(n) * d), [&](std::int64_t i) {
      for (int j = 0; j < d; ++j)
        y(int(i), j) = be.compute(Op::norm, gain.empty() ? T(y(int(i), j) * w.gamma[j]) : T(y(int(i), j) * gain[j]));
    });
    store_computed(be, Op::norm, y);
  }
  if constexpr (hooks_of<B>().check_norm) be.check_norm(kind, x, w, eps, cast, y);
  return y;
}

// tanh(x / c) c elementwise, each of the three ops its own kernel rounded to the op class's compute and stored
// to its out (Gemma 2's `attn_weights / softcapping; tanh; * softcapping` on the scores' and the logits' dtype).
template <class B, class T>
void soft_cap(B& be, Op op, Matrix<T>& m, double cap) {
  using std::tanh;
  const T c = be.compute(op, T(cap));
  const std::int64_t n = std::int64_t(m.size());
  parallel_for(n, parallel_rows(be, m.size()), [&](std::int64_t i) { m.data[i] = be.compute(op, T(m.data[i] / c)); });
  be.store(op, m);
  parallel_for(n, parallel_rows(be, m.size()), [&](std::int64_t i) { m.data[i] = be.compute(op, T(tanh(m.data[i]))); });
  be.store(op, m);
  parallel_for(n, parallel_rows(be, m.size()), [&](std::int64_t i) { m.data[i] = be.compute(op, T(m.data[i] * c)); });
  be.store(op, m);
}

// S / sqrt(d_head) elementwise (PyTorch's `scores / math.sqrt(d)`: the divisor rounded to compute first), or
// S * d_head^-1/2 (transformers' Llama: `* self.scaling`, a Python float PyTorch applies in fp32). d_head is the
// model's score scalar where it has one (Gemma's query_pre_attn_scalar).
template <class B, class T>
void scale_scores(B& be, Matrix<T>& s, double d_head, ScoreScale how = ScoreScale::divide) {
  using std::sqrt;
  if (how == ScoreScale::multiply) {
    const T factor = be.compute(Op::scale, T(T(1) / sqrt(T(d_head))));
    parallel_for(std::int64_t(s.size()), parallel_rows(be, s.size()),
                 [&](std::int64_t i) { s.data[i] = be.compute(Op::scale, T(s.data[i] * factor)); });
  } else {
    const T divisor = be.compute(Op::scale, T(sqrt(T(d_head))));
    parallel_for(std::int64_t(s.size()), parallel_rows(be, s.size()),
                 [&](std::int64_t i) { s.data[i] = be.compute(Op::scale, T(s.data[i] / divisor)); });
  }
  store_computed(be, Op::scale, s);
}

// Rotary embedding of one head's rows (n x d_head) in place: x*cos + rotate_half(x)*sin with rotate_half(x) =
// [-x2, x1] for the halves x1, x2; the fp32 tables are rounded to the rope class's compute format first (what
// `cos.to(x.dtype)` does), then each of the three elementwise steps is rounded to compute.
template <class B, class T, class W>
void rotate(B& be, Matrix<T>& x, const Matrix<W>& cos_table, const Matrix<W>& sin_table) {
  const int n = x.rows, d = x.cols, half = d / 2;
  parallel_for(n, parallel_rows(be, std::size_t(n) * d), [&](std::int64_t row_index) {
    const int i = int(row_index);
    std::vector<T> row(d);
    for (int j = 0; j < d; ++j) row[j] = x(i, j);
    auto compute = [&](const T& v) { return be.compute(Op::rope, v); };
    for (int j = 0; j < d; ++j) {
      const T rot = j < half ? T(-row[j + half]) : row[j - half];
      x(i, j) = rows::rotary(row[j], rot, T(cos_table(i, j)), T(sin_table(i, j)), compute);
    }
  });
  store_computed(be, Op::rope, x);
}

// Row-wise softmax with the row maximum subtracted; with a causal mask row i sees columns 0..i and the others are 0.
// op: the class whose compute, reduce and out it runs in (the attention's softmax; a router's, Op::route).
template <class B, class T>
Matrix<T> softmax(B& be, const Matrix<T>& s, bool causal, Op op = Op::softmax) {
  using std::exp;
  Matrix<T> p(s.rows, s.cols, T(0));
  parallel_for(s.rows, parallel_rows(be, s.size()), [&](std::int64_t row_index) {
    const int i = int(row_index);
    std::vector<T> e(s.cols);
    const int valid = causal ? std::min(i + 1, s.cols) : s.cols;
    T m = s(i, 0);
    for (int j = 1; j < valid; ++j)
      if (s(i, j) > m) m = s(i, j);
    auto compute = [&](const T& v) { return be.compute(op, v); };
    for (int j = 0; j < valid; ++j) e[j] = compute(T(exp(rows::softmax_shift(s(i, j), m, compute))));
    const T z = be.sum(op, std::span<const T>(e.data(), valid));
    for (int j = 0; j < valid; ++j) p(i, j) = rows::softmax_normalise(e[j], z, compute);
  });
  store_computed(be, op, p);
  if constexpr (hooks_of<B>().check_softmax)
    if (op == Op::softmax) be.check_softmax(s, causal, p);
  return p;
}

// One head by the flash kernel (plan.hpp's AttentionKernel; docs/MODELS.md): key tiles of kernel.block_k keys, S in
// the score class's accumulator, x = S * scale (scale = 1/sqrt(d) in the softmax class's compute format), a running
// maximum m and sum l per row, p = exp(x - m), the output accumulator rescaled by exp(m_old - m_new) and then
// D = P V_tile + acc under the pv class's policy (P rounded to its input there); at the end acc / l, rounded once to
// pv's out. Every elementwise step is rounded to the softmax class's compute. Masked keys (causal) are skipped.
template <class B, class T>
Matrix<T> flash_head(B& be, const AttentionKernel& kernel, const Matrix<T>& q, const Matrix<T>& k, const Matrix<T>& v,
                     bool causal) {
  using std::exp;
  using std::sqrt;
  auto fp = [&](const T& x) { return be.compute(Op::softmax, x); };
  const int n = q.rows, keys = k.rows, d = v.cols, width = kernel.block_k;
  const T scale = fp(T(T(1) / sqrt(T(q.cols))));
  const T minus_inf(-std::numeric_limits<double>::infinity());
  std::vector<T> m(n, minus_inf), l(n, T(0));
  Matrix<T> acc(n, d, T(0));
  const Matrix<T> kt = transpose(k);
  const int tiles = (keys + width - 1) / width;
  auto exp_t = [](const T& v) { return T(exp(v)); };
  for (int step = 0; step < tiles; ++step) {
    const int t = kernel.reverse ? tiles - 1 - step : step;
    const int first = t * width, count = std::min(width, keys - first);
    const Matrix<T> s = be.accumulate(Op::score, q, columns(kt, first, count), nullptr);
    Matrix<T> p(n, count, T(0));
    for (int i = 0; i < n; ++i) {
      const int valid = causal ? std::clamp(i + 1 - first, 0, count) : count;
      if (valid == 0) continue;  // every key of the tile is masked for this row: nothing changes
      const T alpha = rows::flash_row(&s(i, 0), valid, scale, m[i], l[i], &p(i, 0), exp_t, fp);
      for (int c = 0; c < d; ++c) acc(i, c) = fp(T(acc(i, c) * alpha));
    }
    acc = be.accumulate(Op::pv, p, row_block(v, first, count), &acc);
  }
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < d; ++c) acc(i, c) = fp(T(acc(i, c) / l[i]));
  be.store(Op::pv, acc);
  return acc;
}

// The activation's transcendental function in T (row_kernels.hpp's rows::activation says at which argument).
template <class T>
auto transcendental(Activation a) {
  return [a](const T& v) -> T {
    using std::erf;
    using std::exp;
    using std::tanh;
    return a == Activation::silu ? T(exp(v)) : a == Activation::gelu ? T(erf(v)) : T(tanh(v));
  };
}

// The activation of x in T's own arithmetic, unrounded (the references and their checks).
template <class T>
T activation(Activation a, const T& x) {
  using std::sqrt;
  auto same = [](const T& v) { return v; };
  return rows::activation(a, false, x, transcendental<T>(a), same, same, T(sqrt(T(2))), T(sqrt(T(2) / pi_as<T>())));
}

// transformers' NewGELUActivation (gelu_new) as PyTorch evaluates it: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715
// pow(x, 3)))), each op a kernel whose result is rounded to compute and, in a composite plan, to the tensor's dtype.
template <class B, class T>
T gelu_new_chain(B& be, const T& x) {
  using std::sqrt;
  auto compute = [&](const T& v) { return be.compute(Op::act, v); };
  auto step = [&](const T& v) { return be.chain_step(Op::act, be.compute(Op::act, v)); };
  return rows::activation(Activation::gelu_tanh, true, x, transcendental<T>(Activation::gelu_tanh), compute, step,
                          T(sqrt(T(2))), T(sqrt(T(2) / pi_as<T>())));
}

// The activation as one correctly rounded function of its stored input, or (chain) as the framework's ops.
template <class B, class T>
void activate(B& be, Activation a, Matrix<T>& u, bool chain = false) {
  const std::int64_t n = std::int64_t(u.size());
  if (chain && a == Activation::gelu_tanh)
    parallel_for(n, parallel_rows(be, u.size()), [&](std::int64_t i) { u.data[i] = gelu_new_chain(be, u.data[i]); });
  else {
    using std::sqrt;
    const T sqrt2 = T(sqrt(T(2))), sqrt_2_over_pi = T(sqrt(T(2) / pi_as<T>()));
    const auto f = transcendental<T>(a);
    auto compute = [&](const T& v) { return be.compute(Op::act, v); };
    parallel_for(n, parallel_rows(be, u.size()), [&](std::int64_t i) {
      u.data[i] = rows::activation(a, false, u.data[i], f, compute, compute, sqrt2, sqrt_2_over_pi);
    });
  }
  store_computed(be, Op::act, u);
}

// X + F, elementwise in the residual class's precision.
template <class B, class T>
Matrix<T> residual_add(B& be, const Matrix<T>& x, const Matrix<T>& f) {
  Matrix<T> y(x.rows, x.cols, uninitialized);
  parallel_for(std::int64_t(x.size()), parallel_rows(be, x.size()),
               [&](std::int64_t i) { y.data[i] = be.compute(Op::residual, T(x.data[i] + f.data[i])); });
  store_computed(be, Op::residual, y);
  return y;
}

// Multi-head self-attention of H (n x width): per head softmax(Q_h K_h^T / sqrt(d_head)) V_h, heads
// concatenated, then the output projection. Returns the branch output before the residual add.
// With rotary tables (tokens x d_head), queries and keys are rotated per head after the projections; with
// kv_heads < heads, query head h attends with key/value head h / (heads / kv_heads) (grouped-query attention).
template <class B, class T, class W>
Matrix<T> attention(B& be, const ModelConfig& cfg, const LayerWeights<W>& w, const Matrix<T>& h,
                    const Matrix<W>& rope_cos = {}, const Matrix<W>& rope_sin = {}) {
  auto bias = [](const std::vector<W>& b) { return b.empty() ? nullptr : &b; };
  if constexpr (hooks_of<B>().observe_attention_input) be.observe_attention_input(h);
  // The devices' attention knows neither a score scalar nor soft-capping (Gemma 2): the host computes those.
  const bool plain_scores = !cfg.rescaled_scores();
  if constexpr (hooks_of<B>().attention_kernel)  // here, before the heads' parallel loop, so that it can be caught
    if (!plain_scores && be.attention_kernel().kind == AttentionKernel::Kind::flash)  // sdpa cannot soft-cap either
      throw ConfigError(fmt::format("model {}: the flash kernel has no score scalar or soft-capping; use a plan "
                                    "without +flash", cfg.name));
  // The whole layer on an accelerator where the backend has one that takes it (the same bits as below).
  if constexpr (hooks_of<B>().device_attention)
    if (plain_scores)
      if (auto y = be.device_attention(cfg, w, h, rope_cos, rope_sin)) return std::move(*y);
  const Matrix<T> q = be.linear(Op::qkv, h, w.wq, bias(w.bq));
  const Matrix<T> k = be.linear(Op::qkv, h, w.wk, bias(w.bk));
  const Matrix<T> v = be.linear(Op::qkv, h, w.wv, bias(w.bv));
  const int dh = cfg.head_width(), group = cfg.heads / cfg.kv_head_count();
  const bool rope = !rope_cos.empty();
  // QK-norm (Qwen3): each head's rows RMS-normalised with the layer's q_norm/k_norm gains before the rotation, in
  // the norm class; LlamaRMSNorm's cast rounds x * rstd to the projection's dtype (the qkv class's out).
  auto head_norm = [&](Matrix<T> x, const NormWeights<W>& gains) {
    return cfg.qk_norm ? norm(be, NormKind::rmsnorm, x, gains, cfg.norm_eps, cfg.norm_cast, false, Op::qkv) : x;
  };
  std::vector<Matrix<T>> keys(cfg.kv_head_count()), values(cfg.kv_head_count());  // once per key/value head,
  for (int g = 0; g < cfg.kv_head_count(); ++g) {                                     // shared by its group
    keys[g] = head_norm(columns(k, g * dh, dh), w.k_norm);
    if (rope) rotate(be, keys[g], rope_cos, rope_sin);
    values[g] = columns(v, g * dh, dh);
  }
  // What a serving engine's KV cache returns for them, where the plan stores them in one.
  if constexpr (hooks_of<B>().kv_cache) be.store_kv(keys, values);
  auto query = [&](int head) {
    Matrix<T> qh = head_norm(columns(q, head * dh, dh), w.q_norm);
    if (rope) rotate(be, qh, rope_cos, rope_sin);
    return qh;
  };
  // Every head at once on an accelerator where the backend has one that takes them (the same bits as below).
  std::vector<Matrix<T>> queries;  // rotated for it up front, and used below where it declines
  if constexpr (hooks_of<B>().device_heads) {
    if (plain_scores && be.takes_heads()) {
      queries.resize(cfg.heads);
      parallel_for(cfg.heads, parallel_heads(be, cfg.heads), [&](std::int64_t i) { queries[i] = query(int(i)); });
      if (auto all = be.device_heads(queries, keys, values, cfg.causal, cfg.score_scale))
        return be.linear(Op::out_proj, *all, w.wo, bias(w.bo));
    }
  }
  Matrix<T> heads(h.rows, cfg.q_width(), uninitialized);  // every head sets its columns
  parallel_for(cfg.heads, parallel_heads(be, cfg.heads), [&](std::int64_t head_index) {
    const int head = int(head_index), g = head / group;
    Matrix<T> qh = queries.empty() ? query(head) : std::move(queries[head]);
    const Matrix<T>& kh = keys[g];
    const Matrix<T>& vh = values[g];
    // The flash kernel where the backend emulates one (in exact arithmetic it is the math below).
    if constexpr (hooks_of<B>().attention_kernel) {
      if (be.attention_kernel().kind == AttentionKernel::Kind::flash) {
        set_columns(heads, head * dh, flash_head(be, be.attention_kernel(), qh, kh, vh, cfg.causal));
        return;
      }
    }
    // The whole head on an accelerator where the backend has one that takes it (the same bits as below).
    if constexpr (hooks_of<B>().device_head) {
      if (auto out = plain_scores ? be.device_head(qh, kh, vh, cfg.causal, cfg.score_scale) : std::nullopt) {
        set_columns(heads, head * dh, *out);
        return;
      }
    }
    Matrix<T> s = be.gemm(Op::score, qh, transpose(kh), nullptr);
    scale_scores(be, s, cfg.score_scalar > 0 ? cfg.score_scalar : double(dh), cfg.score_scale);
    if (cfg.attn_softcap > 0) soft_cap(be, Op::scale, s, cfg.attn_softcap);
    const Matrix<T> p = softmax(be, s, cfg.causal);
    if constexpr (hooks_of<B>().observe_head) be.observe_head(qh, kh, s, p, vh);
    set_columns(heads, head * dh, be.gemm(Op::pv, p, vh, nullptr));
  });
  return be.linear(Op::out_proj, heads, w.wo, bias(w.bo));
}

// The pre-LN branches: attention(norm(x)) and feed_forward(norm(x)) with the block's norm weights; the norm too on
// an accelerator where the backend has one that takes the whole branch (the same bits as computing it here).
template <class B, class T, class W>
Matrix<T> normed_attention(B& be, const ModelConfig& cfg, const LayerWeights<W>& w, const Matrix<T>& x,
                           const Matrix<W>& rope_cos, const Matrix<W>& rope_sin) {
  if constexpr (hooks_of<B>().device_attention)
    if (w.norm1.gain_offset == 0 && !cfg.rescaled_scores())
      if (auto y = be.device_attention(cfg, w, x, rope_cos, rope_sin, &w.norm1)) return std::move(*y);
  return attention(be, cfg, w, norm(be, cfg.norm, x, w.norm1, cfg.norm_eps, cfg.norm_cast), rope_cos, rope_sin);
}

template <class B, class T, class W>
Matrix<T> mixture_of_experts(B& be, const ModelConfig& cfg, const LayerWeights<W>& w, const Matrix<T>& h,
                             Routing* routing);

// Two-layer perceptron: act(H W1 + b1) W2 + b2; gated (SwiGLU): (act(H W1) * H W3) W2, the activation and the
// product each rounded to the act class's out (transformers' `down_proj(act_fn(gate_proj(x)) * up_proj(x))`).
// A layer with experts routes each token to some of them (mixture_of_experts); routing, when given, receives what
// it chose.
template <class B, class T, class W>
Matrix<T> feed_forward(B& be, const ModelConfig& cfg, const LayerWeights<W>& w, const Matrix<T>& h,
                       Routing* routing = nullptr) {
  if (!w.experts.empty()) return mixture_of_experts(be, cfg, w, h, routing);
  // The whole block on an accelerator where the backend has one that takes it (the same bits as below).
  if constexpr (hooks_of<B>().device_feed_forward)
    if (auto y = be.device_feed_forward(cfg, w, h)) return std::move(*y);
  Matrix<T> u = be.linear(Op::ffn_up, h, w.w1, w.b1.empty() ? nullptr : &w.b1);
  activate(be, cfg.activation, u, cfg.activation_chain);
  if (cfg.mlp == Mlp::gated) {
    const Matrix<T> up = be.linear(Op::ffn_up, h, w.w3, nullptr);
    parallel_for(std::int64_t(u.size()), parallel_rows(be, u.size()),
                 [&](std::int64_t i) { u.data[i] = be.compute(Op::act, T(u.data[i] * up.data[i])); });
    store_computed(be, Op::act, u);
  }
  return be.linear(Op::ffn_down, u, w.w2, w.b2.empty() ? nullptr : &w.b2);
}

// A scalar's value as a double for reports (MPFR, double-double, double); NaN for one that has none to give.
template <class T>
double value_of(const T& v) {
  if constexpr (requires { static_cast<double>(v); }) return static_cast<double>(v);
  else if constexpr (requires { to_double(v); }) return to_double(v);
  else return NAN;
}

// The k experts of one row of router probabilities, the largest first (among equal ones the lower index first).
template <class T>
void top_experts(const T* p, int experts, int k, int* chosen) {
  std::vector<int> order(experts);
  for (int e = 0; e < experts; ++e) order[e] = e;
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int a, int b) { return p[a] > p[b] || (!(p[b] > p[a]) && a < b); });
  std::copy_n(order.begin(), k, chosen);
}

// A mixture-of-experts MLP as transformers 5 computes Mixtral's and Qwen3-MoE's (docs/MODELS.md): logits = H W_router
// (the router class), p = softmax(logits) in the route class, per token the k largest, renormalised to sum 1
// (router_renormalize; the sum under route's reduce) and, with router_weights_cast, rounded to the router's out (the
// logits' dtype). Each expert runs its MLP on the tokens sent to it (in token order; experts in index order); its
// output times the token's weight is formed in the route class (fp32: a half tensor times fp32 weights), or in
// ffn_down's class where the weights were cast (a product of two half tensors), cast to the stream's dtype (the
// residual class's out) and added into the token's row (index_add_, the residual class).
template <class B, class T, class W>
Matrix<T> mixture_of_experts(B& be, const ModelConfig& cfg, const LayerWeights<W>& w, const Matrix<T>& h,
                             Routing* routing) {
  const int n = h.rows, experts = int(w.experts.size()), k = cfg.experts_per_token;
  const Matrix<T> logits = be.linear(Op::router, h, w.router, nullptr);
  const Matrix<T> p = softmax(be, logits, false, Op::route);
  std::vector<int> chosen(std::size_t(n) * k);
  Matrix<T> weight(n, k, uninitialized);
  for (int t = 0; t < n; ++t) {
    top_experts(&p(t, 0), experts, k, &chosen[std::size_t(t) * k]);
    for (int r = 0; r < k; ++r) weight(t, r) = p(t, chosen[std::size_t(t) * k + r]);
    if (cfg.router_renormalize) {
      const T z = be.sum(Op::route, std::span<const T>(&weight(t, 0), k));
      for (int r = 0; r < k; ++r) weight(t, r) = be.compute(Op::route, T(weight(t, r) / z));
    }
  }
  store_computed(be, Op::route, weight);
  const Op product_op = cfg.router_weights_cast ? Op::ffn_down : Op::route;
  if (cfg.router_weights_cast) be.store(Op::router, weight);
  if (routing) {
    *routing = Routing{0, n, k, chosen, std::vector<double>(weight.size())};
    for (std::size_t i = 0; i < weight.size(); ++i) routing->weights[i] = value_of(weight.data[i]);
  }
  Matrix<T> out(n, h.cols, T(0));
  for (int e = 0; e < experts; ++e) {
    std::vector<std::pair<int, int>> sent;  // (token, rank) in token order
    for (int t = 0; t < n; ++t)
      for (int r = 0; r < k; ++r)
        if (chosen[std::size_t(t) * k + r] == e) sent.push_back({t, r});
    if (sent.empty()) continue;
    Matrix<T> x(int(sent.size()), h.cols, uninitialized);
    for (std::size_t i = 0; i < sent.size(); ++i)
      for (int c = 0; c < h.cols; ++c) x(int(i), c) = h(sent[i].first, c);
    Matrix<T> y = feed_forward(be, cfg, w.experts[e], x);
    for (std::size_t i = 0; i < sent.size(); ++i)
      for (int c = 0; c < y.cols; ++c)
        y(int(i), c) = be.compute(product_op, T(y(int(i), c) * weight(sent[i].first, sent[i].second)));
    store_computed(be, product_op, y);
    be.store(Op::residual, y);  // `.to(final_hidden_states.dtype)`
    for (std::size_t i = 0; i < sent.size(); ++i)
      for (int c = 0; c < y.cols; ++c) out(sent[i].first, c) = be.compute(Op::residual, T(out(sent[i].first, c) + y(int(i), c)));
    store_computed(be, Op::residual, out);
  }
  return out;
}

// feed_forward(norm(x)) with the block's second norm (see normed_attention).
template <class B, class T, class W>
Matrix<T> normed_feed_forward(B& be, const ModelConfig& cfg, const LayerWeights<W>& w, const Matrix<T>& x,
                              Routing* routing = nullptr) {
  if constexpr (hooks_of<B>().device_feed_forward)
    if (w.experts.empty() && w.norm2.gain_offset == 0)
      if (auto y = be.device_feed_forward(cfg, w, x, &w.norm2)) return std::move(*y);
  return feed_forward(be, cfg, w, norm(be, cfg.norm, x, w.norm2, cfg.norm_eps, cfg.norm_cast), routing);
}

// The residual stream entering block 0: the input itself, [class token; patches W + b] + positions, or token
// embeddings + positions. The position add is a residual-class elementwise op. Weights and input may be held in a
// narrower scalar W than the backend computes in (the double-double reference reads the double weights).
template <class B, class T = typename B::Scalar, class W>
Matrix<T> embed(B& be, const ModelConfig& cfg, const Weights<W>& w, const ModelInput<W>& in) {
  Matrix<T> x(cfg.tokens, cfg.width);
  if (cfg.embedding == Embedding::none) {
    if constexpr (std::is_same_v<T, W>) x = in.x;
    else x = convert<T>(in.x);
    be.store(Op::residual, x);
    return x;
  }
  if (cfg.embedding == Embedding::patch) {
    Matrix<T> e;
    if constexpr (std::is_same_v<T, W>) e = be.linear(Op::embed, in.x, w.patch_w, w.patch_b.empty() ? nullptr : &w.patch_b);
    else e = be.linear(Op::embed, convert<T>(in.x), w.patch_w, w.patch_b.empty() ? nullptr : &w.patch_b);
    const int first = cfg.class_token ? 1 : 0;
    if (cfg.class_token)
      for (int j = 0; j < cfg.width; ++j) x(0, j) = be.compute(Op::residual, T(T(w.cls[j]) + T(w.pos(0, j))));
    for (int i = 0; i < e.rows; ++i)
      for (int j = 0; j < cfg.width; ++j) x(first + i, j) = be.compute(Op::residual, T(e(i, j) + T(w.pos(first + i, j))));
  } else {
    const bool positions = !w.pos.empty();  // learned positions (GPT-2); rotary models add none here
    for (int t = 0; t < cfg.tokens; ++t)
      for (int j = 0; j < cfg.width; ++j)
        x(t, j) = positions ? be.compute(Op::residual, T(T(w.wte(in.ids[t], j)) + T(w.pos(t, j))))
                            : T(w.wte(in.ids[t], j));
    if (cfg.embed_scale) {  // Gemma: `inputs_embeds * normalizer`, sqrt(width) a Python float in the stream's dtype
      using std::sqrt;
      Matrix<T> normalizer(1, 1, T(sqrt(double(cfg.width))));
      be.store(Op::residual, normalizer);
      for (T& v : x.data) v = be.compute(Op::residual, T(v * normalizer(0, 0)));
    }
  }
  be.store(Op::residual, x);
  return x;
}

}  // namespace lpsim::layers
