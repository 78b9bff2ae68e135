// Matrix-product throughput under accumulation policies beside Eigen's float GEMM, in one run, interleaved
// repetition by repetition so that the printed ratios survive a noisy 2-core machine.
//   lpsim_bench_gemm [size=512] [repetitions=7] [policy ...]
// Eigen is compiled in this file with the same instruction set as lpsim's fast kernels (AVX-512 where built).
#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "bench_timing.hpp"
#include "lpsim/accum/gemm.hpp"
#include "lpsim/accum/block_scaled_gemm.hpp"
#include "lpsim/format/block_scale.hpp"
#include "lpsim/format/round_scalar.hpp"

using namespace lpsim;

namespace {

using bench::seconds;

std::vector<float> operands(const FormatSpec& f, size_t count, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<float> v(count);
  for (auto& x : v) x = float(round_to(dist(gen), f, Rounding::nearest_even));
  return v;
}

// The block-scaled products of the plans (model/plan.cpp): partial sums per k-block under the plan's policy, then
// the fp32 promotion; the operands are quantised once, outside the timing.
void block_scaled(int n, int reps, double eigen_best, double flops) {
  const std::pair<const char*, const char*> cases[] = {
      {"mxfp8-e4m3", "in=e4m3,acc=fp32"}, {"nvfp4", "in=e2m1,acc=fp32"}, {"fp8-1x128", "fp8e4m3-tc"}};
  std::printf("%-22s %-28s %10s %8s\n", "block-scaled", "partial-sum kernel", "GFLOP/s", "x Eigen");
  std::mt19937_64 gen(3);
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<double> x(size_t(n) * n), y(x.size());
  for (auto& v : x) v = dist(gen);
  for (auto& v : y) v = dist(gen);
  for (const auto& [scheme, policy_text] : cases) {
    const BlockScheme s = block_scheme(scheme);
    const BlockQuantized a = quantize_blocks(s, x, n, n, 1);
    const BlockQuantized b = quantize_blocks(s.name == "fp8-1x128" ? block_scheme("fp8-128x128") : s, y, n, n, 0);
    const AccumPolicy p = parse_policy(policy_text);
    double best = 1e300;
    for (int r = 0; r < reps; ++r) best = std::min(best, seconds([&] { (void)block_scaled_gemm(p, a, b); }));
    const std::string name = std::string(scheme) + (s.name == "fp8-1x128" ? " x 128x128" : "");
    std::printf("%-22s %-28s %10.2f %8.3f\n", name.c_str(),
                (policy_text + std::string(" ") + std::string(path_name(gemm_path(p, Isa::best, false)))).c_str(),
                flops / best / 1e9, eigen_best / best);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int size = argc > 1 ? std::atoi(argv[1]) : 512;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 7;
  std::vector<std::string> policies = {"fp32", "fp16-fp32acc", "bf16-fp32acc", "fp16-fp16acc", "bf16-bf16acc",
                                       "fp16-tc", "bf16-tc", "fp8e4m3-tc", "fp8e4m3-tc-promote", "fp8e4m3-mma",
                                       "b200-fp16-tc", "b200-fp8e4m3-tc"};
  if (argc > 3) policies.assign(argv + 3, argv + argc);
  const int n = size;
  const double flops = 2.0 * n * n * n;
  std::printf("%dx%dx%d, best of %d, Eigen %d.%d.%d float GEMM as the baseline, kernels: %s\n", n, n, n, reps,
              EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION,
              isa_available(Isa::avx512) ? "avx512" : "portable");

  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    Eigen::setNbThreads(threads);
    std::vector<AccumPolicy> ps;
    std::vector<std::vector<float>> as, bs;
    for (const auto& text : policies) {
      ps.push_back(parse_policy(text));
      as.push_back(operands(ps.back().input.spec, size_t(n) * n, 1));
      bs.push_back(operands(ps.back().input.spec, size_t(n) * n, 2));
    }
    Eigen::MatrixXf ea = Eigen::MatrixXf::Random(n, n), eb = Eigen::MatrixXf::Random(n, n), ec(n, n);
    std::vector<float> c(size_t(n) * n);
    double eigen_best = 1e300;
    std::vector<double> best(ps.size(), 1e300);
    for (int r = 0; r < reps; ++r) {
      eigen_best = std::min(eigen_best, seconds([&] { ec.noalias() = ea * eb; }));
      for (size_t i = 0; i < ps.size(); ++i) {
        // Generic-path policies are slow: time them once.
        if (r > 0 && gemm_path(ps[i], Isa::best, true) == GemmPath::generic) continue;
        best[i] = std::min(best[i], seconds([&] { gemm(ps[i], n, n, n, as[i], bs[i], c); }));
      }
    }
    std::printf("\n%d thread%s: Eigen float GEMM %.1f GFLOP/s\n", threads, threads > 1 ? "s" : "", flops / eigen_best / 1e9);
    std::printf("%-22s %-28s %10s %8s\n", "policy", "kernel", "GFLOP/s", "x Eigen");
    for (size_t i = 0; i < ps.size(); ++i)
      std::printf("%-22s %-28s %10.2f %8.3f\n", policies[i].c_str(),
                  std::string(path_name(gemm_path(ps[i], Isa::best, true))).c_str(), flops / best[i] / 1e9,
                  eigen_best / best[i]);
    if (argc <= 3) block_scaled(n, reps, eigen_best, flops);
  }
  return 0;
}
