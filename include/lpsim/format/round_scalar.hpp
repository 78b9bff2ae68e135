#pragma once
// Rounding one value to a runtime format: the reference path that the array kernels and the number type agree with.
#include <bit>
#include <cmath>
#include <cstdint>

#include "lpsim/format/round_core.hpp"

namespace lpsim {

// x rounded to the format (the result is a value of the format, held exactly in a double). `random` feeds
// stochastic rounding; see random_stream.hpp for reproducible streams. Requires validate(f) == "".
inline double round_to(double x, const FormatSpec& f, Rounding mode, std::uint64_t random = 0) {
  const RoundParams<double> params = make_round_params<double>(f);
  const auto bits = std::bit_cast<std::uint64_t>(x);
  return std::bit_cast<double>(with_rounding(mode, [&]<Rounding R>() {
    return round_bits<PortableIsa, double, R>(bits, params, random);
  }));
}

// True when x is a value of the format (rounding leaves it unchanged). NaN counts when the format has NaN.
inline bool representable(double x, const FormatSpec& f) {
  if (x != x) return f.has_nan();
  return std::bit_cast<std::uint64_t>(round_to(x, f, Rounding::toward_zero)) == std::bit_cast<std::uint64_t>(x) &&
         (x != 0 || !std::signbit(x) || f.has_negative_zero());
}

}  // namespace lpsim
