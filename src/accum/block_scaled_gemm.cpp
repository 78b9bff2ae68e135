// The block-scaled matrix product (block_scale.hpp): partial sums per k-block under the policy, then promotion in
// fp32 with the two scales. The fast path uses the policy's kernels; the reference does every step in MPFR.
#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "fast_kernels.hpp"
#include "lpsim/accum/dot_reference.hpp"
#include "lpsim/accum/gemm.hpp"
#include "lpsim/accum/block_scaled_gemm.hpp"
#include "lpsim/format/block_scale.hpp"
#include "lpsim/format/mpfr_round.hpp"

namespace lpsim {

namespace {

// The k-block length both operands share, checked; the policy with its result left in the accumulator.
int check_operands(const AccumPolicy& policy, const BlockQuantized& a, const BlockQuantized& b) {
  if (a.axis != 1 || b.axis != 0)
    throw std::invalid_argument("block_scaled_gemm: A must be quantised along its rows and B along its columns");
  if (a.cols != b.rows)
    throw std::invalid_argument(fmt::format("block_scaled_gemm: A is {} x {}, B is {} x {}", a.rows, a.cols, b.rows, b.cols));
  if (a.step_cols != b.step_rows)
    throw std::invalid_argument(fmt::format("block_scaled_gemm: the operands' blocks along k differ ({} and {})",
                                            a.step_cols, b.step_rows));
  if (!policy.acc) throw PolicyError("acc: block-scaled products keep each partial sum in an accumulator; acc=exact has none");
  return a.step_cols;
}

AccumPolicy partial_policy(const AccumPolicy& p) {
  AccumPolicy q = p;
  q.output = *p.acc;
  q.output_rounding = p.acc_rounding;
  return q;
}

// The product on the AVX-512 kernels with the promotion fused into them (fast_kernels.hpp's BlockScales): one
// pass over k instead of a matrix product and a promotion pass per k-block. False where they do not run the
// policy. Scales and elements are floats (e8m0, e4m3 and fp32 scales; elements of formats binary32 holds).
// The buffers are reused per calling thread: fresh pages for every product cost more than the product (measured:
// page faults were half the time of a 512^3 MXFP8 product).
bool fused_block_scaled(const AccumPolicy& p, const BlockQuantized& a, const BlockQuantized& b, int kb,
                        std::vector<float>& acc) {
  const GemmPath path = gemm_path(p, Isa::best, true);
  if (p.order != Order::sequential || path == GemmPath::generic || path == GemmPath::reference) return false;
  const int m = a.rows, n = b.cols, k = a.cols, blocks = (k + kb - 1) / kb;
  static thread_local std::vector<float> af, bf, sa, sb;
  af.assign(a.elements.begin(), a.elements.end());
  bf.assign(b.elements.begin(), b.elements.end());
  const std::size_t ldb = std::size_t(n + 31) / 32 * 32;
  sa.assign(std::size_t(m + 16) * blocks, 0.0f);
  sb.assign(std::size_t(blocks) * ldb, 0.0f);
  for (int i = 0; i < m; ++i)
    for (int c = 0; c < blocks; ++c) sa[std::size_t(i) * blocks + c] = float(a.scales[a.block_of(i, c * kb)]);
  for (int c = 0; c < blocks; ++c)
    for (int j = 0; j < n; ++j) sb[std::size_t(c) * ldb + j] = float(b.scales[b.block_of(c * kb, j)]);
  const accum::BlockScales scales{kb, blocks, sa.data(), sb.data(), ldb};
  accum::fast_gemm(p, path, m, n, k, af.data(), bf.data(), acc.data(), &scales);
  return true;
}

// The per-tensor factor of Transformer Engine's NVFP4 GEMM: fp32(fp32(A_a A_b) / (2688 * 2688)), the amaxes'
// product over the product of the two encode ranges (an operand without a tensor scale contributes 1 / 1).
float tensor_factor(const BlockQuantized& a, const BlockQuantized& b) {
  const float num = float(a.tensor_decode_numerator() * b.tensor_decode_numerator());
  return num / float(a.tensor_decode_denominator() * b.tensor_decode_denominator());
}

// int8-rowwise operands (one block over all of k) pair only with each other: vLLM's scaled_mm epilogue.
bool scaled_mm_operands(const BlockQuantized& a, const BlockQuantized& b, int kb) {
  if (!a.scaled_mm && !b.scaled_mm) return false;
  if (!a.scaled_mm || !b.scaled_mm || kb != a.cols)
    throw std::invalid_argument("block_scaled_gemm: an int8-rowwise operand pairs only with another (one scale per "
                                "row of A and column of B over all of k)");
  return true;
}

}  // namespace

std::vector<double> block_scaled_gemm(const AccumPolicy& policy, const BlockQuantized& a, const BlockQuantized& b,
                                      GemmDevice* device) {
  const int kb = check_operands(policy, a, b), m = a.rows, n = b.cols, k = a.cols;
  if (scaled_mm_operands(a, b, kb)) {  // D = fp32(s_a * fp32(s_b * fp32(A B))): the int32 sum converted once
    std::vector<double> out(std::size_t(m) * n);
    GemmOptions options;
    options.device = device;
    gemm(partial_policy(policy), m, n, k, a.elements, b.elements, out, options);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double& c = out[std::size_t(i) * n + j];
        c = double(float(a.scales[i]) * (float(b.scales[j]) * float(c)));
      }
    return out;
  }
  const AccumPolicy p = partial_policy(policy);
  static thread_local std::vector<float> acc;
  acc.assign(std::size_t(m) * n, 0.0f);
  const bool fused = !device && fused_block_scaled(p, a, b, kb, acc);
  std::vector<double> as, bs, partial(fused ? 0 : std::size_t(m) * n);
  for (int first = 0; first < k && !fused; first += kb) {
    const int len = std::min(kb, k - first);
    as.resize(std::size_t(m) * len), bs.resize(std::size_t(len) * n);
    for (int i = 0; i < m; ++i)
      for (int t = 0; t < len; ++t) as[std::size_t(i) * len + t] = a.elements[std::size_t(i) * k + first + t];
    for (int t = 0; t < len; ++t)
      for (int j = 0; j < n; ++j) bs[std::size_t(t) * n + j] = b.elements[std::size_t(first + t) * n + j];
    GemmOptions options;
    options.device = device;
    gemm(p, m, n, len, as, bs, partial, options);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        const float s = float(a.scales[a.block_of(i, first)] * b.scales[b.block_of(first, j)]);  // one rounding
        float& c = acc[std::size_t(i) * n + j];
        c = std::fma(float(partial[std::size_t(i) * n + j]), s, c);  // one rounding of the exact p s + c
      }
  }
  std::vector<double> out(acc.begin(), acc.end());
  if (a.tensor_scaled || b.tensor_scaled) {
    const float alpha = tensor_factor(a, b);
    for (double& v : out) v = double(float(v) * alpha);
  }
  return out;
}

std::vector<double> reference_block_scaled_gemm(const AccumPolicy& policy, const BlockQuantized& a,
                                                const BlockQuantized& b) {
  const int kb = check_operands(policy, a, b), m = a.rows, n = b.cols, k = a.cols;
  const AccumPolicy p = partial_policy(policy);
  std::vector<double> out(std::size_t(m) * n);
  Mpfr x(256), y(256);
  auto to_fp32 = [&](mpfr_ptr v) { return mpfr_round_to_format(v, formats::fp32, Rounding::nearest_even); };
  if (scaled_mm_operands(a, b, kb)) {
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        std::vector<double> row(a.elements.begin() + std::ptrdiff_t(i) * k, a.elements.begin() + std::ptrdiff_t(i + 1) * k),
            column(k);
        for (int t = 0; t < k; ++t) column[t] = b.elements[std::size_t(t) * n + j];
        mpfr_set_d(y, reference_dot(p, row, column), MPFR_RNDN);
        mpfr_set_d(y, to_fp32(y), MPFR_RNDN);  // the int32 sum converted to float
        mpfr_mul_d(y, y, b.scales[j], MPFR_RNDN);
        mpfr_set_d(y, to_fp32(y), MPFR_RNDN);
        mpfr_mul_d(y, y, a.scales[i], MPFR_RNDN);
        out[std::size_t(i) * n + j] = to_fp32(y);
      }
    return out;
  }
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double acc = 0;
      for (int first = 0; first < k; first += kb) {
        const int len = std::min(kb, k - first);
        std::vector<double> row(len), column(len);
        for (int t = 0; t < len; ++t)
          row[t] = a.elements[std::size_t(i) * k + first + t], column[t] = b.elements[std::size_t(first + t) * n + j];
        const double part = reference_dot(p, row, column);
        mpfr_set_d(x, a.scales[a.block_of(i, first)], MPFR_RNDN);
        mpfr_mul_d(x, x, b.scales[b.block_of(first, j)], MPFR_RNDN);  // exact at 256 bits
        const double s = to_fp32(x);
        mpfr_set_d(y, part, MPFR_RNDN);
        mpfr_mul_d(y, y, s, MPFR_RNDN);
        mpfr_add_d(y, y, acc, MPFR_RNDN);  // exact unless 2^200 apart, where the rounding to fp32 is the same
        acc = to_fp32(y);
      }
      if (a.tensor_scaled || b.tensor_scaled) {
        mpfr_set_d(x, a.tensor_decode_numerator(), MPFR_RNDN);
        mpfr_mul_d(x, x, b.tensor_decode_numerator(), MPFR_RNDN);
        const double num = to_fp32(x);
        mpfr_set_d(x, num, MPFR_RNDN);
        mpfr_div_d(x, x, a.tensor_decode_denominator() * b.tensor_decode_denominator(), MPFR_RNDN);  // 2688^2 exact
        const double alpha = to_fp32(x);  // correctly rounded: MPFR's division at 256 bits, then once to fp32
        mpfr_set_d(y, acc, MPFR_RNDN);
        mpfr_mul_d(y, y, alpha, MPFR_RNDN);
        acc = to_fp32(y);
      }
      out[std::size_t(i) * n + j] = acc;
    }
  return out;
}

}  // namespace lpsim
