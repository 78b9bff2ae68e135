#pragma once
// A dense row-major matrix of any scalar: float, double, MPFR numbers, dual numbers. Activations are
// tokens x features (one token per row), weights in x out, so a linear layer is Y = X W + b.
#include <cstddef>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <span>
#include <algorithm>
#include <vector>

namespace lpsim {

// std::allocator whose value-initialisation (vector(n), resize(n)) is default-initialisation: a double is left
// as it is instead of zeroed. Results that are written in full anyway skip a serial pass over their memory (16 MB
// per activation of a Llama-1B forward at 1024 tokens, a dozen of them per layer).
template <class T>
struct DefaultInitAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  using std::allocator<T>::allocator;
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

// Matrix(rows, cols, uninitialized): values left unset, for results that are then written in full.
struct Uninitialized {};
inline constexpr Uninitialized uninitialized{};

template <class T>
struct Matrix {
  using Storage = std::vector<T, DefaultInitAllocator<T>>;
  int rows = 0;
  int cols = 0;
  Storage data;  // resize(n) leaves new doubles unset

  Matrix() = default;
  bool empty() const { return data.empty(); }
  Matrix(int r, int c) : rows(r), cols(c), data(static_cast<std::size_t>(r) * c, T()) {}
  Matrix(int r, int c, Uninitialized) : rows(r), cols(c), data(static_cast<std::size_t>(r) * c) {}
  Matrix(int r, int c, const T& fill) : rows(r), cols(c), data(static_cast<std::size_t>(r) * c, fill) {}

  // Element access checks its indices in builds with LPSIM_CHECK_BOUNDS (Debug and sanitizer builds: CMakeLists.txt);
  // the slices below check theirs always (once per call).
  T& operator()(int i, int j) {
    check(i, j);
    return data[static_cast<std::size_t>(i) * cols + j];
  }
  const T& operator()(int i, int j) const {
    check(i, j);
    return data[static_cast<std::size_t>(i) * cols + j];
  }
  void check([[maybe_unused]] int i, [[maybe_unused]] int j) const {
#if defined(LPSIM_CHECK_BOUNDS)
    if (i < 0 || i >= rows || j < 0 || j >= cols)
      throw std::out_of_range("matrix element (" + std::to_string(i) + ", " + std::to_string(j) + ") outside " +
                              std::to_string(rows) + " x " + std::to_string(cols));
#endif
  }
  std::span<T> row(int i) { return {data.data() + static_cast<std::size_t>(i) * cols, static_cast<std::size_t>(cols)}; }
  std::span<const T> row(int i) const {
    return {data.data() + static_cast<std::size_t>(i) * cols, static_cast<std::size_t>(cols)};
  }
  std::size_t size() const { return data.size(); }
};

// A matrix's values as a plain vector (for code that keeps std::vector<T>).
template <class T, class A>
std::vector<T> as_vector(const std::vector<T, A>& v) {
  return {v.begin(), v.end()};
}

// A slice [first, first + count) of `extent` rows or columns; out of range is a bug in the caller, named here (a head
// taken past a grouped-query key matrix read far outside it before).
inline void check_slice(const char* what, int first, int count, int extent) {
  if (first < 0 || count < 0 || first > extent - count)
    throw std::out_of_range(std::string(what) + " [" + std::to_string(first) + ", " + std::to_string(first + count) +
                            ") outside 0.." + std::to_string(extent));
}

// Columns [first, first + count) as a new matrix (one attention head out of Q, K or V).
template <class T>
Matrix<T> columns(const Matrix<T>& m, int first, int count) {
  check_slice("columns", first, count, m.cols);
  Matrix<T> out(m.rows, count, uninitialized);
  for (int i = 0; i < m.rows; ++i)
    for (int j = 0; j < count; ++j) out(i, j) = m(i, first + j);
  return out;
}

// Rows [first, first + count) as a new matrix (one key tile of V).
template <class T>
Matrix<T> row_block(const Matrix<T>& m, int first, int count) {
  check_slice("rows", first, count, m.rows);
  Matrix<T> out(count, m.cols, uninitialized);
  std::copy(m.data.begin() + std::size_t(first) * m.cols, m.data.begin() + std::size_t(first + count) * m.cols,
            out.data.begin());
  return out;
}

template <class T>
void set_columns(Matrix<T>& m, int first, const Matrix<T>& part) {
  check_slice("columns", first, part.cols, m.cols);
  if (part.rows != m.rows)
    throw std::out_of_range("set_columns: " + std::to_string(part.rows) + " rows into " + std::to_string(m.rows));
  for (int i = 0; i < m.rows; ++i)
    for (int j = 0; j < part.cols; ++j) m(i, first + j) = part(i, j);
}

template <class T>
Matrix<T> transpose(const Matrix<T>& m) {
  Matrix<T> out(m.cols, m.rows, uninitialized);
  for (int i = 0; i < m.rows; ++i)
    for (int j = 0; j < m.cols; ++j) out(j, i) = m(i, j);
  return out;
}

// Element-by-element conversion (double weights to MPFR or float).
template <class To, class From>
Matrix<To> convert(const Matrix<From>& m) {
  Matrix<To> out(m.rows, m.cols, uninitialized);
  for (std::size_t i = 0; i < m.size(); ++i) out.data[i] = To(m.data[i]);
  return out;
}

template <class To, class From>
std::vector<To> convert(const std::vector<From>& v) {
  return std::vector<To>(v.begin(), v.end());
}

}  // namespace lpsim
