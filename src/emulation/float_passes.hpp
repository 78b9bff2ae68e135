#pragma once
// Passes over a tensor's doubles that an autocast forward runs several times per layer (EmulatedBackend's stores),
// compiled for AVX-512, AVX2 and the baseline and picked at load time: GCC vectorises the conversions only with
// the wider instruction sets. Each value is rounded on its own, so the bits are the same on every one of them.
#include <cstdint>

namespace lpsim::passes {

// v[i] = double(float(v[i])) (binary32 RNE); returns how many finite values became infinite.
long to_float(double* v, std::int64_t n);

// v[i] = bf16 RNE of v[i] by the bit trick, where every value is a float or NaN; returns how many finite values
// became infinite, or -1, with v untouched, where some value is a double no float holds (the trick on its float
// would round twice).
long bf16_of_floats(double* v, std::int64_t n);

// A GEMM operand's cast on entry: out[i] = float(in[i] * scale), then bf16 RNE of it where bf16. Counts the scaled
// values no float holds (inexact: the caller then takes its double path) and the finite ones beyond max.
struct CastCounts {
  long inexact = 0, beyond = 0;
};
CastCounts cast_operand(const double* in, float* out, std::int64_t n, double scale, bool bf16, double max);

// How many values are Inf or NaN.
long count_nonfinite(const float* v, std::int64_t n);

// A product's float results as doubles: out[i] = in[i]; returns how many are Inf or NaN.
long widen(const float* in, double* out, std::int64_t n);

// A product's epilogue in binary32 and its store: v = float(double(in[i]) * unscale) where unscale != 1 (per-tensor
// scaling), then float(v + bias[i]) where bias is not null, then bf16 RNE of that where bf16 (a binary32 store leaves
// it as it is); returns how many finite values the roundings made infinite.
long epilogue_store(const float* in, double unscale, const double* bias, double* out, std::int64_t n, bool bf16);

}  // namespace lpsim::passes
