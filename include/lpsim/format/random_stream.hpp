#pragma once
// Counter-based random bits for stochastic rounding: the bits for element i depend only on (seed, stream, i),
// so results are the same at any thread count and any chunking of the work.
#include <cstdint>

namespace lpsim {

// A 64-bit bijective mixer (the finaliser of SplitMix64, constants from Steele, Lea and Flood); applied twice with
// a key it passes the usual statistical batteries for this use.
[[gnu::always_inline]] constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

[[gnu::always_inline]] constexpr std::uint64_t random_bits(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  std::uint64_t key = mix64(seed ^ 0x9e3779b97f4a7c15ULL) ^ mix64(stream + 0x632be59bd9b4e019ULL);
  return mix64(key + index * 0x9e3779b97f4a7c15ULL);
}

}  // namespace lpsim
