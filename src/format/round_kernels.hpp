#pragma once
// Block kernels over the rounding core, compiled once per instruction set (round_kernels_portable.cpp,
// round_kernels_avx512.cpp). Everything here is a template on the Isa tag or always_inline, so the two
// compilations never share a symbol.
#include <bit>
#include <cstddef>
#include <cstdint>

#include "lpsim/format/array_round.hpp"
#include "lpsim/format/random_stream.hpp"
#include "lpsim/format/bf16_rne.hpp"
#include "lpsim/format/round_core.hpp"

namespace lpsim::kernels {

struct Block {
  std::size_t n;
  std::uint64_t first_index;  // index of element 0 in the whole array, for the random stream
};

// The kernels read and write the carrier's bit patterns directly (a may_alias view, which GCC vectorises; a
// bit_cast per element of a loaded double it does not).
template <class Bits>
using AliasedBits [[gnu::may_alias]] = Bits;

template <class Isa, class C, Rounding R>
void round_block(const C* in, C* out, Block blk, const RoundParams<C>& p, const StochasticStream& sr) {
  using Bits = AliasedBits<typename Carrier<C>::Bits>;
  const Bits* src = reinterpret_cast<const Bits*>(in);
  Bits* dst = reinterpret_cast<Bits*>(out);  // may equal src: each element is read before it is written
  if constexpr (R == Rounding::stochastic) {
#pragma omp simd
    for (std::size_t i = 0; i < blk.n; ++i) {
      const std::uint64_t rnd = random_bits(sr.seed, sr.stream, sr.offset + blk.first_index + i);
      dst[i] = round_bits<Isa, C, R>(src[i], p, rnd);
    }
  } else {
#pragma omp simd
    for (std::size_t i = 0; i < blk.n; ++i) dst[i] = round_bits<Isa, C, R>(src[i], p);
  }
}

// bfloat16 with round-to-nearest-even: the bit trick of bf16_rne.hpp.
template <class Isa>
void round_block_bf16_rne(const float* in, float* out, std::size_t n) {
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) out[i] = round_bf16_rne(in[i]);
}

template <class Isa, class C>
void round_block_any(const C* in, C* out, Block blk, const RoundParams<C>& p, Rounding mode,
                     const StochasticStream& sr) {
  with_rounding(mode, [&]<Rounding R>() { round_block<Isa, C, R>(in, out, blk, p, sr); });
}

// What the dispatcher knows about the request, so each Isa can pick its fast special cases.
struct Request {
  Rounding mode;
  bool is_bf16_rne;  // exactly bfloat16 with RNE: the bit trick applies
  bool is_fp16_rne;  // exactly binary16 with RNE: F16C applies
};

// One entry per Isa (defined in the kernel translation units).
void round_portable(const float* in, float* out, Block blk, const RoundParams<float>& p, const Request& rq,
                        const StochasticStream& sr);
void round_portable(const double* in, double* out, Block blk, const RoundParams<double>& p, const Request& rq,
                        const StochasticStream& sr);
void round_avx512(const float* in, float* out, Block blk, const RoundParams<float>& p, const Request& rq,
                      const StochasticStream& sr);
void round_avx512(const double* in, double* out, Block blk, const RoundParams<double>& p, const Request& rq,
                      const StochasticStream& sr);

}  // namespace lpsim::kernels
