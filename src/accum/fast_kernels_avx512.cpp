// AVX-512 matrix-product kernels. Each lane of a vector is one output column, so every output element keeps its
// own order of steps (sequential within a chunk, chunks added in order), exactly as dot_reference.cpp defines.
//
// Three step kinds, each exact by construction:
// - binary32 accumulation: the native fma / mul / add with the policy's rounding as embedded rounding;
// - narrower accumulators (fp16 with any IEEE mode, bf16 with RNE): fma rounded down and up gives the exact
//   result's round-to-odd at 24 bits (the one of the two with an odd last bit, or both when exact), which rounds
//   correctly to any format of <= 22 bits (Boldo and Melquiond); then F16C or the bf16 bit trick rounds it;
// - the tensor-core model: products exact in float (operands of <= 12 bits), the largest magnitude's exponent
//   per lane, each term scaled and cut to an integer (int32 lanes), summed exactly, rescaled in double and
//   rounded once to binary32.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <vector>

#include "fast_kernels.hpp"
#include "generic_dot.hpp"
#include "lpsim/format/round_scalar.hpp"

namespace lpsim::accum {

namespace {

constexpr int nr = 32;  // output columns per tile: two vectors
constexpr int no_exc = _MM_FROUND_NO_EXC;

// The embedded-rounding immediate of an IEEE mode, or -1.
int ieee_rounding(Rounding r) {
  switch (r) {
    case Rounding::nearest_even: return _MM_FROUND_TO_NEAREST_INT;
    case Rounding::toward_zero: return _MM_FROUND_TO_ZERO;
    case Rounding::upward: return _MM_FROUND_TO_POS_INF;
    case Rounding::downward: return _MM_FROUND_TO_NEG_INF;
    default: return -1;
  }
}

// ---- steps: first(a, b) = the first term's rounding, next(s, a, b) = one step, combine(x, y) = chunk sums ----

template <int R>  // binary32 accumulation with fma
struct Fp32Fma {
  static __m512 first(__m512 a, __m512 b) { return _mm512_mul_round_ps(a, b, R | no_exc); }
  static __m512 next(__m512 s, __m512 a, __m512 b) { return _mm512_fmadd_round_ps(a, b, s, R | no_exc); }
  static __m512 combine(__m512 x, __m512 y) { return _mm512_add_round_ps(x, y, R | no_exc); }
};

template <int R>  // binary32 accumulation, products rounded to binary32 first (same mode)
struct Fp32MulAdd {
  static __m512 first(__m512 a, __m512 b) { return _mm512_mul_round_ps(a, b, R | no_exc); }
  static __m512 next(__m512 s, __m512 a, __m512 b) {
    return _mm512_add_round_ps(s, _mm512_mul_round_ps(a, b, R | no_exc), R | no_exc);
  }
  static __m512 combine(__m512 x, __m512 y) { return _mm512_add_round_ps(x, y, R | no_exc); }
};

// Round-to-odd at 24 bits from the two directed roundings: exactly one of them has an odd last bit when the
// result is inexact; when it is exact they are equal (an exact zero sum is +0, from the upward rounding).
inline __m512 odd_from(__m512 down, __m512 up) {
  const __mmask16 odd = _mm512_test_epi32_mask(_mm512_castps_si512(down), _mm512_set1_epi32(1));
  return _mm512_mask_blend_ps(odd, up, down);
}
inline __m512 odd_fma(__m512 a, __m512 b, __m512 s) {
  return odd_from(_mm512_fmadd_round_ps(a, b, s, _MM_FROUND_TO_NEG_INF | no_exc),
                  _mm512_fmadd_round_ps(a, b, s, _MM_FROUND_TO_POS_INF | no_exc));
}
inline __m512 odd_mul(__m512 a, __m512 b) {
  return odd_from(_mm512_mul_round_ps(a, b, _MM_FROUND_TO_NEG_INF | no_exc),
                  _mm512_mul_round_ps(a, b, _MM_FROUND_TO_POS_INF | no_exc));
}
inline __m512 odd_add(__m512 x, __m512 y) {
  return odd_from(_mm512_add_round_ps(x, y, _MM_FROUND_TO_NEG_INF | no_exc),
                  _mm512_add_round_ps(x, y, _MM_FROUND_TO_POS_INF | no_exc));
}

template <int R>  // binary16 with an IEEE mode: F16C rounds (subnormals, overflow and NaN as IEEE 754 says)
struct Fp16Round {
  static __m512 apply(__m512 x) { return _mm512_cvtph_ps(_mm512_cvtps_ph(x, R | no_exc)); }
};

struct Bf16Rne {  // the top half of a float, rounded to nearest even by an integer add; NaNs quieted
  static __m512 apply(__m512 x) {
    const __m512i b = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
    const __m512i hi_mask = _mm512_set1_epi32(int(0xffff0000u));
    const __m512i rounded = _mm512_and_si512(_mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7fff)), lsb), hi_mask);
    const __m512i magnitude = _mm512_and_si512(b, _mm512_set1_epi32(0x7fffffff));
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(magnitude, _mm512_set1_epi32(0x7f800000));
    const __m512i quiet = _mm512_or_si512(_mm512_and_si512(b, hi_mask), _mm512_set1_epi32(0x00400000));
    return _mm512_castsi512_ps(_mm512_mask_blend_epi32(nan, rounded, quiet));
  }
};

template <class Round, bool Fused>  // a narrower accumulator; without fma the product rounds to it first
struct NarrowAcc {
  static __m512 first(__m512 a, __m512 b) { return Round::apply(odd_mul(a, b)); }
  static __m512 next(__m512 s, __m512 a, __m512 b) {
    if constexpr (Fused) return Round::apply(odd_fma(a, b, s));
    else return Round::apply(odd_add(s, Round::apply(odd_mul(a, b))));
  }
  static __m512 combine(__m512 x, __m512 y) { return Round::apply(odd_add(x, y)); }
};

// ---- packing: A as row panels of MR rows (t-major), B as column panels of 32 columns, zero padded ----

// A packed operand, with a flag per panel that holds an infinity or a NaN (the tensor-core kernel sends those
// panels' tiles to the portable step).
// The buffers are reused per calling thread: fresh pages for every product cost page faults that took as long as
// a 512^3 product on two threads (measured).
struct Packed {
  std::vector<float> data;
  std::vector<char> non_finite;
  void reset(size_t size, int panels) {
    data.assign(size, 0.0f);
    non_finite.assign(size_t(panels), 0);
  }
};
Packed& workspace(int which) {
  static thread_local Packed buffers[2];
  return buffers[which];
}

template <int MR>
const Packed& pack_a(const float* a, int m, int k) {
  const int panels = (m + MR - 1) / MR;
  Packed& p = workspace(0);
  p.reset(size_t(panels) * k * MR, panels);
#pragma omp parallel for schedule(static) if (size_t(m) * k > (1u << 16))
  for (int ip = 0; ip < panels; ++ip)
    for (int r = 0; r < MR && ip * MR + r < m; ++r)
      for (int t = 0; t < k; ++t) {
        const float x = a[size_t(ip * MR + r) * k + t];
        p.data[(size_t(ip) * k + t) * MR + r] = x;
        if (!std::isfinite(x)) p.non_finite[ip] = 1;
      }
  return p;
}

const Packed& pack_b(const float* b, int k, int n) {
  const int panels = (n + nr - 1) / nr;
  Packed& p = workspace(1);
  p.reset(size_t(panels) * k * nr, panels);
  // Rows of a panel are contiguous in B: copy them whole (vectorised, no branch per element); small products stay
  // on the calling thread, where a parallel region would cost more than the copy.
#pragma omp parallel for schedule(static) if (size_t(k) * n > (1u << 16))
  for (int jp = 0; jp < panels; ++jp) {
    const int cols = std::min(nr, n - jp * nr);
    bool finite = true;
    for (int t = 0; t < k; ++t) {
      const float* src = b + size_t(t) * n + size_t(jp) * nr;
      float* dst = p.data.data() + (size_t(jp) * k + t) * nr;
      for (int c = 0; c < cols; ++c) {
        dst[c] = src[c];
        finite &= std::isfinite(src[c]);
      }
    }
    if (!finite) p.non_finite[jp] = 1;
  }
  return p;
}

// Stores rows x cols of an MR x 32 tile held as vectors.
template <int MR>
void store_tile(const __m512 (&v)[MR][2], float* c, int n, int rows, int cols) {
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? __mmask16(0xffff) : cols <= 16 ? __mmask16(0) : __mmask16((1u << (cols - 16)) - 1);
  for (int r = 0; r < MR; ++r) {
    if (r >= rows) break;
    _mm512_mask_storeu_ps(c + size_t(r) * n, m0, v[r][0]);
    _mm512_mask_storeu_ps(c + size_t(r) * n + 16, m1, v[r][1]);
  }
}

// Runs body(ip, jp) over every tile, in parallel; tiles are independent, so any schedule gives the same bits.
// A thread takes a group of up to 8 row panels (at most ~200 KB of packed A, kept in L2) and sweeps every column
// panel over it, so A is read from memory once and each 64 KB B panel serves the whole group.
template <class Body>
void for_tiles(int m_panels, int n_panels, Body body) {
  const int group = std::clamp(m_panels / (2 * omp_get_max_threads()), 1, 8);
  const int groups = (m_panels + group - 1) / group;
#pragma omp parallel for collapse(2) schedule(static)
  for (int g = 0; g < groups; ++g)
    for (int jp = 0; jp < n_panels; ++jp)
      for (int ip = g * group; ip < std::min(m_panels, (g + 1) * group); ++ip) body(ip, jp);
}

// ---- the scalar-step kernels (binary32 and narrower accumulators) ----

template <int MR, class Step>
[[gnu::always_inline]] inline void run_chunk(const float* ap, const float* bp, std::size_t ldb, int first, int end,
                                            __m512 (&s)[MR][2]) {
  {
    const __m512 b0 = _mm512_loadu_ps(bp + size_t(first) * ldb), b1 = _mm512_loadu_ps(bp + size_t(first) * ldb + 16);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(ap[size_t(first) * MR + r]);
      s[r][0] = Step::first(a, b0);
      s[r][1] = Step::first(a, b1);
    }
  }
  for (int t = first + 1; t < end; ++t) {
    const __m512 b0 = _mm512_loadu_ps(bp + size_t(t) * ldb), b1 = _mm512_loadu_ps(bp + size_t(t) * ldb + 16);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(ap[size_t(t) * MR + r]);
      s[r][0] = Step::next(s[r][0], a, b0);
      s[r][1] = Step::next(s[r][1], a, b1);
    }
  }
}

template <int MR, class Step>
void step_gemm(const AccumPolicy& p, int m, int n, int k, const float* a, const float* b, float* c) {
  // When whole 32-column panels tile B, its rows are read in place (row stride n): packing B would copy it once
  // per product, which costs more than the product itself for the small matrices of a transformer layer.
  const bool direct = n % nr == 0;
  const Packed& ap = pack_a<MR>(a, m, k);
  const Packed* bp = direct ? nullptr : &pack_b(b, k, n);
  const std::size_t ldb = direct ? std::size_t(n) : std::size_t(nr);
  const int len = p.chunk_length(k);
  for_tiles((m + MR - 1) / MR, (n + nr - 1) / nr, [&](int ip, int jp) {
    const float* at = ap.data.data() + size_t(ip) * k * MR;
    const float* bt = direct ? b + size_t(jp) * nr : bp->data.data() + size_t(jp) * k * nr;
    __m512 total[MR][2], part[MR][2];
    run_chunk<MR, Step>(at, bt, ldb, 0, std::min(k, len), total);
    for (int first = len; first < k; first += len) {
      run_chunk<MR, Step>(at, bt, ldb, first, std::min(k, first + len), part);
      for (int r = 0; r < MR; ++r)
        for (int h = 0; h < 2; ++h) total[r][h] = Step::combine(total[r][h], part[r][h]);
    }
    store_tile<MR>(total, c + size_t(ip) * MR * n + size_t(jp) * nr, n, std::min(MR, m - ip * MR),
                   std::min(nr, n - jp * nr));
  });
}

// ---- the tensor-core model ----

// Products per lane of float operands of <= 12 bits are exact floats; cut terms are int32 lanes.
template <int R, bool Truncate>
struct TensorCore {
  static constexpr int mr = 4;
  const AccumPolicy* policy;
  int k, bits;

  // One fused step for mr rows x 32 columns: s = TC(s, products of terms [first, end)).
  [[gnu::always_inline]] inline void step(const float* ap, const float* bp, int first, int end,
                                          __m512 (&s)[mr][2]) const {
    __m512 big[mr][2];
    for (int r = 0; r < mr; ++r)
      for (int h = 0; h < 2; ++h) big[r][h] = _mm512_abs_ps(s[r][h]);
    for (int t = first; t < end; ++t) {
      const __m512 b0 = _mm512_loadu_ps(bp + size_t(t) * nr), b1 = _mm512_loadu_ps(bp + size_t(t) * nr + 16);
#pragma GCC unroll 4
      for (int r = 0; r < mr; ++r) {
        const __m512 a = _mm512_set1_ps(ap[size_t(t) * mr + r]);
        big[r][0] = _mm512_range_ps(big[r][0], _mm512_mul_ps(a, b0), 0x0b);  // larger magnitude, NaN kept
        big[r][1] = _mm512_range_ps(big[r][1], _mm512_mul_ps(a, b1), 0x0b);
      }
    }
    __m512 neg_quantum[mr][2];
    __m512i sum[mr][2];
    const __m512 shift = _mm512_set1_ps(float(bits - 1));
    const __m512 lowest_fast = _mm512_set1_ps(std::ldexp(1.0f, bits - 125));
    for (int r = 0; r < mr; ++r)
      for (int h = 0; h < 2; ++h) {
        neg_quantum[r][h] = _mm512_sub_ps(shift, _mm512_getexp_ps(big[r][h]));  // -(E - bits + 1)
        sum[r][h] = cut(_mm512_scalef_ps(s[r][h], neg_quantum[r][h]));
      }
    for (int t = first; t < end; ++t) {
      const __m512 b0 = _mm512_loadu_ps(bp + size_t(t) * nr), b1 = _mm512_loadu_ps(bp + size_t(t) * nr + 16);
#pragma GCC unroll 4
      for (int r = 0; r < mr; ++r) {
        const __m512 a = _mm512_set1_ps(ap[size_t(t) * mr + r]);
        sum[r][0] = _mm512_add_epi32(sum[r][0], cut(_mm512_scalef_ps(_mm512_mul_ps(a, b0), neg_quantum[r][0])));
        sum[r][1] = _mm512_add_epi32(sum[r][1], cut(_mm512_scalef_ps(_mm512_mul_ps(a, b1), neg_quantum[r][1])));
      }
    }
    for (int r = 0; r < mr; ++r)
      for (int h = 0; h < 2; ++h) {
        const __m512 old = s[r][h];
        s[r][h] = normalise(sum[r][h], neg_quantum[r][h]);
        // The fast range: no product overflows float, and products that underflow it lie below half a quantum.
        // Outside it (all-zero terms, infinite products, extreme exponents) the portable step takes the lane.
        const __mmask16 fast = _mm512_cmp_ps_mask(big[r][h], lowest_fast, _CMP_GE_OQ) &
                               _mm512_cmp_ps_mask(big[r][h], _mm512_set1_ps(0x1p127f), _CMP_LT_OQ);
        if (fast != 0xffff) s[r][h] = exact_lanes(__mmask16(~fast), old, s[r][h], ap, bp, first, end, r, h);
      }
  }

  static __m512i cut(__m512 x) {
    if constexpr (Truncate) return _mm512_cvtt_roundps_epi32(x, no_exc);
    else return _mm512_cvt_roundps_epi32(x, _MM_FROUND_TO_NEAREST_INT | no_exc);
  }

  // sum * 2^quantum (exact in double) rounded once to binary32.
  static __m512 normalise(__m512i sum, __m512 neg_quantum) {
    const __m512d q_lo = _mm512_cvtps_pd(_mm512_castps512_ps256(neg_quantum));
    const __m512d q_hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(neg_quantum), 1)));
    const __m512d lo = _mm512_scalef_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(sum)), _mm512_sub_pd(_mm512_setzero_pd(), q_lo));
    const __m512d hi = _mm512_scalef_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(sum, 1)), _mm512_sub_pd(_mm512_setzero_pd(), q_hi));
    const __m256 flo = _mm512_cvt_roundpd_ps(lo, R | no_exc), fhi = _mm512_cvt_roundpd_ps(hi, R | no_exc);
    return _mm512_insertf32x8(_mm512_castps256_ps512(flo), fhi, 1);
  }

  // Tiles whose operands hold inf or NaN: every lane by the portable step (products may be NaN, which the fast
  // range check cannot see).
  void exact_step(const float* ap, const float* bp, int first, int end, __m512 (&s)[mr][2]) const {
    for (int r = 0; r < mr; ++r)
      for (int h = 0; h < 2; ++h) s[r][h] = exact_lanes(0xffff, s[r][h], s[r][h], ap, bp, first, end, r, h);
  }

  // Lanes outside the fast range, computed by the portable step (rare).
  __m512 exact_lanes(__mmask16 lanes, __m512 old, __m512 fast, const float* ap, const float* bp, int first, int end,
                     int r, int h) const {
    alignas(64) float c_in[16], out[16];
    _mm512_store_ps(c_in, old);
    _mm512_store_ps(out, fast);
    for (int l = 0; l < 16; ++l) {
      if (!((lanes >> l) & 1)) continue;
      double terms[65];
      int n = 0;
      terms[n++] = c_in[l];
      for (int t = first; t < end; ++t) terms[n++] = double(ap[size_t(t) * mr + r]) * double(bp[size_t(t) * nr + h * 16 + l]);
      out[l] = float(tensor_core_step(terms, n, *policy, 0));
    }
    return _mm512_load_ps(out);
  }
};

template <int R, bool Truncate, int CombineR>
void tensor_core_gemm(const AccumPolicy& p, int m, int n, int k, const float* a, const float* b, float* c) {
  using TC = TensorCore<R, Truncate>;
  constexpr int mr = TC::mr;
  const TC tc{&p, p.tc.k, p.tc.bits};
  const Packed &ap = pack_a<mr>(a, m, k), &bp = pack_b(b, k, n);
  const int len = p.chunk_length(k);
  for_tiles((m + mr - 1) / mr, (n + nr - 1) / nr, [&](int ip, int jp) {
    const float* at = ap.data.data() + size_t(ip) * k * mr;
    const float* bt = bp.data.data() + size_t(jp) * k * nr;
    const bool non_finite = ap.non_finite[ip] || bp.non_finite[jp];
    __m512 total[mr][2], part[mr][2];
    for (int first = 0; first < k; first += len) {
      const int end = std::min(k, first + len);
      for (int r = 0; r < mr; ++r) part[r][0] = part[r][1] = _mm512_setzero_ps();
      for (int t = first; t < end; t += tc.k) {
        if (non_finite) tc.exact_step(at, bt, t, std::min(end, t + tc.k), part);
        else tc.step(at, bt, t, std::min(end, t + tc.k), part);
      }
      for (int r = 0; r < mr; ++r)
        for (int h = 0; h < 2; ++h)
          total[r][h] = first == 0 ? part[r][h] : _mm512_add_round_ps(total[r][h], part[r][h], CombineR | no_exc);
    }
    if (k == 0)
      for (int r = 0; r < mr; ++r) total[r][0] = total[r][1] = _mm512_setzero_ps();
    store_tile<mr>(total, c + size_t(ip) * mr * n + size_t(jp) * nr, n, std::min(mr, m - ip * mr),
                   std::min(nr, n - jp * nr));
  });
}

// ---- dispatch ----

// Calls body.template operator()<R>() with R the embedded-rounding immediate of an IEEE mode.
template <class Body>
void with_ieee_rounding(Rounding mode, Body body) {
  switch (mode) {
    case Rounding::toward_zero: return body.template operator()<_MM_FROUND_TO_ZERO>();
    case Rounding::upward: return body.template operator()<_MM_FROUND_TO_POS_INF>();
    case Rounding::downward: return body.template operator()<_MM_FROUND_TO_NEG_INF>();
    default: return body.template operator()<_MM_FROUND_TO_NEAREST_INT>();
  }
}

bool is(const std::optional<Format>& f, const FormatSpec& spec) { return f && f->spec == spec; }

}  // namespace

GemmPath fast_path(const AccumPolicy& p) {
  if (!carrier_holds<float>(p.input.spec) || !p.acc || p.order == Order::pairwise) return GemmPath::generic;
  if (p.tc.k > 0) {
    // Products of <= 12-bit operands are exact floats inside the fast range (see TensorCore::step).
    const bool exact_float_products = 2 * p.input.spec.precision <= 24;
    const bool fits_int32 = p.tc.bits + std::bit_width(unsigned(p.tc.k)) <= 30;  // k+1 cut terms, even rounded up
    if (exact_float_products && fits_int32 && !p.tc.align_operands && p.tc.deal == 0 && !p.tc.unpack && !p.tc.acc && is(p.acc, formats::fp32) &&
        ieee_rounding(p.tc.rounding) >= 0 &&
        ieee_rounding(p.acc_rounding) >= 0)
      return GemmPath::tensor_core;
    return GemmPath::generic;
  }
  const int mode = ieee_rounding(p.acc_rounding);
  if (mode < 0) return GemmPath::generic;
  // Without fma, the product must round to the accumulator's format in its mode.
  const bool product_ok = p.fma || !p.product || (p.product->spec == p.acc->spec && p.product_rounding == p.acc_rounding);
  if (!product_ok) return GemmPath::generic;
  if (is(p.acc, formats::fp32)) return GemmPath::fp32_fma;
  if (is(p.acc, formats::fp16)) return GemmPath::rounded_acc;
  if (is(p.acc, formats::bf16) && p.acc_rounding == Rounding::nearest_even) return GemmPath::rounded_acc;
  return GemmPath::generic;
}

void fast_gemm(const AccumPolicy& p, GemmPath path, int m, int n, int k, const float* a, const float* b, float* c) {
  if (k == 0) {  // an empty sum is +0 whatever the kernel
    std::fill(c, c + size_t(m) * n, 0.0f);
    return;
  }
  const bool fused = p.fma || !p.product;
  if (path == GemmPath::fp32_fma) {
    with_ieee_rounding(p.acc_rounding, [&]<int R>() {
      if (fused) step_gemm<12, Fp32Fma<R>>(p, m, n, k, a, b, c);
      else step_gemm<12, Fp32MulAdd<R>>(p, m, n, k, a, b, c);
    });
  } else if (path == GemmPath::rounded_acc) {
    if (is(p.acc, formats::bf16)) {
      if (fused) step_gemm<8, NarrowAcc<Bf16Rne, true>>(p, m, n, k, a, b, c);
      else step_gemm<8, NarrowAcc<Bf16Rne, false>>(p, m, n, k, a, b, c);
    } else {
      with_ieee_rounding(p.acc_rounding, [&]<int R>() {
        if (fused) step_gemm<8, NarrowAcc<Fp16Round<R>, true>>(p, m, n, k, a, b, c);
        else step_gemm<8, NarrowAcc<Fp16Round<R>, false>>(p, m, n, k, a, b, c);
      });
    }
  } else if (path == GemmPath::tensor_core) {
    with_ieee_rounding(p.tc.rounding, [&]<int R>() {
      with_ieee_rounding(p.acc_rounding, [&]<int CR>() {
        if (p.tc.align_truncates) tensor_core_gemm<R, true, CR>(p, m, n, k, a, b, c);
        else tensor_core_gemm<R, false, CR>(p, m, n, k, a, b, c);
      });
    });
  }
}

}  // namespace lpsim::accum
