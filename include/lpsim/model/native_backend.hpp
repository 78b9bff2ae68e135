#pragma once
// The forward in a native scalar type, every operation in that type: float and double (GEMMs by Eigen, the
// baseline users compare with), and any other scalar with ordinary loops (dual numbers for Jacobian-vector
// products). Nothing is rounded beyond what the type's own arithmetic does.
#include <Eigen/Core>
#include <span>
#include <type_traits>
#include <vector>

#include "lpsim/model/matrix.hpp"
#include "lpsim/model/plan.hpp"

namespace lpsim {

template <class T>
class NativeBackend {
 public:
  using Scalar = T;

  Matrix<T> gemm(Op, const Matrix<T>& a, const Matrix<T>& b, const std::vector<T>* bias) {
    Matrix<T> c(a.rows, b.cols);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      using M = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
      Eigen::Map<M>(c.data.data(), c.rows, c.cols).noalias() =
          Eigen::Map<const M>(a.data.data(), a.rows, a.cols) * Eigen::Map<const M>(b.data.data(), b.rows, b.cols);
    } else if constexpr (requires(T t) { t.v; t.d; }) {
      // Dual numbers (diag/autodiff.hpp): the value and tangent parts as three double GEMMs,
      // (A + e A')(B + e B') = A B + e (A' B + A B'), instead of scalar loops (issue 19: `bounds --residual`).
      using M = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
      M av(a.rows, a.cols), ad(a.rows, a.cols), bv(b.rows, b.cols), bd(b.rows, b.cols);
      for (std::size_t i = 0; i < a.size(); ++i) av.data()[i] = a.data[i].v, ad.data()[i] = a.data[i].d;
      for (std::size_t i = 0; i < b.size(); ++i) bv.data()[i] = b.data[i].v, bd.data()[i] = b.data[i].d;
      const M cv = av * bv, cd = ad * bv + av * bd;
      for (std::size_t i = 0; i < c.size(); ++i) c.data[i] = T(cv.data()[i], cd.data()[i]);
    } else {
      for (int i = 0; i < a.rows; ++i)
        for (int j = 0; j < b.cols; ++j) {
          T s(0);
          for (int l = 0; l < a.cols; ++l) s = s + a(i, l) * b(l, j);
          c(i, j) = s;
        }
    }
    if (bias)
      for (int i = 0; i < c.rows; ++i)
        for (int j = 0; j < c.cols; ++j) c(i, j) = c(i, j) + (*bias)[j];
    return c;
  }
  Matrix<T> linear(Op op, const Matrix<T>& x, const Matrix<T>& w, const std::vector<T>* bias) {
    return gemm(op, x, w, bias);
  }
  T sum(Op, std::span<const T> x) {
    T s(0);
    for (const T& v : x) s = s + v;
    return s;
  }
  T dot(Op, std::span<const T> x, std::span<const T> y) {
    T s(0);
    for (std::size_t i = 0; i < x.size(); ++i) s = s + x[i] * y[i];
    return s;
  }
  T compute(Op, const T& v) { return v; }
  void store(Op, Matrix<T>&) {}
  T chain_step(Op, const T& v) { return v; }
  void set_layer(int) {}
};

}  // namespace lpsim
