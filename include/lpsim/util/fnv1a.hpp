#pragma once
// FNV-1a, 64 bits: the digests that stand for GPU outputs in CI (tap_digest, value_digest), fed a value's bytes
// least significant first.
#include <cstdint>

namespace lpsim {

inline constexpr std::uint64_t fnv1a_basis = 14695981039346656037ull;

// h with the low `bytes` bytes of word folded in.
constexpr std::uint64_t fnv1a_add(std::uint64_t h, std::uint64_t word, int bytes) {
  for (int i = 0; i < bytes; ++i) h = (h ^ ((word >> (8 * i)) & 0xff)) * 1099511628211ull;
  return h;
}

}  // namespace lpsim
