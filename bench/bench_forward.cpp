// Forward-pass time on a model config: the plain float forward (Eigen GEMMs, float elementwise maths), the
// emulated forward under plans, interleaved repetition by repetition, and the MPFR reference forward.
//   lpsim_bench_forward [model=models/tiny-vit.toml] [repetitions=9] [plan ...]   (default plan autocast-bf16)
// Prints median times, the ratio emulated / float and the speed-up over one thread, measured in the same run
// (repetitions per block; 5 blocks per thread count, taking turns).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_timing.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/native_backend.hpp"
#include "lpsim/reference/mpfr_backend.hpp"
#include "lpsim/util/keep_freed_memory.hpp"

using namespace lpsim;

namespace {

using bench::seconds;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory();  // as the lpsim executables do: both forwards reuse freed memory
  const std::string model = argc > 1 ? argv[1] : "models/tiny-vit.toml";
  const int reps = argc > 2 ? std::atoi(argv[2]) : 9;
  std::vector<std::string> plans;
  for (int i = 3; i < argc; ++i) plans.push_back(argv[i]);
  if (plans.empty()) plans = {"autocast-bf16"};

  const ModelConfig cfg = load_model_config(model);
  const Weights<double> w = make_weights(cfg, 0);
  const ModelInput<double> in = make_input(cfg, 0);
  const Weights<float> wf = convert_weights<float>(w);
  const ModelInput<float> inf = convert_input<float>(in);
  std::printf("model %s: width %d, %d heads, ffn %d, depth %d, %d tokens; 5 blocks of %d repetitions per thread count, "
              "medians\n", cfg.name.c_str(), cfg.width, cfg.heads, cfg.ffn, cfg.depth, cfg.tokens, reps);

  // This 2-core machine's speed drifts by 30% between runs, and a core left idle for a while comes back slow. So
  // the thread counts take turns in blocks: each block warms up, then times `reps` forwards per plan; a speed-up is
  // the median over blocks of the ratio of the two counts' medians in adjacent turns.
  const int blocks = 5;
  const std::vector<int> thread_counts = {1, omp_get_num_procs()};
  const std::size_t nt = thread_counts.size();
  // [thread count][plan or float = plans.size()][block] -> median time of the block
  std::vector<std::vector<std::vector<double>>> block_median(nt, std::vector<std::vector<double>>(plans.size() + 1));
  // One backend per plan and thread count for every repetition, as for the batches of a sweep: weights are
  // rounded once (the float forward's weights are converted to float once, outside the timing, too).
  std::vector<std::vector<EmulatedBackend>> backends(nt);
  for (auto& b : backends)
    for (const auto& p : plans) b.emplace_back(plan_preset(p));
  for (int block = 0; block < blocks; ++block)
    for (std::size_t t = 0; t < nt; ++t) {
      omp_set_num_threads(thread_counts[t]);
      std::vector<std::vector<double>> times(plans.size() + 1);
      for (int r = 0; r < reps + 1; ++r) {  // the first round warms caches and the thread pool
        NativeBackend<float> native;
        const double tf = seconds([&] { forward(native, cfg, wf, inf); });
        if (r) times[plans.size()].push_back(tf);
        for (std::size_t p = 0; p < plans.size(); ++p) {
          const double te = seconds([&] { forward(backends[t][p], cfg, w, in); });
          if (r) times[p].push_back(te);
        }
      }
      for (std::size_t p = 0; p <= plans.size(); ++p) block_median[t][p].push_back(median(times[p]));
    }
  auto overall = [&](std::size_t t, std::size_t p) { return median(block_median[t][p]); };
  auto speed_up = [&](std::size_t t, std::size_t p) {
    std::vector<double> ratios;
    for (int b = 0; b < blocks; ++b) ratios.push_back(block_median[0][p][b] / block_median[t][p][b]);
    return median(ratios);
  };
  const std::size_t fl = plans.size();
  for (std::size_t t = 0; t < nt; ++t) {
    std::printf("%d thread(s): float forward %.2f ms", thread_counts[t], 1e3 * overall(t, fl));
    if (t > 0) std::printf(", speed-up over 1 thread %.2fx", speed_up(t, fl));
    std::printf("\n");
    for (std::size_t p = 0; p < plans.size(); ++p) {
      std::vector<double> ratios;  // emulated / float of the same thread count, block by block
      for (int b = 0; b < blocks; ++b) ratios.push_back(block_median[t][p][b] / block_median[t][fl][b]);
      std::printf("  %-14s %8.2f ms  = %.2f x float", plans[p].c_str(), 1e3 * overall(t, p), median(ratios));
      if (t > 0) std::printf(", speed-up over 1 thread %.2fx", speed_up(t, p));
      std::printf("\n");
    }
  }
  if (std::getenv("LPSIM_BENCH_NO_MPFR")) return 0;  // for profiling the emulated forward alone
  for (int bits : {128, 256}) {
    set_reference_bits(bits);
    const Weights<Real> wr = convert_weights<Real>(w);
    const ModelInput<Real> ir = convert_input<Real>(in);
    MpfrBackend mp;
    const double t = seconds([&] { forward(mp, cfg, wr, ir); });
    std::printf("MPFR reference forward at %d bits (%d threads): %.2f s\n", reference_bits(), omp_get_num_procs(), t);
  }
  return 0;
}
