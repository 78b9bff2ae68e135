#pragma once
// The one rounding core. Every rounding in lpsim (scalar, number type, array kernels, SIMD or portable) is this
// function applied to the bit pattern of a float or a double ("the carrier").
//
// Method: a carrier value is an integer significand times a power of two. Rounding to a format keeps the
// significand bits above the format's quantum q at that binade (q = e-p+1, or the fixed subnormal quantum below
// 2^emin), and decides from the dropped bits (rem) whether to add one quantum. Because carrier bit patterns are
// monotone in the value, "add one quantum" is an integer add on the pattern, and a carry into the exponent field
// is exactly the step to the next binade. Overflow is decided after rounding, on the unbounded-exponent result,
// as IEEE 754 does; that is what makes e4m3's 464 round to 448 (a tie, to even) while 465 becomes NaN.
//
// The kernel translation units compile this header with different instruction sets. The Isa tag gives their
// instantiations different names, so the linker can never swap an AVX-512 copy into the portable path.
#include <bit>
#include <cstdint>

#include "lpsim/format/format.hpp"
#include "lpsim/format/rounding.hpp"
#include "lpsim/util/host_device.hpp"

namespace lpsim {

template <class C>
struct Carrier;
template <>
struct Carrier<float> {
  using Bits = std::uint32_t;
  static constexpr int frac_bits = 23, bias = 127, min_exponent = -126, precision = 24;
};
template <>
struct Carrier<double> {
  using Bits = std::uint64_t;
  static constexpr int frac_bits = 52, bias = 1023, min_exponent = -1022, precision = 53;
};

// Whether carrier C can hold every value of the format, so that rounding a C to the format and storing it as a
// C is exact. (A float holds every bf16 and fp8 value, but not every value of e9m7.)
template <class C>
constexpr bool carrier_holds(const FormatSpec& f) {
  return f.precision <= Carrier<C>::precision && f.emin >= Carrier<C>::min_exponent;
}

// The format's constants expressed as carrier bit patterns; computed once per format, not per element.
template <class C>
struct RoundParams {
  using Bits = typename Carrier<C>::Bits;
  static constexpr int frac_bits = Carrier<C>::frac_bits;
  static constexpr Bits sign_mask = Bits{1} << (8 * sizeof(Bits) - 1);
  static constexpr Bits exp_mask = ~sign_mask & ~((Bits{1} << frac_bits) - 1);
  static constexpr Bits quiet_bit = Bits{1} << (frac_bits - 1);

  int precision;
  int emin;
  int q_below;         // quantum exponent below 2^emin: emin-p+1 with subnormals, emin without
  Bits max_bits;       // magnitude pattern of the largest finite value (the carrier's largest if that is smaller)
  Bits tiny_bits;      // pattern of 2^q_below, the only non-zero result for inputs below one quantum
  Bits overflow_bits;  // what an overflow to "infinity" gives: inf, the largest finite, or NaN
  Bits inf_input_bits; // what an infinite input gives
  Bits nan_keep_mask;  // a NaN keeps its payload bits that fit the format's mantissa, as hardware conversions do
  bool no_negative_zero;
};

namespace detail {
template <class C>
constexpr typename Carrier<C>::Bits pow2_bits(int k) {  // pattern of 2^k, k within the carrier's range
  using T = Carrier<C>;
  using Bits = typename T::Bits;
  if (k >= T::min_exponent) return Bits(k + T::bias) << T::frac_bits;
  return Bits{1} << (k - T::min_exponent + T::frac_bits);  // a carrier subnormal
}
}  // namespace detail

template <class C>
constexpr RoundParams<C> make_round_params(const FormatSpec& f) {
  using T = Carrier<C>;
  using Bits = typename T::Bits;
  RoundParams<C> r{};
  r.precision = f.precision;
  r.emin = f.emin;
  r.q_below = f.subnormals ? f.emin - f.precision + 1 : f.emin;
  constexpr Bits carrier_inf = RoundParams<C>::exp_mask;
  constexpr Bits carrier_max = carrier_inf - 1;
  constexpr Bits carrier_nan = carrier_inf | RoundParams<C>::quiet_bit;
  if (f.emax > T::bias) {
    r.max_bits = carrier_max;  // the format is wider than the carrier: the carrier's overflow rules apply
  } else {
    // max = max_significand * 2^(emax-p+1); in the pattern, the significand without its hidden bit sits on top
    // of the fraction field.
    Bits frac = Bits(f.max_significand() & ((std::uint64_t{1} << (f.precision - 1)) - 1));
    r.max_bits = (Bits(f.emax + T::bias) << T::frac_bits) | (frac << (T::frac_bits - (f.precision - 1)));
  }
  r.tiny_bits = detail::pow2_bits<C>(r.q_below);
  switch (f.overflow) {
    case Overflow::infinity: r.overflow_bits = carrier_inf; break;
    case Overflow::saturate: r.overflow_bits = r.max_bits; break;
    case Overflow::nan: r.overflow_bits = carrier_nan; break;
  }
  // Saturation clamps infinite inputs too: the H100's SATFINITE conversion turns e5m2's +-inf into +-57344.
  r.inf_input_bits = f.overflow == Overflow::saturate ? r.max_bits : f.has_inf() ? carrier_inf : r.overflow_bits;
  r.no_negative_zero = !f.has_negative_zero();
  r.nan_keep_mask = ~((Bits{1} << (T::frac_bits - (f.precision - 1))) - 1);
  return r;
}

// Rounds the carrier value with pattern b to the format. `random` is used by stochastic rounding only: the
// result rounds up when random < rem * 2^(64-s), which happens with probability rem/2^s, exact for s <= 64.
// Requires carrier_holds<C>(format).
template <class Isa, class C, Rounding R>
[[gnu::always_inline]] LPSIM_HD inline typename Carrier<C>::Bits round_bits(typename Carrier<C>::Bits b,
                                                                   const RoundParams<C>& f,
                                                                   std::uint64_t random = 0) {
  using P = RoundParams<C>;
  using Bits = typename Carrier<C>::Bits;
  constexpr int frac = P::frac_bits;
  constexpr Bits carrier_inf = P::exp_mask;

  const Bits sign = b & P::sign_mask;
  const Bits a = b ^ sign;
  const bool neg = sign != 0;

  // Exponent e of the binade of |x| (carrier subnormals count as the lowest binade) and the number s of
  // significand bits dropped: the format's quantum is 2^(e-p+1) from 2^emin up and 2^q_below below it.
  const int biased = int(a >> frac);
  const int e = (biased == 0 ? 1 : biased) - Carrier<C>::bias;
  // A carrier subnormal lies below 2^emin even when the format's emin is the carrier's (bf16 in a float).
  const bool below_normal = biased == 0 || e < f.emin;
  const int s = (below_normal ? f.q_below - e : 1 - f.precision) + frac;
  // Past frac+2 nothing changes for the deterministic modes (the whole significand is below half a quantum);
  // clamping keeps every shift defined.
  const int sc = s > frac + 2 ? frac + 2 : s;
  const Bits mant = (a & ((Bits{1} << frac) - 1)) | (biased != 0 ? Bits{1} << frac : 0);
  const Bits mask = (Bits{1} << sc) - 1;
  const Bits rem = mant & mask;
  const Bits half = (Bits{1} << sc) >> 1;
  const bool odd = ((mant >> sc) & 1) != 0;
  const bool inexact = rem != 0;

  bool up;
  if constexpr (R == Rounding::nearest_even) {
    up = rem > half || (rem == half && inexact && odd);
  } else if constexpr (R == Rounding::nearest_away) {
    up = rem >= half && inexact;
  } else if constexpr (R == Rounding::toward_zero) {
    up = false;
  } else if constexpr (R == Rounding::upward) {
    up = inexact && !neg;
  } else if constexpr (R == Rounding::downward) {
    up = inexact && neg;
  } else if constexpr (R == Rounding::to_odd) {
    up = inexact && !odd;
  } else {  // stochastic
    const std::uint64_t r64 = rem;
    const std::uint64_t threshold =
        s <= 0 ? 0 : s <= 64 ? r64 << (64 - s) : (s - 64 < 64 ? r64 >> (s - 64) : 0);
    up = random < threshold;
  }

  // The rounded magnitude as a pattern: either the kept bits plus one quantum (the add carries into the exponent
  // when the significand overflows its binade), or, when even the leading bit lies below the quantum, 0 or 2^q.
  Bits r;
  if (s <= frac) {
    r = (a & ~mask) + (up ? Bits{1} << s : Bits{0});
  } else {
    r = up ? f.tiny_bits : Bits{0};
  }

  if (r > f.max_bits) {
    constexpr bool nearest = R == Rounding::nearest_even || R == Rounding::nearest_away || R == Rounding::stochastic;
    const bool away_from_zero = nearest || (R == Rounding::upward && !neg) || (R == Rounding::downward && neg);
    r = away_from_zero ? f.overflow_bits : f.max_bits;
  }
  if (a >= carrier_inf) r = a > carrier_inf ? ((a & f.nan_keep_mask) | P::quiet_bit) : f.inf_input_bits;
  const Bits out_sign = (f.no_negative_zero && r == 0) ? Bits{0} : sign;
  return r | out_sign;
}

// The Isa tag of code that is compiled with the project's default flags.
struct PortableIsa {};

// The same with the mode chosen at run time (one switch per value: for scalar steps, host or device).
template <class Isa, class C>
LPSIM_HD inline typename Carrier<C>::Bits round_bits(typename Carrier<C>::Bits b, const RoundParams<C>& f,
                                                     Rounding mode, std::uint64_t random = 0) {
  switch (mode) {
    case Rounding::nearest_even: return round_bits<Isa, C, Rounding::nearest_even>(b, f, random);
    case Rounding::toward_zero: return round_bits<Isa, C, Rounding::toward_zero>(b, f, random);
    case Rounding::upward: return round_bits<Isa, C, Rounding::upward>(b, f, random);
    case Rounding::downward: return round_bits<Isa, C, Rounding::downward>(b, f, random);
    case Rounding::nearest_away: return round_bits<Isa, C, Rounding::nearest_away>(b, f, random);
    case Rounding::to_odd: return round_bits<Isa, C, Rounding::to_odd>(b, f, random);
    case Rounding::stochastic: break;
  }
  return round_bits<Isa, C, Rounding::stochastic>(b, f, random);
}

// Runtime-mode dispatch over the compile-time core, for scalar callers.
template <class F>
[[gnu::always_inline]] inline decltype(auto) with_rounding(Rounding mode, F&& body) {
  switch (mode) {
    case Rounding::nearest_even: return body.template operator()<Rounding::nearest_even>();
    case Rounding::toward_zero: return body.template operator()<Rounding::toward_zero>();
    case Rounding::upward: return body.template operator()<Rounding::upward>();
    case Rounding::downward: return body.template operator()<Rounding::downward>();
    case Rounding::nearest_away: return body.template operator()<Rounding::nearest_away>();
    case Rounding::to_odd: return body.template operator()<Rounding::to_odd>();
    case Rounding::stochastic: break;
  }
  return body.template operator()<Rounding::stochastic>();
}

}  // namespace lpsim
