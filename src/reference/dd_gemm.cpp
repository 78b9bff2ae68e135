// The double-double GEMM: Dot2 (Ogita, Rump and Oishi 2005) with a double-double left operand. Per product
// a_hi b_hi = p + pe exactly (fma); p joins the running sum s by TwoSum, whose error e, pe and the low-part
// products a_lo b_hi + a_hi b_lo go into a second accumulator c. The result s + c carries the error of a dot
// product in twice the working precision: about k u^2 sum |a b| (u = 2^-53), i.e. about 95 bits at k = 4096.
// Tiles of 4 rows x 16 columns over packed panels of 256 products keep s and c in registers; every entry is still
// summed in index order, so the bits do not depend on threads.
#include <algorithm>
#include <cmath>
#include <vector>

#include "lpsim/reference/dd_backend.hpp"

namespace lpsim {

namespace {

constexpr int kCols = 16, kDepth = 256, kRows = 4;

template <int R, bool BLo>
[[gnu::always_inline]] inline void tile(int depth, const double* ah, const double* al, long lda, const double* bh,
                                        const double* bl, double* s, double* c, long ldc) {
  double S[R][kCols], C[R][kCols];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < kCols; ++j) S[r][j] = s[r * ldc + j], C[r][j] = c[r * ldc + j];
  for (int l = 0; l < depth; ++l) {
    const double* bp = bh + l * kCols;
    const double* blp = bl + l * kCols;
    for (int r = 0; r < R; ++r) {
      const double x = ah[r * lda + l], xl = al[r * lda + l];
      for (int j = 0; j < kCols; ++j) {
        const double b = bp[j];
        const double p = x * b;
        double low = std::fma(xl, b, std::fma(x, b, -p));
        if constexpr (BLo) low = std::fma(x, blp[j], low);
        const double t = S[r][j] + p, z = t - S[r][j];
        const double e = (S[r][j] - (t - z)) + (p - z);
        S[r][j] = t;
        C[r][j] += e + low;
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < kCols; ++j) s[r * ldc + j] = S[r][j], c[r * ldc + j] = C[r][j];
}

// One packed panel (depth x 16) against every row: the only function compiled per instruction set.
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void panel_rows(
    int m, int depth, const double* ah, const double* al, long lda, const double* bh, const double* bl, bool b_lo,
    double* s, double* c, long ldc) {
  int i = 0;
  for (; i + kRows <= m; i += kRows) {
    const long o = i * lda, q = i * ldc;
    if (b_lo) tile<kRows, true>(depth, ah + o, al + o, lda, bh, bl, s + q, c + q, ldc);
    else tile<kRows, false>(depth, ah + o, al + o, lda, bh, bl, s + q, c + q, ldc);
  }
  for (; i < m; ++i) {
    const long o = i * lda, q = i * ldc;
    if (b_lo) tile<1, true>(depth, ah + o, al + o, lda, bh, bl, s + q, c + q, ldc);
    else tile<1, false>(depth, ah + o, al + o, lda, bh, bl, s + q, c + q, ldc);
  }
}

// bh/bl: k x n row-major (bl may be null). Returns C = A B with (hi, lo) normalised by TwoSum.
Matrix<DD> gemm_split(const Matrix<DD>& a, int n, const double* bh, const double* bl, const std::vector<double>* bias) {
  const int m = a.rows, k = a.cols;
  const long lda = k;
  std::vector<double> ah(std::size_t(m) * k), al(ah.size());
  for (std::size_t i = 0; i < ah.size(); ++i) ah[i] = a.data[i].x[0], al[i] = a.data[i].x[1];
  const int blocks = (n + kCols - 1) / kCols;
  const long ldc = long(blocks) * kCols;
  std::vector<double> s(std::size_t(m) * ldc, 0.0), c(s.size(), 0.0);
#pragma omp parallel
  {
    std::vector<double> ph(std::size_t(kDepth) * kCols), pl(bl ? ph.size() : 0);
#pragma omp for schedule(dynamic)
    for (int jb = 0; jb < blocks; ++jb) {
      const int j0 = jb * kCols, width = std::min(kCols, n - j0);
      for (int l0 = 0; l0 < k; l0 += kDepth) {
        const int depth = std::min(kDepth, k - l0);
        for (int l = 0; l < depth; ++l)
          for (int j = 0; j < kCols; ++j) {
            const std::size_t src = std::size_t(l0 + l) * n + j0 + j;
            ph[l * kCols + j] = j < width ? bh[src] : 0.0;
            if (bl) pl[l * kCols + j] = j < width ? bl[src] : 0.0;
          }
        panel_rows(m, depth, ah.data() + l0, al.data() + l0, lda, ph.data(), bl ? pl.data() : ph.data(), bl != nullptr,
                   s.data() + j0, c.data() + j0, ldc);
      }
    }
  }
  Matrix<DD> out(m, n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      const double hi = s[i * ldc + j], lo = c[i * ldc + j];
      DD v = DD::add(hi, lo);  // TwoSum: s and c may overlap where the sum cancelled
      if (bias) v += (*bias)[j];
      out(i, j) = v;
    }
  return out;
}

}  // namespace

Matrix<DD> dd_gemm(const Matrix<DD>& a, const Matrix<double>& b, const std::vector<double>* bias) {
  return gemm_split(a, b.cols, b.data.data(), nullptr, bias);
}

Matrix<DD> dd_gemm(const Matrix<DD>& a, const Matrix<DD>& b, const std::vector<double>* bias) {
  std::vector<double> bh(b.size()), bl(b.size());
  for (std::size_t i = 0; i < b.size(); ++i) bh[i] = b.data[i].x[0], bl[i] = b.data[i].x[1];
  return gemm_split(a, b.cols, bh.data(), bl.data(), bias);
}

}  // namespace lpsim
