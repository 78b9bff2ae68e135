#pragma once
// bfloat16 with round-to-nearest-even of a float: bf16 is the top half of a float, so add 0x7fff plus the kept
// lsb and clear the rest. The carry handles subnormals, binade steps and overflow to inf; NaNs are quieted as the
// rounding core does (the core, round_core.hpp, gives the same bits on every float: test_bf16_rne.cpp). Shared by
// the array kernels and the emulated backend's fused passes.
#include <bit>
#include <cstdint>

namespace lpsim {

// always_inline: kernels compiled with other instruction sets include it, and must never share an emitted copy.
[[gnu::always_inline]] inline float round_bf16_rne(float x) {
  const std::uint32_t b = std::bit_cast<std::uint32_t>(x);
  const std::uint32_t rounded = (b + 0x7fffu + ((b >> 16) & 1u)) & 0xffff0000u;
  const bool nan = (b & 0x7fffffffu) > 0x7f800000u;
  return std::bit_cast<float>(nan ? ((b & 0xffff0000u) | 0x00400000u) : rounded);
}

}  // namespace lpsim
