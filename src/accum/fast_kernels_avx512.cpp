// AVX-512 matrix-product kernels. Each lane of a vector is one output column, so every output element keeps its
// own order of steps (sequential within a chunk, chunks added in order), exactly as dot_reference.cpp defines.
//
// Three step kinds, each exact by construction:
// - binary32 accumulation: the native fma / mul / add with the policy's rounding as embedded rounding;
// - narrower accumulators (fp16 with any IEEE mode, bf16 with RNE): fma rounded down and up gives the exact
//   result's round-to-odd at 24 bits (the one of the two with an odd last bit, or both when exact), which rounds
//   correctly to any format of <= 22 bits (Boldo and Melquiond); then F16C or the bf16 bit trick rounds it;
// - the tensor-core model: products exact in float (operands of <= 12 bits), the alignment exponent per lane (the
//   largest product's, or the largest sum of operand exponents as the H100 fits need), each term scaled and cut to
//   an integer (int32 lanes), summed exactly, rescaled in double and rounded once to binary32 (and to a narrower
//   truncating tcacc by clearing bits).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cstdint>
#include <cmath>
#include <optional>
#include <vector>

#include "fast_kernels.hpp"
#include "generic_dot.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/util/parallel_for.hpp"

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
// panels' tiles to the portable step) and, for the tensor-core model aligned by operands, each operand's exponent
// beside it.
// The buffers are reused per calling thread: fresh pages for every product cost page faults that took as long as
// a 512^3 product on two threads (measured).
struct Packed {
  std::vector<float> data, exps;
  std::vector<char> non_finite;
  // Sized only: the packers write every element, padding included (no fill pass over the whole buffer).
  void reset(size_t size, int panels, bool with_exps) {
    data.resize(size);
    exps.resize(with_exps ? size : 0);
    non_finite.resize(size_t(panels));
  }
};
Packed& workspace(int which) {
  static thread_local Packed buffers[2];
  return buffers[which];
}

// The exponent an operand aligns by under tcexp=operands (operand_exponent_sum's halves): its own, subnormals at
// the format's emin; -inf for zero, so that a zero product never sets the alignment.
float alignment_exponent(float x, int emin) { return x == 0 ? -INFINITY : float(std::max(std::ilogb(x), emin)); }

// Packs A's row panels: panel ip holds rows ip*MR.. t-major, rows past m zero (exponent -inf). Its sizes are copied
// into the call: the loop keeps them in registers, where the char store of the flag would otherwise make the
// compiler reload whatever it could alias.
template <int MR>
struct PackA {
  const float* a;
  int m, k, emin;
  bool with_exps;
  Packed* p;
  PackA(const float* a_, int m_, int k_, const int* emin_) : a(a_), m(m_), k(k_), emin(emin_ ? *emin_ : INT_MIN),
      with_exps(emin_ != nullptr), p(&workspace(0)) {
    p->reset(size_t(panels()) * k * MR, panels(), with_exps);
  }
  int panels() const { return (m + MR - 1) / MR; }
  void operator()(int ip) const {
    panel(a, m, k, ip, emin, with_exps, p->data.data(), p->exps.data(), p->non_finite.data());
  }
  static void panel(const float* a, int m, int k, int ip, int emin, bool with_exps, float* data, float* exps,
                    char* non_finite) {
    bool finite = true;
    for (int r = 0; r < MR; ++r) {
      const bool live = ip * MR + r < m;
      for (int t = 0; t < k; ++t) {
        const float x = live ? a[size_t(ip * MR + r) * k + t] : 0.0f;
        const size_t at = (size_t(ip) * k + t) * MR + r;
        data[at] = x;
        if (with_exps) exps[at] = alignment_exponent(x, emin);
        finite &= std::isfinite(x);
      }
    }
    non_finite[ip] = !finite;
  }
};

// Packs B's column panels of nr columns: rows of a panel are contiguous in B and copied whole (vectorised, no
// branch per element); columns past n zero.
struct PackB {
  const float* b;
  int k, n, emin;
  bool with_exps;
  Packed* p;
  PackB(const float* b_, int k_, int n_, const int* emin_) : b(b_), k(k_), n(n_), emin(emin_ ? *emin_ : INT_MIN),
      with_exps(emin_ != nullptr), p(&workspace(1)) {
    p->reset(size_t(panels()) * k * nr, panels(), with_exps);
  }
  int panels() const { return (n + nr - 1) / nr; }
  void operator()(int jp) const {
    panel(b, k, n, jp, emin, with_exps, p->data.data(), p->exps.data(), p->non_finite.data());
  }
  static void panel(const float* b, int k, int n, int jp, int emin, bool with_exps, float* data, float* exps,
                    char* non_finite) {
    const int cols = std::min(nr, n - jp * nr);
    bool finite = true;
    for (int t = 0; t < k; ++t) {
      const float* src = b + size_t(t) * n + size_t(jp) * nr;
      float* dst = data + (size_t(jp) * k + t) * nr;
      for (int c = 0; c < cols; ++c) {
        dst[c] = src[c];
        finite &= std::isfinite(src[c]);
      }
      for (int c = cols; c < nr; ++c) dst[c] = 0.0f;
      if (with_exps)
        for (int c = 0; c < nr; ++c) exps[(size_t(jp) * k + t) * nr + c] = alignment_exponent(dst[c], emin);
    }
    non_finite[jp] = !finite;
  }
};

// Packs A (and B, unless b is null: read in place), then runs body(ip, jp) over every tile; tiles are independent,
// so any schedule gives the same bits. Both in one parallel region: the packing's barrier costs less than a region
// of its own, and small operands packed on the calling thread were the largest serial part of a two-thread
// Tiny-ViT forward (8% of its time). A thread takes a group of up to 8 row panels (at most ~200 KB of packed A,
// kept in L2) and sweeps every column panel over it, so A is read from memory once and each 64 KB B panel serves
// the whole group. Inside a region already (attention's heads), all of it runs on the calling thread.
template <int MR, class Body>
void packed_tiles(const PackA<MR>& a, const PackB* b, int n_panels, Body body) {
  const int m_panels = a.panels(), packs = m_panels + (b ? b->panels() : 0);
  const int group = std::clamp(m_panels / (2 * omp_get_max_threads()), 1, 8);
  const int groups = (m_panels + group - 1) / group;
  const std::int64_t tiles = std::int64_t(groups) * n_panels;
  auto pack = [&](int i) {
    if (i < m_panels) a(i);
    else (*b)(i - m_panels);
  };
  auto tile = [&](std::int64_t t) {  // a (group, column panel) pair
    const int g = int(t / n_panels), jp = int(t % n_panels);
    for (int ip = g * group; ip < std::min(m_panels, (g + 1) * group); ++ip) body(ip, jp);
  };
  if (open_region(true)) {
#pragma omp parallel
    {
#pragma omp for schedule(static)
      for (int i = 0; i < packs; ++i) pack(i);
#pragma omp for schedule(static)
      for (std::int64_t t = 0; t < tiles; ++t) tile(t);
    }
  } else {
    for (int i = 0; i < packs; ++i) pack(i);
    for (std::int64_t t = 0; t < tiles; ++t) tile(t);
  }
}

// The lanes of a tile's two vectors that hold columns inside the matrix (cols of the 32).
struct ColumnMasks {
  __mmask16 half[2];
  explicit ColumnMasks(int cols)
      : half{cols >= 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1),
             cols >= 32 ? __mmask16(0xffff) : cols <= 16 ? __mmask16(0) : __mmask16((1u << (cols - 16)) - 1)} {}
};

// Stores rows x cols of an MR x 32 tile held as vectors.
template <int MR>
void store_tile(const __m512 (&v)[MR][2], float* c, int n, int rows, int cols) {
  const ColumnMasks live(cols);
  for (int r = 0; r < MR; ++r) {
    if (r >= rows) break;
    _mm512_mask_storeu_ps(c + size_t(r) * n, live.half[0], v[r][0]);
    _mm512_mask_storeu_ps(c + size_t(r) * n + 16, live.half[1], v[r][1]);
  }
}

// Takes a tile's k-block partial sums into its totals: the block-scaled promotion (BlockScales), or with none the
// policy's own combination of chunk sums (`combine`; the first chunk's sum is the total).
template <int MR, class Combine>
[[gnu::always_inline]] inline void take_chunk(const BlockScales* scales, int chunk, int row0, int col0, bool first,
                                              const __m512 (&part)[MR][2], __m512 (&total)[MR][2], Combine combine) {
  if (!scales) {
    for (int r = 0; r < MR; ++r)
      for (int h = 0; h < 2; ++h) total[r][h] = first ? part[r][h] : combine(total[r][h], part[r][h]);
    return;
  }
  const float* sb = scales->b + size_t(chunk) * scales->ldb + col0;
  const __m512 b0 = _mm512_loadu_ps(sb), b1 = _mm512_loadu_ps(sb + 16);
  for (int r = 0; r < MR; ++r) {
    const __m512 a = _mm512_set1_ps(scales->a[size_t(row0 + r) * scales->blocks + chunk]);
    const __m512 s0 = _mm512_mul_round_ps(a, b0, _MM_FROUND_TO_NEAREST_INT | no_exc);  // fp32(sa sb): one rounding
    const __m512 s1 = _mm512_mul_round_ps(a, b1, _MM_FROUND_TO_NEAREST_INT | no_exc);
    const __m512 c0 = first ? _mm512_setzero_ps() : total[r][0], c1 = first ? _mm512_setzero_ps() : total[r][1];
    total[r][0] = _mm512_fmadd_round_ps(part[r][0], s0, c0, _MM_FROUND_TO_NEAREST_INT | no_exc);
    total[r][1] = _mm512_fmadd_round_ps(part[r][1], s1, c1, _MM_FROUND_TO_NEAREST_INT | no_exc);
  }
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
void step_gemm(const AccumPolicy& p, int m, int n, int k, const float* a, const float* b, float* c,
               const BlockScales* scales) {
  // When whole 32-column panels tile B, its rows are read in place (row stride n): packing B would copy it once
  // per product, which costs more than the product itself for the small matrices of a transformer layer.
  const bool direct = n % nr == 0;
  const PackA<MR> pa(a, m, k, nullptr);
  const std::optional<PackB> pb = direct ? std::nullopt : std::optional<PackB>(std::in_place, b, k, n, nullptr);
  const Packed& ap = *pa.p;
  const std::size_t ldb = direct ? std::size_t(n) : std::size_t(nr);
  const int len = scales ? scales->block : p.chunk_length(k);
  packed_tiles(pa, pb ? &*pb : nullptr, (n + nr - 1) / nr, [&](int ip, int jp) {
    const float* at = ap.data.data() + size_t(ip) * k * MR;
    const float* bt = direct ? b + size_t(jp) * nr : pb->p->data.data() + size_t(jp) * k * nr;
    __m512 total[MR][2], part[MR][2];
    for (int first = 0; first < k; first += len) {
      run_chunk<MR, Step>(at, bt, ldb, first, std::min(k, first + len), part);
      take_chunk<MR>(scales, first / len, ip * MR, jp * nr, first == 0, part, total, Step::combine);
    }
    store_tile<MR>(total, c + size_t(ip) * MR * n + size_t(jp) * nr, n, std::min(MR, m - ip * MR),
                   std::min(nr, n - jp * nr));
  });
}

// ---- the tensor-core model ----

// One fused step per lane: products of float operands of <= 12 bits are exact floats; each term is scaled by the
// step's quantum and cut to an int32 lane; odd and even terms go to two accumulators (17 terms of up to 2^27 would
// overflow one); the exact sum is rescaled in double and rounded once. The alignment exponent is the largest
// term's (value) or the largest sum of operand exponents, from exponent panels packed beside the operands
// (AlignOperands). A tensor-core accumulator narrower than binary32 (tcacc, toward zero only) clears the fraction
// bits it drops from the binary32 result truncated toward zero, which is the same truncation.
template <int R, bool Truncate, bool AlignOperands>
struct TensorCore {
  static constexpr int mr = 4;
  const DotPolicy* dot;     // the portable step's policy, for lanes outside the fast range
  int bits;
  std::uint32_t acc_mask;   // all ones without a narrower tcacc
  int group;                // pairs of terms the int32 accumulators take before they are widened to double

  // s = TC(s, products of terms idx[0..m)) for mr rows x 32 columns. ae/be: the operands' alignment exponents;
  // rows and live: the tile's rows and lanes inside the matrix (padding never takes the portable step).
  template <class Terms>
  [[gnu::always_inline]] inline void step(const float* ap, const float* bp, const float* ae, const float* be,
                                          Terms idx, int m, int rows, const __mmask16 (&live)[2],
                                          __m512 (&s)[mr][2]) const {
    __m512 top[mr][2];
    if constexpr (AlignOperands) {
      for (int r = 0; r < mr; ++r)
        for (int h = 0; h < 2; ++h) top[r][h] = _mm512_getexp_ps(s[r][h]);  // -inf for a zero c
      for (int i = 0; i < m; ++i) {
        const size_t t = size_t(idx[i]);
        const __m512 e0 = _mm512_loadu_ps(be + t * nr), e1 = _mm512_loadu_ps(be + t * nr + 16);
#pragma GCC unroll 4
        for (int r = 0; r < mr; ++r) {
          const __m512 e = _mm512_set1_ps(ae[t * mr + r]);
          top[r][0] = _mm512_max_ps(_mm512_add_ps(e, e0), top[r][0]);  // a NaN c's exponent stays (second operand)
          top[r][1] = _mm512_max_ps(_mm512_add_ps(e, e1), top[r][1]);
        }
      }
    } else {
      __m512 big[mr][2];
      for (int r = 0; r < mr; ++r)
        for (int h = 0; h < 2; ++h) big[r][h] = _mm512_abs_ps(s[r][h]);
      for (int i = 0; i < m; ++i) {
        const size_t t = size_t(idx[i]);
        const __m512 b0 = _mm512_loadu_ps(bp + t * nr), b1 = _mm512_loadu_ps(bp + t * nr + 16);
#pragma GCC unroll 4
        for (int r = 0; r < mr; ++r) {
          const __m512 a = _mm512_set1_ps(ap[t * mr + r]);
          big[r][0] = _mm512_range_ps(big[r][0], _mm512_mul_ps(a, b0), 0x0b);  // larger magnitude, NaN kept
          big[r][1] = _mm512_range_ps(big[r][1], _mm512_mul_ps(a, b1), 0x0b);
        }
      }
      for (int r = 0; r < mr; ++r)
        for (int h = 0; h < 2; ++h) top[r][h] = _mm512_getexp_ps(big[r][h]);
    }
    __m512 neg_quantum[mr][2], scale[mr][2];  // scale = 2^-quantum: a multiply is cheaper than scalef here
    __m512i even[mr][2], odd[mr][2];
    const __m512 shift = _mm512_set1_ps(float(bits - 1));
    for (int r = 0; r < mr; ++r)
      for (int h = 0; h < 2; ++h) {
        neg_quantum[r][h] = _mm512_sub_ps(shift, top[r][h]);  // -(top - bits + 1)
        scale[r][h] = _mm512_scalef_ps(_mm512_set1_ps(1.0f), neg_quantum[r][h]);  // normal in the fast range
        even[r][h] = cut(_mm512_scalef_ps(s[r][h], neg_quantum[r][h]));
        odd[r][h] = _mm512_setzero_si512();
      }
    // Steps longer than two accumulators hold (b200's 32 fp8 products at 26 bits) widen them to double sums
    // between groups of terms; the usual step is one group.
    alignas(64) double spill[mr][2][16];
    bool spilled = false;
    for (int i = 0;;) {
      const int group_end = std::min(m, i + 2 * group);
      for (; i + 1 < group_end; i += 2) {
        const size_t t = size_t(idx[i]), u = size_t(idx[i + 1]);
        const __m512 b0 = _mm512_loadu_ps(bp + t * nr), b1 = _mm512_loadu_ps(bp + t * nr + 16);
        const __m512 d0 = _mm512_loadu_ps(bp + u * nr), d1 = _mm512_loadu_ps(bp + u * nr + 16);
#pragma GCC unroll 4
        for (int r = 0; r < mr; ++r) {
          const __m512 a = _mm512_set1_ps(ap[t * mr + r]), c = _mm512_set1_ps(ap[u * mr + r]);
          even[r][0] = _mm512_add_epi32(even[r][0], cut(_mm512_mul_ps(_mm512_mul_ps(a, b0), scale[r][0])));
          even[r][1] = _mm512_add_epi32(even[r][1], cut(_mm512_mul_ps(_mm512_mul_ps(a, b1), scale[r][1])));
          odd[r][0] = _mm512_add_epi32(odd[r][0], cut(_mm512_mul_ps(_mm512_mul_ps(c, d0), scale[r][0])));
          odd[r][1] = _mm512_add_epi32(odd[r][1], cut(_mm512_mul_ps(_mm512_mul_ps(c, d1), scale[r][1])));
        }
      }
      if (i < group_end) {  // an odd term count: the last term (the group is the step's last)
        const size_t t = size_t(idx[i++]);
        const __m512 b0 = _mm512_loadu_ps(bp + t * nr), b1 = _mm512_loadu_ps(bp + t * nr + 16);
        for (int r = 0; r < mr; ++r) {
          const __m512 a = _mm512_set1_ps(ap[t * mr + r]);
          odd[r][0] = _mm512_add_epi32(odd[r][0], cut(_mm512_mul_ps(_mm512_mul_ps(a, b0), scale[r][0])));
          odd[r][1] = _mm512_add_epi32(odd[r][1], cut(_mm512_mul_ps(_mm512_mul_ps(a, b1), scale[r][1])));
        }
      }
      if (i >= m) break;
      for (int r = 0; r < mr; ++r)
        for (int h = 0; h < 2; ++h) {
          widen_into(spill[r][h], even[r][h], odd[r][h], spilled);
          even[r][h] = odd[r][h] = _mm512_setzero_si512();
        }
      spilled = true;
    }
    // The fast range: no product overflows float, and products that underflow it lie below half a quantum.
    // Outside it (all-zero terms, an infinite or NaN c, extreme exponents) the portable step takes the lane.
    const __m512 lowest = _mm512_set1_ps(float(bits - 125)), highest = _mm512_set1_ps(125.0f);
    for (int r = 0; r < mr; ++r)
      for (int h = 0; h < 2; ++h) {
        const __m512 old = s[r][h];
        s[r][h] = normalise(even[r][h], odd[r][h], neg_quantum[r][h], spilled ? spill[r][h] : nullptr);
        const __mmask16 fast = _mm512_cmp_ps_mask(top[r][h], lowest, _CMP_GE_OQ) &
                               _mm512_cmp_ps_mask(top[r][h], highest, _CMP_LE_OQ);
        const __mmask16 slow = __mmask16(~fast & live[h]);
        if (r < rows && slow) s[r][h] = exact_lanes(slow, old, s[r][h], ap, bp, idx, m, r, h);
      }
  }

  static __m512i cut(__m512 x) {
    if constexpr (Truncate) return _mm512_cvtt_roundps_epi32(x, no_exc);
    else return _mm512_cvt_roundps_epi32(x, _MM_FROUND_TO_NEAREST_INT | no_exc);
  }

  // even + odd as 16 exact integer doubles (lanes 0-7 in lo).
  static void int_sum(__m512i even, __m512i odd, __m512d& lo, __m512d& hi) {
    lo = _mm512_add_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(even)), _mm512_cvtepi32_pd(_mm512_castsi512_si256(odd)));
    hi = _mm512_add_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(even, 1)),
                       _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(odd, 1)));
  }

  // spill (+)= even + odd.
  static void widen_into(double* spill, __m512i even, __m512i odd, bool add) {
    __m512d lo, hi;
    int_sum(even, odd, lo, hi);
    if (add) {
      lo = _mm512_add_pd(lo, _mm512_load_pd(spill));
      hi = _mm512_add_pd(hi, _mm512_load_pd(spill + 8));
    }
    _mm512_store_pd(spill, lo);
    _mm512_store_pd(spill + 8, hi);
  }

  // (even + odd [+ spill]) * 2^quantum (exact in double) rounded once to binary32, then to the tensor-core
  // accumulator.
  __m512 normalise(__m512i even, __m512i odd, __m512 neg_quantum, const double* spill) const {
    const __m512d q_lo = _mm512_sub_pd(_mm512_setzero_pd(), _mm512_cvtps_pd(_mm512_castps512_ps256(neg_quantum)));
    const __m512d q_hi = _mm512_sub_pd(
        _mm512_setzero_pd(), _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(neg_quantum), 1))));
    __m512d lo, hi;
    int_sum(even, odd, lo, hi);
    if (spill) {
      lo = _mm512_add_pd(lo, _mm512_load_pd(spill));
      hi = _mm512_add_pd(hi, _mm512_load_pd(spill + 8));
    }
    const __m256 flo = _mm512_cvt_roundpd_ps(_mm512_scalef_pd(lo, q_lo), R | no_exc);
    const __m256 fhi = _mm512_cvt_roundpd_ps(_mm512_scalef_pd(hi, q_hi), R | no_exc);
    const __m512 f = _mm512_insertf32x8(_mm512_castps256_ps512(flo), fhi, 1);
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(f), _mm512_set1_epi32(int(acc_mask))));
  }

  // Tiles whose operands hold inf or NaN: every lane by the portable step (products may be NaN, which the fast
  // range check cannot see).
  template <class Terms>
  void exact_step(const float* ap, const float* bp, Terms idx, int m, __m512 (&s)[mr][2]) const {
    for (int r = 0; r < mr; ++r)
      for (int h = 0; h < 2; ++h) s[r][h] = exact_lanes(0xffff, s[r][h], s[r][h], ap, bp, idx, m, r, h);
  }

  // Lanes outside the fast range, computed by the portable step (rare).
  template <class Terms>
  __m512 exact_lanes(__mmask16 lanes, __m512 old, __m512 fast, const float* ap, const float* bp, Terms idx, int m,
                     int r, int h) const {
    alignas(64) float c_in[16], out[16];
    _mm512_store_ps(c_in, old);
    _mm512_store_ps(out, fast);
    for (int l = 0; l < 16; ++l) {
      if (!((lanes >> l) & 1)) continue;
      double terms[65];
      int exps[65];
      int n = 0;
      exps[n] = c_in[l] != 0 ? kmath::exponent(double(c_in[l])) : INT_MIN;
      terms[n++] = c_in[l];
      for (int i = 0; i < m; ++i) {
        const double a = ap[size_t(idx[i]) * mr + r], b = bp[size_t(idx[i]) * nr + h * 16 + l];
        exps[n] = operand_exponent_sum(a, b, dot->tc_operand_emin);
        terms[n++] = a * b;
      }
      out[l] = float(tensor_core_step(terms, n, *dot, 0, AlignOperands ? exps : nullptr));
    }
    return _mm512_load_ps(out);
  }
};

// The terms of one step: consecutive from `first`, or dealt (tensor_step_terms's list, relative to the chunk).
struct Consecutive {
  int first;
  int operator[](int i) const { return first + i; }
};
struct Dealt {
  const int* offsets;
  int first;
  int operator[](int i) const { return first + offsets[i]; }
};

// tensor_step_terms for a chunk of `len` terms, once per product instead of once per tile and step.
struct DealTable {
  std::vector<int> offsets, start, count;
  DealTable(const AccumPolicy& p, int len) {
    int idx[64];
    for (int step = 0; step * p.tc.k < len; ++step) {
      const int n = tensor_step_terms(p, 0, len, step, idx);
      start.push_back(int(offsets.size()));
      count.push_back(n);
      offsets.insert(offsets.end(), idx, idx + n);
    }
  }
};

// Pairs of products the two int32 accumulators take before they widen: each holds `pairs` cut products of at most
// 2^bits (value alignment) or 2^(bits+1) (operands: significand products in [1, 4)) and c's cut (at most 2^bits),
// below 2^31. 0: the model keeps too many bits for int32 lanes.
int tc_pairs_per_group(const AccumPolicy& p) {
  if (p.tc.bits >= 30) return 0;
  const int room = 1 << (31 - p.tc.bits);
  return (room - 2) / (p.tc.align_operands ? 2 : 1);
}

template <int R, bool Truncate, bool AlignOperands, int CombineR>
void tensor_core_gemm(const AccumPolicy& p, int m, int n, int k, const float* a, const float* b, float* c,
                      const BlockScales* scales) {
  using TC = TensorCore<R, Truncate, AlignOperands>;
  constexpr int mr = TC::mr;
  const DotPolicy dot = make_dot_policy(p);
  const TC tc{&dot, p.tc.bits, tensor_core_acc_mask(p), tc_pairs_per_group(p)};
  const int emin = tensor_core_operand_emin(p);
  const PackA<mr> pa(a, m, k, AlignOperands ? &emin : nullptr);
  const PackB pb(b, k, n, AlignOperands ? &emin : nullptr);
  const Packed &ap = *pa.p, &bp = *pb.p;
  const int len = scales ? scales->block : p.chunk_length(k);
  const DealTable full(p, p.tc.deal ? len : 0), last(p, p.tc.deal ? k - (k - 1) / len * len : 0);
  packed_tiles(pa, &pb, pb.panels(), [&](int ip, int jp) {
    const float* at = ap.data.data() + size_t(ip) * k * mr;
    const float* bt = bp.data.data() + size_t(jp) * k * nr;
    const float* ae = AlignOperands ? ap.exps.data() + size_t(ip) * k * mr : nullptr;
    const float* be = AlignOperands ? bp.exps.data() + size_t(jp) * k * nr : nullptr;
    const bool non_finite = ap.non_finite[ip] || bp.non_finite[jp];
    const int rows = std::min(mr, m - ip * mr), cols = std::min(nr, n - jp * nr);
    const ColumnMasks live(cols);
    __m512 total[mr][2], part[mr][2];
    for (int first = 0; first < k; first += len) {
      const int end = std::min(k, first + len);
      for (int r = 0; r < mr; ++r) part[r][0] = part[r][1] = _mm512_setzero_ps();
      for (int step = 0; first + step * p.tc.k < end; ++step) {
        if (p.tc.deal == 0) {
          const Consecutive terms{first + step * p.tc.k};
          const int count = std::min(end - terms.first, p.tc.k);
          if (non_finite) tc.exact_step(at, bt, terms, count, part);
          else tc.step(at, bt, ae, be, terms, count, rows, live.half, part);
        } else {
          const DealTable& table = end - first == len ? full : last;
          const Dealt terms{table.offsets.data() + table.start[step], first};
          if (non_finite) tc.exact_step(at, bt, terms, table.count[step], part);
          else tc.step(at, bt, ae, be, terms, table.count[step], rows, live.half, part);
        }
      }
      take_chunk<mr>(scales, first / len, ip * mr, jp * nr, first == 0, part, total,
                     [](__m512 x, __m512 y) { return _mm512_add_round_ps(x, y, CombineR | no_exc); });
    }
    store_tile<mr>(total, c + size_t(ip) * mr * n + size_t(jp) * nr, n, rows, cols);
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
    // Products of <= 12-bit operands are exact floats inside the fast range (see TensorCore::step); cut terms are
    // summed in int32 lanes (tc_pairs_per_group).
    const bool exact_float_products = 2 * p.input.spec.precision <= 24;
    if (exact_float_products && tc_pairs_per_group(p) > 0 && tensor_core_acc_mask(p) != 0 && is(p.acc, formats::fp32) &&
        ieee_rounding(p.tc.rounding) >= 0 && ieee_rounding(p.acc_rounding) >= 0)
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

void fast_gemm(const AccumPolicy& p, GemmPath path, int m, int n, int k, const float* a, const float* b, float* c,
               const BlockScales* scales) {
  if (k == 0) {  // an empty sum is +0 whatever the kernel
    std::fill(c, c + size_t(m) * n, 0.0f);
    return;
  }
  const bool fused = p.fma || !p.product;
  if (path == GemmPath::fp32_fma) {
    with_ieee_rounding(p.acc_rounding, [&]<int R>() {
      if (fused) step_gemm<12, Fp32Fma<R>>(p, m, n, k, a, b, c, scales);
      else step_gemm<12, Fp32MulAdd<R>>(p, m, n, k, a, b, c, scales);
    });
  } else if (path == GemmPath::rounded_acc) {
    if (is(p.acc, formats::bf16)) {
      if (fused) step_gemm<8, NarrowAcc<Bf16Rne, true>>(p, m, n, k, a, b, c, scales);
      else step_gemm<8, NarrowAcc<Bf16Rne, false>>(p, m, n, k, a, b, c, scales);
    } else {
      with_ieee_rounding(p.acc_rounding, [&]<int R>() {
        if (fused) step_gemm<8, NarrowAcc<Fp16Round<R>, true>>(p, m, n, k, a, b, c, scales);
        else step_gemm<8, NarrowAcc<Fp16Round<R>, false>>(p, m, n, k, a, b, c, scales);
      });
    }
  } else if (path == GemmPath::tensor_core) {
    with_ieee_rounding(p.tc.rounding, [&]<int R>() {
      with_ieee_rounding(p.acc_rounding, [&]<int CR>() {
        if (p.tc.align_operands) {
          if (p.tc.align_truncates) tensor_core_gemm<R, true, true, CR>(p, m, n, k, a, b, c, scales);
          else tensor_core_gemm<R, false, true, CR>(p, m, n, k, a, b, c, scales);
        } else {
          if (p.tc.align_truncates) tensor_core_gemm<R, true, false, CR>(p, m, n, k, a, b, c, scales);
          else tensor_core_gemm<R, false, false, CR>(p, m, n, k, a, b, c, scales);
        }
      });
    });
  }
}

}  // namespace lpsim::accum
