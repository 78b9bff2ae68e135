#include "lpsim/format/array_round.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <stdexcept>
#include <vector>

#include "lpsim/format/round_scalar.hpp"
#include "lpsim/util/parallel_for.hpp"
#include "round_kernels.hpp"

namespace lpsim {

namespace {

constexpr std::size_t block_size = 1 << 12;        // 16 KiB of floats: short arrays still split
constexpr std::size_t parallel_threshold = 1 << 13;  // below this, threads cost more than they save

bool cpu_has_avx512() {
#if defined(LPSIM_HAVE_AVX512) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

Isa resolve(Isa isa) {
  static const bool avx512 = cpu_has_avx512();
  if (isa == Isa::best) return avx512 ? Isa::avx512 : Isa::portable;
  if (isa == Isa::avx512 && !avx512) throw std::invalid_argument("AVX-512 kernels are not available on this CPU/build");
  return isa;
}

template <class C>
void check_sizes(std::span<const C> in, std::span<C> out, const FormatSpec& f) {
  if (in.size() != out.size())
    throw std::invalid_argument(fmt::format("round_array: input has {} elements, output {}", in.size(), out.size()));
  if (std::string bad = validate(f); !bad.empty()) throw FormatError("round_array: " + bad);
}

// Runs body(first, count) over the array in blocks, in parallel when it is large. Blocks are independent, so
// any schedule gives the same bits.
template <class Body>
void for_blocks(std::size_t n, Body body) {
  const auto blocks = static_cast<std::int64_t>((n + block_size - 1) / block_size);
  parallel_for(blocks, n >= parallel_threshold, [&](std::int64_t b) {
    const std::size_t first = static_cast<std::size_t>(b) * block_size;
    body(first, std::min(block_size, n - first));
  });
}

}  // namespace

bool isa_available(Isa isa) {
  if (isa == Isa::avx512) return cpu_has_avx512();
  return true;
}

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::best: return "best";
    case Isa::portable: return "portable";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

namespace {
// Runs the chosen instruction set's kernels over the array, block by block.
template <class C>
void run_kernels(std::span<const C> in, std::span<C> out, const FormatSpec& f, const kernels::Request& rq,
                 const StochasticStream& sr, Isa isa) {
  const RoundParams<C> params = make_round_params<C>(f);
  for_blocks(in.size(), [&](std::size_t first, std::size_t count) {
    const kernels::Block blk{count, first};
    const C* src = in.data() + first;
    C* dst = out.data() + first;
#ifdef LPSIM_HAVE_AVX512
    if (isa == Isa::avx512) return kernels::round_avx512(src, dst, blk, params, rq, sr);
#endif
    kernels::round_portable(src, dst, blk, params, rq, sr);
  });
}
}  // namespace

void round_array(std::span<const float> in, std::span<float> out, const FormatSpec& f, Rounding mode,
                 StochasticStream sr, Isa isa) {
  check_sizes(in, out, f);
  if (!carrier_holds<float>(f)) {
    // Formats wider than float: round through double (exact), then store; only overflow past float can change.
    std::vector<double> tmp(in.begin(), in.end());
    round_array(std::span<const double>(tmp), std::span<double>(tmp), f, mode, sr, isa);
    std::transform(tmp.begin(), tmp.end(), out.begin(), [](double v) { return static_cast<float>(v); });
    return;
  }
  const kernels::Request rq{mode, mode == Rounding::nearest_even && f == formats::bf16,
                            mode == Rounding::nearest_even && f == formats::fp16};
  run_kernels(in, out, f, rq, sr, resolve(isa));
}

void round_array(std::span<const double> in, std::span<double> out, const FormatSpec& f, Rounding mode,
                 StochasticStream sr, Isa isa) {
  check_sizes(in, out, f);
  run_kernels(in, out, f, kernels::Request{mode, false, false}, sr, resolve(isa));
}

}  // namespace lpsim
