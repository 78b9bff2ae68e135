// Array rounding throughput: lpsim's kernels beside a plain float32 copy and a plain scalar loop over the same
// array, in one run, so the printed ratios mean something on a noisy 2-core machine.
//   lpsim_bench_round [elements=64Mi] [repetitions=5]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "lpsim/format/array_round.hpp"
#include "lpsim/format/round_scalar.hpp"

using namespace lpsim;

namespace {

// Best of several repetitions: the least disturbed run.
double best_seconds(int reps, const std::function<void()>& body) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    body();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : (std::size_t{64} << 20);
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  std::vector<float> in(n), out(n);
  for (std::size_t i = 0; i < n; ++i) in[i] = std::ldexp(1.0f + float(i % 1000003) * 1e-6f, int(i % 40) - 20);

  for (int threads : {1, omp_get_num_procs()}) {
    omp_set_num_threads(threads);
    std::printf("\n%zu float32 elements, %d thread(s), best of %d; ratios are to the plain copy in this run\n", n,
                threads, reps);
    const double copy = best_seconds(reps, [&] {
#pragma omp parallel for schedule(static)
      for (std::int64_t i = 0; i < std::int64_t(n); ++i) out[i] = in[i];
    });
    std::printf("%-34s %10.3g elem/s  %10.3g elem/s/core  ratio %5.2f\n", "plain float32 copy", n / copy,
                n / copy / threads, 1.0);
    struct Case {
      const char* format;
      Rounding mode;
      Isa isa;
    };
    const Case cases[] = {
        {"fp16", Rounding::nearest_even, Isa::best},     {"fp16", Rounding::nearest_even, Isa::portable},
        {"bf16", Rounding::nearest_even, Isa::best},     {"bf16", Rounding::nearest_even, Isa::portable},
        {"e4m3", Rounding::nearest_even, Isa::best},     {"e4m3", Rounding::nearest_even, Isa::portable},
        {"e5m2", Rounding::nearest_even, Isa::best},     {"fp16", Rounding::toward_zero, Isa::best},
        {"bf16", Rounding::stochastic, Isa::best},       {"e4m3", Rounding::stochastic, Isa::best},
    };
    for (const Case& c : cases) {
      const FormatSpec f = parse_format(c.format).spec;
      const double t = best_seconds(reps, [&] { round_array(in, out, f, c.mode, {1, 0, 0}, c.isa); });
      char label[64];
      std::snprintf(label, sizeof label, "round %s %s (%s)", c.format, std::string(short_name(c.mode)).c_str(),
                    std::string(isa_name(c.isa == Isa::best && isa_available(Isa::avx512) ? Isa::avx512 : c.isa == Isa::best ? Isa::portable : c.isa)).c_str());
      std::printf("%-34s %10.3g elem/s  %10.3g elem/s/core  ratio %5.2f\n", label, n / t, n / t / threads, copy / t);
    }
    // The naive way: one scalar round_to per element (runtime format decoded per call).
    const FormatSpec fp16 = parse_format("fp16").spec;
    const std::size_t m = n / 16;
    const double scalar = best_seconds(std::max(1, reps / 2), [&] {
#pragma omp parallel for schedule(static)
      for (std::int64_t i = 0; i < std::int64_t(m); ++i)
        out[i] = static_cast<float>(round_to(in[i], fp16, Rounding::nearest_even));
    });
    std::printf("%-34s %10.3g elem/s  %10.3g elem/s/core  ratio %5.2f\n", "scalar round_to loop fp16 rne", m / scalar,
                m / scalar / threads, copy / (scalar * 16));
  }
  return 0;
}
