#pragma once
// Counter-based random bits for stochastic rounding: the bits for element i depend only on (seed, stream, i),
// so results are the same at any thread count and any chunking of the work.
#include <cstdint>

#include "lpsim/util/host_device.hpp"

namespace lpsim {

// A 64-bit bijective mixer (the finaliser of SplitMix64, constants from Steele, Lea and Flood); applied twice with
// a key it passes the usual statistical batteries for this use. U is std::uint64_t or a GCC vector of them (the
// AVX-512 rounding kernel mixes eight indices at once, src/format/round_vector.hpp).
template <class U>
[[gnu::always_inline]] LPSIM_HD constexpr U mix64(U z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline constexpr std::uint64_t random_index_step = 0x9e3779b97f4a7c15ULL;  // the golden-ratio increment

// random_bits(seed, stream, i) = mix64(stream_key(seed, stream) + i * random_index_step).
[[gnu::always_inline]] LPSIM_HD constexpr std::uint64_t stream_key(std::uint64_t seed, std::uint64_t stream) {
  return mix64<std::uint64_t>(seed ^ 0x9e3779b97f4a7c15ULL) ^ mix64<std::uint64_t>(stream + 0x632be59bd9b4e019ULL);
}

[[gnu::always_inline]] LPSIM_HD constexpr std::uint64_t random_bits(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  return mix64<std::uint64_t>(stream_key(seed, stream) + index * random_index_step);
}

}  // namespace lpsim
