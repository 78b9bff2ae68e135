#pragma once
// The rounding core (round_core.hpp) written on whole vectors of carrier bit patterns with GCC's vector
// extensions: the same steps as round_bits, every branch a lane-wise select, so the compiler emits one 512-bit
// instruction per step instead of leaving the scalar core unvectorised (issue 18: GCC 12 did not vectorise
// round_bits at all). Included only by a kernel translation unit compiled for AVX-512, where 64-byte vectors are
// registers.
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "lpsim/format/random_stream.hpp"
#include "lpsim/format/round_core.hpp"
#include "round_kernels.hpp"

namespace lpsim::kernels {

struct Avx512Isa {};  // the tag of this instruction set's compilation of the core

template <class C>
struct Lanes {
  using Bits = typename Carrier<C>::Bits;
  using SBits = std::make_signed_t<Bits>;
  typedef Bits V __attribute__((vector_size(64)));
  typedef SBits S __attribute__((vector_size(64)));
  static constexpr std::size_t count = 64 / sizeof(Bits);
  static constexpr int width = 8 * sizeof(Bits);
};

// One vector through the core. For stochastic rounding `rnd` holds the top lane-width bits of each element's
// 64-bit random number; the scalar core's test random < rem * 2^(64-s) equals (rnd >> (width-s)) < rem while
// s <= width. Lanes with s > width (values more than 2^width quanta below the format's smallest subnormal) are
// flagged in `too_deep` for the caller to redo on the scalar core.
template <class C, Rounding R>
[[gnu::always_inline]] inline typename Lanes<C>::V round_lanes(typename Lanes<C>::V b, typename Lanes<C>::V rnd,
                                                               const RoundParams<C>& f,
                                                               typename Lanes<C>::S& too_deep) {
  using P = RoundParams<C>;
  using L = Lanes<C>;
  using Bits = typename L::Bits;
  using V = typename L::V;
  using S = typename L::S;
  constexpr int frac = P::frac_bits;
  constexpr Bits carrier_inf = P::exp_mask;
  const V zero = V{} + 0, one = zero + 1;
  const S szero = S{} + 0;

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
  S up = szero;
  if constexpr (R == Rounding::nearest_even) (void)half, (void)odd;  // its own form below
  else if constexpr (R == Rounding::nearest_away) up = (S)(rem >= half) & inexact;
  else if constexpr (R == Rounding::toward_zero) up = szero;
  else if constexpr (R == Rounding::upward) up = inexact & ~neg;
  else if constexpr (R == Rounding::downward) up = inexact & neg;
  else if constexpr (R == Rounding::to_odd) up = inexact & ~odd;
  else {  // stochastic
    too_deep = s > L::width;
    const S shift = s < 1 ? szero : s > L::width ? szero : L::width - s;  // in range for every lane
    up = (s >= 1) & ((rnd >> (V)shift) < rem);
  }
  V r;
  if constexpr (R == Rounding::nearest_even) {
    // Fewer steps than the general form (this mode is the common one): add half a quantum less one plus the kept
    // lsb and truncate, so the carry rounds (the bf16 trick; the lsb from the significand, since at s = frac it is
    // the implicit bit, and mask & 1 keeps s = 0 exact). Below the quantum only s = frac + 1 can round up: to 2^q
    // when |x| > 2^(q-1), the carrier's leading bit alone being the tie.
    const V kept = (a + (mask >> 1) + ((mant >> vsc) & mask & 1)) & ~mask;
    const S deep_up = (s == frac + 1) & (biased != 0) & (S)((a & ((Bits{1} << frac) - 1)) != 0);
    r = s <= frac ? kept : (deep_up != 0 ? zero + f.tiny_bits : zero);
  } else {
    const V kept = (a & ~mask) + (up != 0 ? one << vsc : zero);
    r = s <= frac ? kept : (up != 0 ? zero + f.tiny_bits : zero);
  }
  constexpr bool nearest =
      R == Rounding::nearest_even || R == Rounding::nearest_away || R == Rounding::stochastic;
  S away = szero + (nearest ? -1 : 0);
  if constexpr (R == Rounding::upward) away = ~neg;
  if constexpr (R == Rounding::downward) away = neg;
  r = (S)(r > f.max_bits) != 0 ? (away != 0 ? zero + f.overflow_bits : zero + f.max_bits) : r;
  const V special = (a > carrier_inf) != 0 ? (a & f.nan_keep_mask) | P::quiet_bit : zero + f.inf_input_bits;
  r = (a >= carrier_inf) != 0 ? special : r;
  const V out_sign = f.no_negative_zero ? ((r == 0) != 0 ? zero : sign) : sign;
  return r | out_sign;
}

// Counter-based random numbers for eight consecutive indices, first..first+7: random_bits on 64-bit lanes.
struct RandomLanes {
  typedef std::uint64_t U __attribute__((vector_size(64)));
  std::uint64_t key;
  explicit RandomLanes(const StochasticStream& sr) : key(stream_key(sr.seed, sr.stream)) {}
  [[gnu::always_inline]] U at(std::uint64_t first) const {
    const U lane = {0, 1, 2, 3, 4, 5, 6, 7};
    return mix64<U>(key + (first + lane) * random_index_step);
  }
};

// The top lane-width bits of the random numbers for the vector of elements starting at index `first`.
template <class C>
[[gnu::always_inline]] inline typename Lanes<C>::V random_lanes(const RandomLanes& rl, std::uint64_t first) {
  if constexpr (sizeof(C) == 8) {
    return rl.at(first);
  } else {
    typedef std::uint32_t H __attribute__((vector_size(32)));
    const H lo = __builtin_convertvector(rl.at(first) >> 32, H);
    const H hi = __builtin_convertvector(rl.at(first + 8) >> 32, H);
    return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  }
}

template <class C, Rounding R>
void round_block_vector(const C* in, C* out, Block blk, const RoundParams<C>& f, const StochasticStream& sr) {
  using L = Lanes<C>;
  using V = typename L::V;
  using S = typename L::S;
  constexpr std::size_t lanes = L::count;
  const RandomLanes rl(sr);
  const std::uint64_t base = sr.offset + blk.first_index;

  // One vector of `count` elements (a padded copy at the tail); stochastic lanes too deep for the top bits are
  // redone on the scalar core with the full 64-bit random number.
  auto one_vector = [&](const C* src, C* dst, std::size_t i, std::size_t count) {
    C pad_in[lanes] = {}, pad_out[lanes];
    std::memcpy(pad_in, src, count * sizeof(C));
    V b;
    std::memcpy(&b, pad_in, sizeof b);
    S too_deep = S{} + 0;
    V rnd = V{} + 0;
    if constexpr (R == Rounding::stochastic) rnd = random_lanes<C>(rl, base + i);
    V r = round_lanes<C, R>(b, rnd, f, too_deep);
    if constexpr (R == Rounding::stochastic) {
      for (std::size_t k = 0; k < count; ++k)
        if (too_deep[k]) r[k] = round_bits<Avx512Isa, C, R>(b[k], f, random_bits(sr.seed, sr.stream, base + i + k));
    }
    std::memcpy(pad_out, &r, sizeof r);
    std::memcpy(dst, pad_out, count * sizeof(C));
  };

  std::size_t i = 0;
  for (; i + lanes <= blk.n; i += lanes) {
    V b;
    std::memcpy(&b, in + i, sizeof b);
    S too_deep = S{} + 0;
    V rnd = V{} + 0;
    if constexpr (R == Rounding::stochastic) rnd = random_lanes<C>(rl, base + i);
    const V r = round_lanes<C, R>(b, rnd, f, too_deep);
    if constexpr (R == Rounding::stochastic) {
      // Rare: redo the whole vector through the tail path, which fixes the deep lanes.
      bool any = false;
      for (std::size_t k = 0; k < lanes; ++k) any |= too_deep[k] != 0;
      if (any) {
        one_vector(in + i, out + i, i, lanes);
        continue;
      }
    }
    std::memcpy(out + i, &r, sizeof r);
  }
  if (i < blk.n) one_vector(in + i, out + i, i, blk.n - i);
}

}  // namespace lpsim::kernels
