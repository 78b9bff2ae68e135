#pragma once
// The check shared by the device contract tests (test_attention_device.cpp, test_feed_forward_device.cpp): a model
// under a plan, run by a backend without a device and by one with a device attached, must give the same taps bit for
// bit (NaN as NaN) and the same range events.
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <functional>
#include <string>

#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/layers.hpp"
#include "lpsim/reference/forward_error.hpp"

namespace lpsim::test {

// A model of models/ under a plan (a preset or a file), changed by `change` (a refused case: one field off).
struct DeviceCase {
  std::string model, plan;
  bool taken;  // whether the device must be given the work
  std::function<void(PrecisionPlan&)> change = [](PrecisionPlan&) {};
  bool normed = true;  // a pre-LN model's block normalises its input on the device too (where it takes the block)
  std::function<void(ModelConfig&)> model_change = [](ModelConfig&) {};
};

// layers.hpp's norm of x as a device's NormJob describes it (its epsilon is already rounded to the norm's compute:
// rounding it again changes nothing).
inline Matrix<double> normed(EmulatedBackend& cpu, const NormJob& n, const Matrix<double>& x) {
  NormWeights<double> w;
  w.gamma.assign(n.gamma.begin(), n.gamma.end());
  w.beta.assign(n.beta.begin(), n.beta.end());
  w.eps = n.epsilon;
  return layers::norm(cpu, n.rms ? NormKind::rmsnorm : NormKind::layernorm, x, w, n.epsilon, n.cast);
}

// Runs the case on a plain backend and on one that `attach` gives a device; returns the model for further checks.
inline ModelConfig expect_same_forward(const DeviceCase& c, std::uint64_t seed,
                                       const std::function<void(EmulatedBackend&, const PrecisionPlan&)>& attach) {
  const std::string root = LPSIM_SOURCE_DIR;
  ModelConfig cfg = load_model_config(root + "/models/" + c.model + ".toml");
  c.model_change(cfg);
  const Weights<double> w = make_weights(cfg, seed);
  const ModelInput<double> in = make_input(cfg, seed);
  PrecisionPlan plan = load_plan(c.plan);
  c.change(plan);
  EmulatedBackend cpu(plan, seed), with_device(plan, seed);
  attach(with_device, plan);
  const Taps<double> expected = emulated_taps(cpu, cfg, w, in), got = emulated_taps(with_device, cfg, w, in);
  const std::string label = c.model + " under " + plan.name;
  EXPECT_EQ(expected.size(), got.size()) << label;
  for (std::size_t t = 0; t < std::min(expected.size(), got.size()); ++t) {
    const bool same = std::equal(expected[t].data.begin(), expected[t].data.end(), got[t].data.begin(),
                                 got[t].data.end(), [](double a, double b) {
                                   return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b) ||
                                          (a != a && b != b);
                                 });
    EXPECT_TRUE(same) << label << ", tap " << t;
    if (!same) break;
  }
  EXPECT_EQ(cpu.events().overflows, with_device.events().overflows) << label;
  EXPECT_EQ(cpu.events().saturations, with_device.events().saturations) << label;
  return cfg;
}

}  // namespace lpsim::test
