// The bf16 bit trick (bf16_rne.hpp: the array kernels' and the emulated backend's fast path) against the rounding
// core on every one of the 2^32 floats (NaNs must stay NaNs). The core rounds the same values held as doubles
// (its general path, not the trick), and is itself checked against MPFR (test_round_oracle.cpp, FullFloat32Long).
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <vector>

#include "lpsim/format/array_round.hpp"
#include "lpsim/format/bf16_rne.hpp"

namespace lpsim {
namespace {

TEST(Bf16Rne, BitTrickMatchesTheCoreOnEveryFloat) {
  constexpr std::uint64_t all = std::uint64_t{1} << 32, chunk = std::uint64_t{1} << 22;
  std::vector<double> core(chunk);
  std::uint64_t mismatches = 0;
  for (std::uint64_t start = 0; start < all; start += chunk) {
    for (std::uint64_t i = 0; i < chunk; ++i) core[i] = std::bit_cast<float>(static_cast<std::uint32_t>(start + i));
    round_array(std::span<const double>(core), std::span<double>(core), formats::bf16, Rounding::nearest_even);
    for (std::uint64_t i = 0; i < chunk; ++i) {
      const auto in = static_cast<std::uint32_t>(start + i);
      const float trick = round_bf16_rne(std::bit_cast<float>(in));
      const float expected = static_cast<float>(core[i]);  // a bf16 value or NaN: exact in a float
      const bool same = trick != trick ? expected != expected
                                       : std::bit_cast<std::uint32_t>(trick) == std::bit_cast<std::uint32_t>(expected);
      if (!same && ++mismatches <= 5)
        ADD_FAILURE() << std::hex << "input 0x" << in << " trick 0x" << std::bit_cast<std::uint32_t>(trick)
                      << " core 0x" << std::bit_cast<std::uint32_t>(expected);
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

}  // namespace
}  // namespace lpsim
