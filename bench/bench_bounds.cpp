// What `lpsim bounds --residual` spends its time on, on a model config (default Tiny-ViT), and the linearised
// branch (one recorded tape per branch, products as sweeps over it) beside the former way (a dual-number forward
// and a freshly recorded tape for every product), in the same run.
//   lpsim_bench_bounds [model=models/tiny-vit.toml] [plan=autocast-fp16] [power steps=20]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench_timing.hpp"
#include "lpsim/diag/bounds.hpp"
#include "lpsim/diag/depth_bound.hpp"
#include "lpsim/diag/residual_gain.hpp"
#include "lpsim/model/init.hpp"

using namespace lpsim;

int main(int argc, char** argv) {
  const std::string model = argc > 1 ? argv[1] : "models/tiny-vit.toml";
  const std::string plan_name = argc > 2 ? argv[2] : "autocast-fp16";
  const int steps = argc > 3 ? std::atoi(argv[3]) : 20;
  const ModelConfig cfg = load_model_config(model);
  const PrecisionPlan plan = plan_preset(plan_name);
  const Weights<double> w = make_weights(cfg, 0);
  const ModelInput<double> in = make_input(cfg, 0);
  const Matrix<double> x = branch_inputs(cfg, w, in).front();
  std::printf("model %s, plan %s: %d-step power iteration on layer 0's attention branch (%zu inputs)\n",
              cfg.name.c_str(), plan_name.c_str(), steps, x.size());

  double gain_new = 0, gain_old = 0;
  const double t_new = bench::seconds([&] { gain_new = branch_gain(cfg, w.layers[0], Branch::attention, x, steps); });
  const double t_old = bench::seconds([&] {
    std::vector<double> v(x.size());
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = normal_at(0, 0x9a1, i);
    for (int k = 0; k < steps; ++k) {
      double n = 0;
      for (double e : v) n += e * e;
      for (double& e : v) e /= std::sqrt(n);
      const std::vector<double> jv = branch_jvp(cfg, w.layers[0], Branch::attention, x, v);
      gain_old = 0;
      for (double e : jv) gain_old += e * e;
      gain_old = std::sqrt(gain_old);
      v = branch_vjp(cfg, w.layers[0], Branch::attention, x, jv);
    }
  });
  std::printf("  linearised tape %.2f s, per-product forwards %.2f s: %.1fx faster (gains %.6g, %.6g)\n", t_new, t_old,
              t_old / t_new, gain_new, gain_old);

  std::vector<ResidualCheck> checks;
  const double t_local = bench::seconds([&] { check_local_bounds(cfg, plan, w, in); });
  const double t_checks = bench::seconds([&] { checks = residual_checks(cfg, w, in); });
  const double t_depth = bench::seconds([&] { depth_bound(cfg, plan, w, in, 128, &checks); });
  std::printf("bounds --residual pieces: Theorem 1 and Proposition 1 %.1f s, Theorem 2's gains and conditions %.1f s, "
              "depth bound %.1f s; sum %.1f s (target: the whole command under 60 s)\n",
              t_local, t_checks, t_depth, t_local + t_checks + t_depth);
  return 0;
}
