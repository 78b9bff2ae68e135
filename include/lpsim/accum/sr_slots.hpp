#pragma once
// Where each rounding of a dot product takes its stochastic-rounding bits, so that the reference, the generic
// kernels and any future kernel draw the same word for the same rounding, at any thread count.
//
// Output element e of a product with inner dimension K owns the words random_bits(seed, stream, e*(4K+1) + slot):
//   2t      rounding the product of term t          2t+1    the accumulation that takes in term t
//   2K+m    pairwise node that joins at term m      2K+t    tensor-core step whose first term is t
//   3K+c    adding chunk c's sum (c >= 1)           4K      the output rounding
#include <cstdint>

#include "lpsim/format/array_round.hpp"
#include "lpsim/format/random_stream.hpp"

namespace lpsim {

struct SrSlots {
  std::uint64_t seed = 0, stream = 0, base = 0, k = 0;
  LPSIM_HD SrSlots(const StochasticStream& sr, std::uint64_t element, int inner)
      : seed(sr.seed), stream(sr.stream), base((sr.offset + element) * (4 * std::uint64_t(inner) + 1)),
        k(std::uint64_t(inner)) {}
  LPSIM_HD std::uint64_t word(std::uint64_t slot) const { return random_bits(seed, stream, base + slot); }
  LPSIM_HD std::uint64_t product(int t) const { return word(2 * std::uint64_t(t)); }
  LPSIM_HD std::uint64_t accumulate(int t) const { return word(2 * std::uint64_t(t) + 1); }
  LPSIM_HD std::uint64_t pairwise_node(int m) const { return word(2 * k + std::uint64_t(m)); }
  LPSIM_HD std::uint64_t tensor_step(int first) const { return word(2 * k + std::uint64_t(first)); }
  LPSIM_HD std::uint64_t chunk(int c) const { return word(3 * k + std::uint64_t(c)); }
  LPSIM_HD std::uint64_t output() const { return word(4 * k); }
};

}  // namespace lpsim
