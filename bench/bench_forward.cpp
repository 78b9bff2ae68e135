// Forward-pass time on a model config: the plain float forward (Eigen GEMMs, float elementwise maths), the
// emulated forward under plans, interleaved repetition by repetition, and the MPFR reference forward.
//   lpsim_bench_forward [model=models/tiny-vit.toml] [repetitions=9] [plan ...]   (default plan autocast-bf16)
// Prints median times and the ratio emulated / float measured in the same run.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_timing.hpp"
#include "lpsim/model/emulated_backend.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/native_backend.hpp"
#include "lpsim/reference/mpfr_backend.hpp"

using namespace lpsim;

namespace {

using bench::seconds;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
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
  std::printf("model %s: width %d, %d heads, ffn %d, depth %d, %d tokens; %d repetitions, median\n", cfg.name.c_str(),
              cfg.width, cfg.heads, cfg.ffn, cfg.depth, cfg.tokens, reps);

  for (int threads : {1, omp_get_num_procs()}) {
    omp_set_num_threads(threads);
    std::vector<double> t_float;
    std::vector<std::vector<double>> t_plan(plans.size());
    // One backend per plan for all repetitions, as for the batches of a sweep: weights are rounded once (the
    // float forward's weights are converted to float once, outside the timing, too).
    std::vector<EmulatedBackend> backends;
    for (const auto& p : plans) backends.emplace_back(plan_preset(p));
    for (int r = 0; r < reps + 1; ++r) {  // the first round warms caches and thread pools
      NativeBackend<float> native;
      const double tf = seconds([&] { forward(native, cfg, wf, inf); });
      if (r) t_float.push_back(tf);
      for (std::size_t p = 0; p < plans.size(); ++p) {
        const double te = seconds([&] { forward(backends[p], cfg, w, in); });
        if (r) t_plan[p].push_back(te);
      }
    }
    std::printf("%d thread(s): float forward %.2f ms\n", threads, 1e3 * median(t_float));
    for (std::size_t p = 0; p < plans.size(); ++p)
      std::printf("  %-14s %8.2f ms  = %.2f x float\n", plans[p].c_str(), 1e3 * median(t_plan[p]),
                  median(t_plan[p]) / median(t_float));
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
