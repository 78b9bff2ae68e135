// The kernels compiled with AVX-512 (and F16C); chosen at run time only where the CPU has them.
#include <immintrin.h>

#include "round_kernels.hpp"
#include "round_vector.hpp"

namespace lpsim::kernels {

namespace {
// binary16 RNE through the hardware conversion, which is IEEE round-to-nearest-even with subnormals, overflow
// to inf and NaN payload truncation exactly as the core defines them.
void round_block_fp16_rne(const float* in, float* out, std::size_t n) {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 x = _mm512_loadu_ps(in + i);
    __m256i h = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm512_storeu_ps(out + i, _mm512_cvtph_ps(h));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    __m512 x = _mm512_maskz_loadu_ps(m, in + i);
    __m256i h = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm512_mask_storeu_ps(out + i, m, _mm512_cvtph_ps(h));
  }
}
}  // namespace

void round_avx512(const float* in, float* out, Block blk, const RoundParams<float>& p, const Request& rq,
                      const StochasticStream& sr) {
  if (rq.is_fp16_rne) return round_block_fp16_rne(in, out, blk.n);
  // The bf16 bit trick is memory-bound; GCC's 512-bit version of it measured 0.72x a copy against the baseline
  // build's 0.96x (one thread, 64 Mi elements), so take the portable kernel: the same bits.
  if (rq.is_bf16_rne) return round_portable(in, out, blk, p, rq, sr);
  with_rounding(rq.mode, [&]<Rounding R>() { round_block_vector<float, R>(in, out, blk, p, sr); });
}

void round_avx512(const double* in, double* out, Block blk, const RoundParams<double>& p, const Request& rq,
                      const StochasticStream& sr) {
  with_rounding(rq.mode, [&]<Rounding R>() { round_block_vector<double, R>(in, out, blk, p, sr); });
}

}  // namespace lpsim::kernels
