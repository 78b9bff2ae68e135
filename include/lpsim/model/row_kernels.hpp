#pragma once
// Row arithmetic written once for the CPU's forward (layers.hpp, any scalar: double, double-double, MPFR, dual
// numbers) and the GPU's kernels (cuda/, through the device jobs' headers): each function takes the roundings it
// needs as callables, so the CPU passes the backend's and the GPU its per-thread ones, and the order of the steps
// cannot differ between the two (docs/DESIGN.md).
#include <cmath>

#include "lpsim/model/model_config.hpp"
#include "lpsim/util/host_device.hpp"

namespace lpsim::rows {

// The activation of one value x. f is the activation's transcendental function at the argument this formula hands
// it (exp(-x) for silu, erf(x / sqrt 2) for gelu, tanh(...) for the tanh forms); compute rounds to the act class's
// compute format; step is a chain step of transformers' gelu_new (compute, then the class's out where the plan
// rounds every framework op to it). sqrt2 = sqrt(2) and sqrt_2_over_pi = sqrt(2 / pi) in T. The result is rounded
// to compute (it is each chain step's result for gelu_new).
template <class T, class F, class Compute, class Step>
LPSIM_HD T activation(Activation kind, bool chain, const T& x, F f, Compute compute, Step step, const T& sqrt2,
                      const T& sqrt_2_over_pi) {
  switch (kind) {
    case Activation::relu: return compute(x > T(0) ? x : T(0));
    case Activation::silu: return compute(T(x / T(T(1) + f(T(-x)))));
    case Activation::gelu: return compute(T(T(0.5) * x * T(T(1) + f(T(x / sqrt2)))));
    case Activation::gelu_tanh: {  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), GPT-2's form
      if (!chain) return compute(T(T(0.5) * x * T(T(1) + f(T(sqrt_2_over_pi * T(x + T(T(0.044715) * x * x * x)))))));
      // gelu_new as PyTorch evaluates it: pow, mul, add, mul, tanh, add, mul, mul, each a kernel whose result is
      // rounded (Python floats reach the kernels as the compute format's values).
      const T c = compute(sqrt_2_over_pi), k = compute(T(0.044715));
      const T cube = step(T(x * x * x));
      const T inner = step(T(x + step(T(k * cube))));
      const T t = step(f(step(T(c * inner))));
      return step(T(step(T(T(0.5) * x)) * step(T(T(1) + t))));
    }
  }
  return x;
}

// One element of a rotated head: x cos + rotate_half(x) sin, rot being rotate_half(x)'s element (-x[j + d/2] in the
// first half, x[j - d/2] in the second); the fp32 table values are rounded to compute first (`cos.to(x.dtype)`),
// then each of the three elementwise steps.
template <class T, class Compute>
LPSIM_HD T rotary(const T& x, const T& rot, const T& cos, const T& sin, Compute compute) {
  const T c = compute(cos), s = compute(sin);
  const T a = compute(T(x * c)), b = compute(T(rot * s));
  return compute(T(a + b));
}

// A norm row's 1 / sqrt(second + eps), second being the mean square (RMSNorm) or the variance (LayerNorm), each
// step rounded to compute.
template <class T, class Compute>
LPSIM_HD T norm_rstd(const T& second, const T& eps, Compute compute) {
  using std::sqrt;
  return compute(T(T(1) / sqrt(compute(T(second + eps)))));
}

// A normalised element with its gain and shift: (c rstd) gamma + beta, each step rounded to compute (c: the centred
// value for LayerNorm, the value itself for RMSNorm; beta null: no shift).
template <class T, class W, class Compute>
LPSIM_HD T norm_affine(const T& c, const T& rstd, const W& gamma, const W* beta, Compute compute) {
  T v = compute(T(compute(T(c * rstd)) * gamma));
  if (beta) v = compute(T(v + *beta));
  return v;
}

// A softmax row's shifted argument s - m (m the row maximum), rounded to compute; exp of it is the next step.
template <class T, class Compute>
LPSIM_HD T softmax_shift(const T& s, const T& m, Compute compute) {
  return compute(T(s - m));
}

// A softmax row's probability e / z (z the row's sum of exponentials), rounded to compute.
template <class T, class Compute>
LPSIM_HD T softmax_normalise(const T& e, const T& z, Compute compute) {
  return compute(T(e / z));
}

// One row of a flash-attention key tile (plan.hpp's AttentionKernel): the scores s[0..valid) become x = s * scale,
// the running maximum m and sum l are updated and p[j] = exp(x_j - m_new); returns alpha = exp(m_old - m_new), by
// which the caller rescales the row's output accumulator (0 on the first tile a row sees). Every step is rounded to
// compute (the softmax class); exp is the transcendental function in T. p may be s (each x is formed from its own s).
template <class T, class Exp, class Compute>
LPSIM_HD T flash_row(const T* s, int valid, const T& scale, T& m, T& l, T* p, Exp exp, Compute compute) {
  const bool first = m == T(-HUGE_VAL);  // no tile has reached the row yet
  T top = m;
  for (int j = 0; j < valid; ++j) {
    p[j] = compute(T(s[j] * scale));
    if (p[j] > top) top = p[j];
  }
  const T alpha = first ? T(0) : compute(exp(compute(T(m - top))));
  T sum = compute(T(l * alpha));
  for (int j = 0; j < valid; ++j) {
    p[j] = compute(exp(compute(T(p[j] - top))));
    sum = compute(T(sum + p[j]));
  }
  l = sum, m = top;
  return alpha;
}

}  // namespace lpsim::rows
