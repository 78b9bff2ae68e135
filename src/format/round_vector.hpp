#pragma once
// The rounding core (round_core.hpp) written on whole vectors of carrier bit patterns with GCC's vector
// extensions: the same steps as round_bits, every branch a lane-wise select, so the compiler emits one 512-bit
// instruction per step instead of leaving the scalar core unvectorised (issue 18: GCC 12 did not vectorise
// round_bits at all). Deterministic modes only; stochastic rounding stays on the scalar core. Included only by a
// kernel translation unit compiled for AVX-512, where 64-byte vectors are registers.
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "lpsim/format/round_core.hpp"

namespace lpsim::kernels {

template <class C, Rounding R>
void round_block_vector(const C* in, C* out, std::size_t n, const RoundParams<C>& f) {
  using P = RoundParams<C>;
  using Bits = typename Carrier<C>::Bits;
  using SBits = std::make_signed_t<Bits>;
  typedef Bits V __attribute__((vector_size(64)));
  typedef SBits S __attribute__((vector_size(64)));
  constexpr std::size_t lanes = 64 / sizeof(Bits);
  constexpr int frac = P::frac_bits;
  constexpr Bits carrier_inf = P::exp_mask;
  const V zero = V{} + 0, one = zero + 1;
  const S szero = S{} + 0;

  auto kernel = [&](V b) {
    const V sign = b & P::sign_mask;
    const V a = b ^ sign;
    const S neg = (S)(sign != 0);
    const S biased = (S)(a >> frac);
    const S e = (biased == 0 ? szero + 1 : biased) - Carrier<C>::bias;
    const S below = (biased == 0) | (e < f.emin);
    const S s = below ? (f.q_below - e) + frac : szero + (1 - f.precision + frac);
    const S sc = s > frac + 2 ? szero + (frac + 2) : s;  // every shift count below the lane width
    const V vsc = (V)sc;
    const V mant = (a & ((Bits{1} << frac) - 1)) | (biased != 0 ? zero + (Bits{1} << frac) : zero);
    const V mask = (one << vsc) - 1;
    const V rem = mant & mask;
    const V half = (one << vsc) >> 1;
    const S odd = (S)(((mant >> vsc) & 1) != 0);
    const S inexact = (S)(rem != 0);
    S up;
    if constexpr (R == Rounding::nearest_even) up = (S)(rem > half) | ((S)(rem == half) & inexact & odd);
    else if constexpr (R == Rounding::nearest_away) up = (S)(rem >= half) & inexact;
    else if constexpr (R == Rounding::toward_zero) up = szero;
    else if constexpr (R == Rounding::upward) up = inexact & ~neg;
    else if constexpr (R == Rounding::downward) up = inexact & neg;
    else up = inexact & ~odd;  // to_odd
    const V kept = (a & ~mask) + (up != 0 ? one << vsc : zero);
    V r = s <= frac ? kept : (up != 0 ? zero + f.tiny_bits : zero);
    constexpr bool nearest = R == Rounding::nearest_even || R == Rounding::nearest_away;
    S away = szero + (nearest ? -1 : 0);
    if constexpr (R == Rounding::upward) away = ~neg;
    if constexpr (R == Rounding::downward) away = neg;
    r = (S)(r > f.max_bits) != 0 ? (away != 0 ? zero + f.overflow_bits : zero + f.max_bits) : r;
    const V special = (a > carrier_inf) != 0 ? (a & f.nan_keep_mask) | P::quiet_bit : zero + f.inf_input_bits;
    r = (a >= carrier_inf) != 0 ? special : r;
    const V out_sign = f.no_negative_zero ? ((r == 0) != 0 ? zero : sign) : sign;
    return r | out_sign;
  };

  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    V b;
    std::memcpy(&b, in + i, sizeof b);
    const V r = kernel(b);
    std::memcpy(out + i, &r, sizeof r);
  }
  if (i < n) {  // the tail through the same vector code on a padded copy
    C pad_in[lanes] = {}, pad_out[lanes];
    std::memcpy(pad_in, in + i, (n - i) * sizeof(C));
    V b;
    std::memcpy(&b, pad_in, sizeof b);
    const V r = kernel(b);
    std::memcpy(pad_out, &r, sizeof r);
    std::memcpy(out + i, pad_out, (n - i) * sizeof(C));
  }
}

}  // namespace lpsim::kernels
