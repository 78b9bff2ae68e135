#pragma once
// What the emulated backend's CPU passes and its device adapter (emulated_backend_devices.cpp) share: how long
// loops are split over threads, float views of double tensors and the per-thread buffers devices write results
// into. Private to src/emulation.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "emulation/float_passes.hpp"
#include "lpsim/format/format.hpp"
#include "lpsim/model/matrix.hpp"
#include "lpsim/util/parallel_for.hpp"

namespace lpsim::host_buffers {

// Loops over this many elements or more are split over threads (smaller ones cost more to start than they save).
inline constexpr std::size_t parallel_elements = 1 << 12;

// The block length of a vectorised pass over n values shared out over the threads: about 2048 values, in a number of
// blocks that the threads divide evenly (a 65 x 128 activation in blocks of 2048 gave one of two threads 3 blocks
// and the other 2), a multiple of 16 values.
inline std::int64_t pass_block(std::int64_t n) {
  const std::int64_t threads = std::max(1, omp_get_max_threads()), target = 2048;
  const std::int64_t blocks = threads * std::max<std::int64_t>(1, (n + threads * target - 1) / (threads * target));
  return std::max<std::int64_t>(16, ((n + blocks - 1) / blocks + 15) / 16 * 16);
}

inline bool fits_float(const FormatSpec& f) { return f.precision <= 24 && f.emin >= -126 && f.emax <= 127; }

// Whether every value is a float or NaN: then prepare() takes its float path (a device's operands are floats).
// On all threads when long (a feed-forward block's input at 1024 tokens is 2M values).
inline bool all_floats(std::span<const double> x) {
  return parallel_count(std::int64_t(x.size()), x.size() >= parallel_elements, [&](std::int64_t i, long& other, long&) {
           other += !(double(static_cast<float>(x[i])) == x[i] || x[i] != x[i]);
         }).a == 0;
}

// x as floats, converted on all threads; nullopt where some value is a double no float holds.
inline std::optional<std::vector<float>> as_floats(std::span<const double> x) {
  std::vector<float> f(x.size());
  const std::int64_t n = std::int64_t(x.size()), block = pass_block(n);
  const Counts c = parallel_count((n + block - 1) / block, x.size() >= parallel_elements, [&](std::int64_t b, long& inexact, long&) {
    const std::int64_t first = b * block, len = std::min(block, n - first);
    inexact += passes::cast_operand(x.data() + first, f.data() + first, len, 1.0, false, 0).inexact;
  });
  if (c.a) return std::nullopt;
  return f;
}

// A device's float results as doubles, copied on all threads into memory not zeroed first (GEMM outputs of a
// forward at 1024 tokens are 2M to 130M values; serial passes over them bounded its speed-up on many cores).
inline Matrix<double> from_floats(int rows, int cols, const float* values) {
  Matrix<double> m(rows, cols, uninitialized);
  double* to = m.data.data();
  parallel_for(std::int64_t(m.size()), m.size() >= parallel_elements, [&](std::int64_t i) { to[i] = values[i]; });
  return m;
}

// A float buffer of n values for a device's results, kept per thread and use: fresh pages of hundreds of MB (an
// LM head's output) cost more than the product, and zeroing them is a serial pass. One per use, because a device
// may run the backend's own GEMMs while it fills the buffer of a head or block (the tests' CPU-backed devices do).
enum class ResultUse { product, heads, block, attention };
inline std::span<float> result_buffer(ResultUse use, std::size_t n) {
  thread_local std::array<std::vector<float>, 4> buffers;
  std::vector<float>& buffer = buffers[static_cast<int>(use)];
  if (buffer.size() < n) buffer.resize(n);
  return {buffer.data(), n};
}

}  // namespace lpsim::host_buffers
