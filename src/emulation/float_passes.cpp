#include "emulation/float_passes.hpp"

#include <cmath>
#include <limits>

#include "lpsim/format/bf16_rne.hpp"

namespace lpsim::passes {

namespace {
constexpr double inf = std::numeric_limits<double>::infinity();
}  // namespace

// Counts without branches (int & int), so that the loops vectorise.
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) long to_float(double* v, std::int64_t n) {
  long made_infinite = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double y = static_cast<double>(static_cast<float>(v[i]));
    made_infinite += int(std::fabs(y) == inf) & int(std::fabs(v[i]) != inf);
    v[i] = y;
  }
  return made_infinite;
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) long bf16_of_floats(double* v,
                                                                                                     std::int64_t n) {
  int other = 0;
  for (std::int64_t i = 0; i < n; ++i) other |= int(double(static_cast<float>(v[i])) != v[i]) & int(v[i] == v[i]);
  if (other) return -1;
  long made_infinite = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double y = double(round_bf16_rne(static_cast<float>(v[i])));
    made_infinite += int(std::fabs(y) == inf) & int(std::fabs(v[i]) != inf) & int(v[i] == v[i]);
    v[i] = y;
  }
  return made_infinite;
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) CastCounts cast_operand(
    const double* in, float* out, std::int64_t n, double scale, bool bf16, double max) {
  long inexact = 0, beyond = 0;
  auto count = [&](double x, float f) {
    inexact += int(double(f) != x) & int(x == x);
    beyond += int(std::fabs(x) > max) & int(std::fabs(x) != inf);
  };
  if (bf16) {
    for (std::int64_t i = 0; i < n; ++i) {
      const double x = in[i] * scale;
      const float f = static_cast<float>(x);
      out[i] = round_bf16_rne(f);
      count(x, f);
    }
  } else {
    for (std::int64_t i = 0; i < n; ++i) {
      const double x = in[i] * scale;
      const float f = static_cast<float>(x);
      out[i] = f;
      count(x, f);
    }
  }
  return {inexact, beyond};
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) long count_nonfinite(const float* v,
                                                                                                      std::int64_t n) {
  long count = 0;
  for (std::int64_t i = 0; i < n; ++i) count += int(std::fabs(v[i]) == std::numeric_limits<float>::infinity()) | int(v[i] != v[i]);
  return count;
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) long widen(const float* in, double* out,
                                                                                            std::int64_t n) {
  long count = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    out[i] = in[i];
    count += int(std::fabs(in[i]) == std::numeric_limits<float>::infinity()) | int(in[i] != in[i]);
  }
  return count;
}

namespace {
// One value of the epilogue: unscale then add the bias, each in binary32 (compute), then the store; made_infinite
// counts the finite values a rounding made infinite, once each.
template <bool Unscale, bool Bias, bool Bf16>
[[gnu::always_inline]] inline double epilogue_value(float in, double unscale, double bias, long& made_infinite) {
  double v = in;
  if constexpr (Unscale) {
    const double x = v * unscale;
    v = static_cast<double>(static_cast<float>(x));
    made_infinite += int(std::fabs(v) == inf) & int(std::fabs(x) != inf);
  }
  if constexpr (Bias) {
    const double x = v + bias;
    v = static_cast<double>(static_cast<float>(x));
    made_infinite += int(std::fabs(v) == inf) & int(std::fabs(x) != inf);
  }
  if constexpr (Bf16) {
    const double y = double(round_bf16_rne(static_cast<float>(v)));
    made_infinite += int(std::fabs(y) == inf) & int(std::fabs(v) != inf) & int(v == v);
    v = y;
  }
  return v;
}

template <bool Unscale, bool Bias, bool Bf16>
[[gnu::always_inline]] inline long epilogue_loop(const float* in, double unscale, const double* bias, double* out,
                                                 std::int64_t n) {
  long made_infinite = 0;
  for (std::int64_t i = 0; i < n; ++i)
    out[i] = epilogue_value<Unscale, Bias, Bf16>(in[i], unscale, Bias ? bias[i] : 0.0, made_infinite);
  return made_infinite;
}
}  // namespace

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) long epilogue_store(
    const float* in, double unscale, const double* bias, double* out, std::int64_t n, bool bf16) {
  const bool scaled = unscale != 1;
  if (scaled && bias) return bf16 ? epilogue_loop<true, true, true>(in, unscale, bias, out, n)
                                  : epilogue_loop<true, true, false>(in, unscale, bias, out, n);
  if (scaled) return bf16 ? epilogue_loop<true, false, true>(in, unscale, bias, out, n)
                          : epilogue_loop<true, false, false>(in, unscale, bias, out, n);
  if (bias) return bf16 ? epilogue_loop<false, true, true>(in, unscale, bias, out, n)
                        : epilogue_loop<false, true, false>(in, unscale, bias, out, n);
  return bf16 ? epilogue_loop<false, false, true>(in, unscale, bias, out, n)
              : epilogue_loop<false, false, false>(in, unscale, bias, out, n);
}

}  // namespace lpsim::passes
