// The hardware's conversions against lpsim's emulation, bit for bit, on every fp16/bf16/fp8 value, their
// midpoints and neighbours and a strided walk over float32. Skips where no GPU is present (as in CI).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>

#include "conversions.hpp"
#include "lpsim/format/array_round.hpp"

namespace lpsim {
namespace {

std::vector<float> probe_inputs() {
  std::vector<float> v;
  for (std::uint64_t b = 0; b < (std::uint64_t{1} << 32); b += 4099) v.push_back(std::bit_cast<float>(std::uint32_t(b)));
  for (std::uint32_t h = 0; h < 65536; ++h) {  // every bf16 value and the floats around it
    const std::uint32_t b = h << 16;
    for (std::uint32_t d : {0u, 1u, 0x7fffu, 0x8000u, 0x8001u}) v.push_back(std::bit_cast<float>(b | d));
  }
  return v;
}

void expect_native_matches(cuda::NativeConversion c, const char* format) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device: the native side of this comparison needs a GPU";
  const auto in = probe_inputs();
  const auto native = cuda::convert_on_device(in, c);
  std::vector<float> emulated(in.size());
  round_array(in, emulated, parse_format(format).spec, Rounding::nearest_even);
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const bool same = std::isnan(native[i]) ? std::isnan(emulated[i])
                                            : std::bit_cast<std::uint32_t>(native[i]) == std::bit_cast<std::uint32_t>(emulated[i]);
    if (!same && ++mismatches <= 5)
      ADD_FAILURE() << cuda::name(c) << " x=" << in[i] << " native " << native[i] << " lpsim " << emulated[i];
  }
  EXPECT_EQ(mismatches, 0u) << "of " << in.size();
}

TEST(CudaConversions, Fp16) { expect_native_matches(cuda::NativeConversion::fp16_rn, "fp16"); }
TEST(CudaConversions, Bf16) { expect_native_matches(cuda::NativeConversion::bf16_rn, "bf16"); }
TEST(CudaConversions, E4m3Saturating) { expect_native_matches(cuda::NativeConversion::e4m3_satfinite, "e4m3:sat"); }
TEST(CudaConversions, E4m3NoSaturation) { expect_native_matches(cuda::NativeConversion::e4m3_nosat, "e4m3"); }
TEST(CudaConversions, E5m2Saturating) { expect_native_matches(cuda::NativeConversion::e5m2_satfinite, "e5m2:sat"); }
TEST(CudaConversions, E5m2NoSaturation) { expect_native_matches(cuda::NativeConversion::e5m2_nosat, "e5m2"); }

}  // namespace
}  // namespace lpsim
