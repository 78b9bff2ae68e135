// Array rounding throughput: lpsim's kernels beside a plain float32 copy and, when built with LPSIM_CPFLOAT_DIR,
// CPFloat on the same inputs in the same run, so the printed ratios mean something on a noisy 2-core machine.
//   lpsim_bench_round [elements=64Mi] [repetitions=3] [formats=fp16,bf16,e5m2,e4m3,e3m2,e2m1]
// Inputs are realistic for each format (issue 18): random signs and float32 significands, exponents uniform over
// the format's whole range from below its smallest subnormal to above its largest binade, so subnormals, values
// that round to zero and overflow all occur; a periodic input lets branchy code look faster than it is.
#include <omp.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "lpsim/format/array_round.hpp"
#include "lpsim/format/random_stream.hpp"
#include "lpsim/format/round_scalar.hpp"
#ifdef LPSIM_WITH_CPFLOAT
#include "cpfloat_shim.h"
#endif

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

// Random float32 values for format f: exponent uniform in [emin - p, emax + 1], clamped to float32's range.
void fill_inputs(std::vector<float>& in, const FormatSpec& f) {
  const int lo = std::max(f.emin - f.precision, -149), hi = std::min(f.emax + 1, 127);
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < std::int64_t(in.size()); ++i) {
    const std::uint64_t r = random_bits(1, 2, std::uint64_t(i));
    const int e = lo + int((r >> 32) % std::uint64_t(hi - lo + 1));
    const float m = 1.0f + float(r & 0x7fffff) * 0x1p-23f;
    in[i] = (r >> 31 & 1 ? -1.0f : 1.0f) * std::ldexp(m, e);
  }
}

struct Mode {
  Rounding mode;
  int cpfloat;  // cpfloat_rounding_t
};
const Mode modes[] = {{Rounding::nearest_even, 1}, {Rounding::toward_zero, 4},  {Rounding::upward, 2},
                      {Rounding::downward, 3},     {Rounding::nearest_away, -1}, {Rounding::to_odd, 7},
                      {Rounding::stochastic, 5}};

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : (std::size_t{64} << 20);
  const int reps = argc > 2 ? std::atoi(argv[2]) : 3;
  std::vector<std::string> names;
  for (std::string list = argc > 3 ? argv[3] : "fp16,bf16,e5m2,e4m3,e3m2,e2m1"; !list.empty();) {
    const auto comma = list.find(',');
    names.push_back(list.substr(0, comma));
    list = comma == std::string::npos ? "" : list.substr(comma + 1);
  }
  std::vector<float> in(n), out(n);
#ifdef LPSIM_WITH_CPFLOAT
  std::vector<float> theirs(n);
#endif
  const bool avx = isa_available(Isa::avx512);
#ifdef LPSIM_WITH_CPFLOAT
  std::printf("CPFloat: built from LPSIM_CPFLOAT_DIR, custom formats with lpsim's p, emin, emax (its overflow and\n"
              "NaN rules are IEEE-like, so e4m3's outputs differ above 448; the work per element is the same)\n");
#else
  std::printf("CPFloat: not built (configure with -DLPSIM_CPFLOAT_DIR=<cpfloat checkout with submodules>)\n");
#endif
  std::printf("lpsim kernel: %s\n", avx ? "avx512" : "portable");

  for (int threads : {1, omp_get_num_procs()}) {
    omp_set_num_threads(threads);
    std::printf("\n%zu float32 elements, %d thread(s), best of %d; ratios to the plain copy (and to CPFloat)\n", n,
                threads, reps);
    fill_inputs(in, formats::fp32);
    const double copy = best_seconds(reps, [&] {
#pragma omp parallel for schedule(static)
      for (std::int64_t i = 0; i < std::int64_t(n); ++i) out[i] = in[i];
    });
    std::printf("%-22s %10.3g elem/s  ratio to copy %5.2f\n", "plain float32 copy", n / copy, 1.0);
    std::printf("%-22s %10s        %13s %8s %10s %14s  %s\n", "format mode", "lpsim", "lpsim/copy", "CPFloat",
                "lpsim/CPF", "CPFloat/copy", "outputs in range");
    for (const std::string& name : names) {
      const FormatSpec f = parse_format(name).spec;
      fill_inputs(in, f);
      for (const Mode& m : modes) {
        const double t = best_seconds(reps, [&] { round_array(in, out, f, m.mode, {1, 0, 0}); });
        char label[64];
        std::snprintf(label, sizeof label, "%s %s", name.c_str(), std::string(short_name(m.mode)).c_str());
        std::printf("%-22s %10.3g elem/s  %8.2f", label, n / t, copy / t);
#ifdef LPSIM_WITH_CPFLOAT
        if (cpfloat_shim_configure(f.precision, f.emin, f.emax, m.cpfloat, f.subnormals ? 1 : 0,
                                   f.overflow == Overflow::saturate ? 1 : 0) == 0) {
          const double tc = best_seconds(reps, [&] { cpfloat_shim_round(theirs.data(), in.data(), n); });
          std::printf("  %10.3g  %8.2f  %10.2f", n / tc, tc / t, copy / tc);
          // The same work? Deterministic modes must give the same values inside the format's finite range (where
          // the two agree on the definition); stochastic ones differ by their random streams.
          if (m.mode != Rounding::stochastic) {
            std::size_t in_range = 0, differ = 0;
            for (std::size_t i = 0; i < n; ++i)
              if (std::fabs(in[i]) <= f.max_finite()) {
                ++in_range;
                differ += out[i] != theirs[i];
              }
            std::printf("  %s", differ ? ("DIFFER on " + std::to_string(differ) + " of " + std::to_string(in_range)).c_str()
                                       : "same values");
          }
        } else {
          std::printf("  CPFloat refused the options");
        }
#endif
        std::printf("\n");
      }
    }
  }
  return 0;
}
