// Every one of the 2^32 float32 inputs. fp16 RNE against the CPU's own conversion (F16C vcvtps2ph, an IEEE
// round-to-nearest-even with subnormals: independent of lpsim's core) runs in the normal suite; the MPFR pass over
// all inputs for several formats is the `long` label (about half an hour per format on two cores).
#include <gtest/gtest.h>
#include <immintrin.h>

#include <bit>
#include <cstdlib>
#include <sstream>

#include "lpsim/format/array_round.hpp"
#include "support/mpfr_oracle.hpp"

namespace lpsim {
namespace {

constexpr std::uint64_t all = std::uint64_t{1} << 32;
constexpr std::uint64_t chunk = std::uint64_t{1} << 22;

[[gnu::target("f16c")]] void f16c_round(const float* in, float* out, std::size_t n) {
  for (std::size_t i = 0; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT)));
}

TEST(FullFloat32, Fp16RneMatchesTheCpusF16cOnEveryInput) {
  if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "this CPU has no F16C to compare with";
  std::vector<float> in(chunk), hw(chunk), portable(chunk), best(chunk);
  std::uint64_t mismatches = 0;
  for (std::uint64_t start = 0; start < all; start += chunk) {
    for (std::uint64_t i = 0; i < chunk; ++i) in[i] = std::bit_cast<float>(static_cast<std::uint32_t>(start + i));
    f16c_round(in.data(), hw.data(), chunk);
    round_array(in, portable, formats::fp16, Rounding::nearest_even, {}, Isa::portable);
    round_array(in, best, formats::fp16, Rounding::nearest_even, {}, Isa::best);
    for (std::uint64_t i = 0; i < chunk; ++i) {
      const auto h = std::bit_cast<std::uint32_t>(hw[i]);
      if ((h != std::bit_cast<std::uint32_t>(portable[i]) || h != std::bit_cast<std::uint32_t>(best[i])) && ++mismatches <= 5)
        ADD_FAILURE() << std::hex << "input 0x" << (start + i) << " f16c 0x" << h << " portable 0x"
                      << std::bit_cast<std::uint32_t>(portable[i]) << " best 0x" << std::bit_cast<std::uint32_t>(best[i]);
    }
  }
  EXPECT_EQ(mismatches, 0u);  // NaN payloads included: both keep the top 10 fraction bits and set the quiet bit
}

// LPSIM_LONG_FORMATS="fp16,bf16,e4m3" (default) and LPSIM_LONG_MODES="rne" (default) choose what to enumerate.
TEST(FullFloat32Long, EveryInputMatchesMpfr) {
  std::vector<std::string> names, modes;
  auto split = [](const char* env, const char* fallback, std::vector<std::string>& out) {
    std::stringstream ss(env ? env : fallback);
    for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  };
  split(std::getenv("LPSIM_LONG_FORMATS"), "fp16,bf16,e4m3", names);
  split(std::getenv("LPSIM_LONG_MODES"), "rne", modes);
  std::vector<float> in(chunk), out(chunk);
  for (const auto& name : names)
    for (const auto& mode_name : modes) {
      const Format f = parse_format(name);
      const Rounding mode = parse_rounding(mode_name);
      std::uint64_t mismatches = 0;
      for (std::uint64_t start = 0; start < all; start += chunk) {
        for (std::uint64_t i = 0; i < chunk; ++i) in[i] = std::bit_cast<float>(static_cast<std::uint32_t>(start + i));
        round_array(in, out, f.spec, mode);
#pragma omp parallel for reduction(+ : mismatches) schedule(static)
        for (std::int64_t i = 0; i < std::int64_t(chunk); ++i)
          mismatches += !test::same_value(out[i], test::oracle_round(in[i], f.spec, mode));
      }
      EXPECT_EQ(mismatches, 0u) << name << " " << mode_name;
    }
}

}  // namespace
}  // namespace lpsim
