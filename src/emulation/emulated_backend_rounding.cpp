#include "lpsim/emulation/emulated_backend.hpp"

// The emulated backend's roundings of values to a class's formats (one value, or a tensor in vectorised passes on
// all threads) with the range events they cause; the rest of the backend is in emulated_backend.cpp.
#include <cmath>
#include <vector>

#include "lpsim/format/array_round.hpp"
#include "lpsim/format/bf16_rne.hpp"
#include "lpsim/format/random_stream.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "emulation/float_passes.hpp"
#include "emulation/host_buffers.hpp"

namespace lpsim {

using namespace host_buffers;

namespace {
// The stochastic-rounding streams of elementwise roundings and of stores (the GEMMs' are in emulated_backend.cpp).
constexpr std::uint64_t compute_stream = 0xc0117e;
constexpr std::uint64_t store_stream = 0x5702e;
}  // namespace

EmulatedBackend::Rounder EmulatedBackend::make_rounder(const Format& f, Rounding mode) {
  Fast fast = Fast::general;
  if (mode == Rounding::nearest_even && f.spec == formats::fp64) fast = Fast::identity;
  if (mode == Rounding::nearest_even && f.spec == formats::fp32) fast = Fast::to_float;  // the cast is RNE
  return {f.spec, mode, fast, f.spec.max_finite()};
}

double EmulatedBackend::round_one(const Rounder& r, double v) {
  double y;
  switch (r.fast) {
    case Fast::identity: return v;
    case Fast::to_float: y = static_cast<double>(static_cast<float>(v)); break;
    default:
      y = round_to(v, r.spec, r.mode, r.mode == Rounding::stochastic ? random_bits(seed_, compute_stream, sr_index_++) : 0);
  }
  if (std::isfinite(v) && !std::isfinite(y)) [[unlikely]] count_events(1, 0);
  else if (std::isfinite(v) && std::fabs(v) > r.max && r.spec.overflow == Overflow::saturate) [[unlikely]]
    count_events(0, 1);
  return y;
}

void EmulatedBackend::round_all(const Rounder& r, std::span<double> v) {
  if (r.fast == Fast::identity) return;
  // Range events are counted in the same passes: a finite value that became Inf/NaN overflowed; one beyond the
  // largest finite number that stayed finite was clamped by a saturating format. Long passes run on all threads
  // (each element on its own: the same bits at any thread count); this may itself run inside a layer's row loop.
  const bool saturating = r.spec.overflow == Overflow::saturate;
  const std::int64_t n = std::int64_t(v.size());
  const bool threads = v.size() >= parallel_elements;
  long overflows = 0, saturations = 0;
  // The two common stores by vectorised passes (emulation/float_passes.hpp), in blocks shared out over the threads.
  const std::int64_t block = pass_block(n);
  const std::int64_t blocks = (n + block - 1) / block;
  auto at = [&](std::int64_t b) { return std::pair{v.data() + b * block, std::min(block, n - b * block)}; };
  if (r.fast == Fast::to_float) {
    const Counts c = parallel_count(blocks, threads, [&](std::int64_t b, long& over, long&) {
      const auto [x, len] = at(b);
      over += passes::to_float(x, len);
    });
    count_events(c.a, 0);
    return;
  }
  if (r.mode == Rounding::nearest_even && r.spec == formats::bf16) {
    // bf16 with RNE (every autocast-bf16 store) in one pass: a float by the bit trick, any other value (rare: a
    // double no float holds) by the core, which rounds it once where the trick on its float would round twice.
    // bf16 overflows to inf, so nothing saturates.
    const Counts c = parallel_count(blocks, threads, [&](std::int64_t b, long& over, long&) {
      const auto [x, len] = at(b);
      if (const long made_infinite = passes::bf16_of_floats(x, len); made_infinite >= 0) {
        over += made_infinite;
        return;
      }
      for (std::int64_t i = 0; i < len; ++i) {  // a block with a value no float holds
        const float f = static_cast<float>(x[i]);
        const double y = double(f) == x[i] || x[i] != x[i] ? double(round_bf16_rne(f))
                                                             : round_to(x[i], r.spec, Rounding::nearest_even);
        over += std::isfinite(x[i]) && !std::isfinite(y);
        x[i] = y;
      }
    });
    count_events(c.a, 0);
    return;
  }
  // Where every value is a float (the usual case) the float kernels, several times faster, give the same bits.
  thread_local std::vector<float> floats;
  bool all_float = fits_float(r.spec);
  if (all_float) {
    floats.resize(v.size());
    float* f = floats.data();
    const Counts inexact = parallel_count(n, threads, [&](std::int64_t i, long& count, long&) {
      f[i] = static_cast<float>(v[i]);
      count += !(double(f[i]) == v[i] || v[i] != v[i]);
    });
    all_float = inexact.a == 0;
  }
  const StochasticStream stream{seed_, store_stream, sr_index_};
  if (all_float) {
    round_array(floats, floats, r.spec, r.mode, stream);
    const float* f = floats.data();
    const Counts c = parallel_count(n, threads, [&](std::int64_t i, long& over, long& sat) {
      const double x = v[i], y = f[i];
      over += std::isfinite(x) && !std::isfinite(y);
      sat += saturating && std::isfinite(y) && std::fabs(x) > r.max;
      v[i] = y;
    });
    overflows = c.a, saturations = c.b;
  } else {
    std::vector<std::size_t> beyond;
    for (std::size_t i = 0; i < v.size(); ++i)
      if (std::isfinite(v[i]) && std::fabs(v[i]) > r.max) beyond.push_back(i);
    round_array(v, v, r.spec, r.mode, stream);
    for (std::size_t i : beyond) std::isfinite(v[i]) ? saturations += saturating : ++overflows;
  }
  if (r.mode == Rounding::stochastic) sr_index_ += v.size();  // plans with stochastic rounding run serially
  count_events(overflows, saturations);
}

}  // namespace lpsim
