// The host's side of the feed-forward device's contract (feed_forward_device.hpp), which CI can check without a
// GPU: the shared activation formula is layers.hpp's, value for value; its certification never passes a value that
// another function value within the margin would round differently; and blocks handed to a device that computes
// them by the CPU's own layers leave the forward's taps and range events as the CPU-only forward has them. (The
// GPU's blocks against the CPU's run on the device: lpsim-cuda emulate --check, docs/CUDA.md.)
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <functional>
#include <memory>
#include <limits>
#include <random>

#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/device/feed_forward_device.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/layers.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "support/device_contract.hpp"

namespace lpsim {
namespace {

bool same(double a, double b) { return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b) || (a != a && b != b); }

double glibc(Activation a, double v) {
  return a == Activation::silu ? std::exp(v) : a == Activation::gelu ? std::erf(v) : std::tanh(v);
}

// activation_value with glibc's functions is what layers.hpp computes through a backend (activation() then compute(),
// or gelu_new_chain with composite steps), on values spread over the activation's interesting range.
TEST(FeedForwardDevice, ActivationFormulaIsTheLayers) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> value(0.0, 4.0);
  for (const char* preset : {"autocast-bf16", "pure-fp16"}) {
    EmulatedBackend be(plan_preset(preset));
    const OpPrecision& act = be.plan()[Op::act];
    for (Activation kind : {Activation::relu, Activation::silu, Activation::gelu, Activation::gelu_tanh})
      for (bool chain : {false, true}) {
        if (chain && kind != Activation::gelu_tanh) continue;
        ActivationRecipe r;
        r.kind = kind, r.chain = chain, r.composite = act.composite;
        r.compute = element_rounding(act.compute.spec), r.out = element_rounding(act.out.spec);
        r.sqrt2 = std::sqrt(2.0), r.sqrt_2_over_pi = std::sqrt(2.0 / layers::pi_as<double>());
        for (int i = 0; i < 20000; ++i) {
          const double x = double(float(value(rng)));
          const double expected = chain ? layers::gelu_new_chain(be, x) : be.compute(Op::act, layers::activation(kind, x));
          const double got = activation_value(r, x, [&](double v) { return glibc(kind, v); }, 0, nullptr);
          ASSERT_TRUE(same(got, expected)) << preset << " kind " << int(kind) << " chain " << chain << " x=" << x;
        }
      }
  }
}

// Where activation_certain passes, every function value within 4 ulps of glibc's (CUDA's tanh and erf are within 2
// ulps, glibc's within 2) gives the same result; values at rounding boundaries are refused (the host computes them).
// A bracket of one ulp fails this.
TEST(FeedForwardDevice, ActivationCertificationCoversTheFunctionsError) {
  std::mt19937_64 rng(9);
  std::normal_distribution<double> value(0.0, 1.5);
  const PrecisionPlan plan = plan_preset("autocast-bf16");
  for (Activation kind : {Activation::silu, Activation::gelu, Activation::gelu_tanh})
    for (bool chain : {false, true}) {
      if (chain && kind != Activation::gelu_tanh) continue;
      ActivationRecipe r;
      r.kind = kind, r.chain = chain;
      r.compute = element_rounding(plan[Op::act].compute.spec), r.out = element_rounding(plan[Op::act].out.spec);
      r.sqrt2 = std::sqrt(2.0), r.sqrt_2_over_pi = std::sqrt(2.0 / layers::pi_as<double>());
      long refused = 0, checked = 0;
      for (int i = 0; i < 200000; ++i) {
        const double x = double(float(value(rng)));
        auto moved = [&](int ulps) {
          return [&, ulps](double v) {
            double y = glibc(kind, v);
            for (int k = 0; k < std::abs(ulps); ++k) y = std::nextafter(y, ulps > 0 ? 1e300 : -1e300);
            return y;
          };
        };
        if (!activation_certain(r, x, moved(0))) {
          ++refused;
          continue;
        }
        ++checked;
        const double base = activation_value(r, x, moved(0), 0, nullptr);
        for (int ulps : {-4, -1, 1, 4})
          ASSERT_TRUE(same(activation_value(r, x, moved(ulps), 0, nullptr), base))
              << "kind " << int(kind) << " chain " << chain << " x=" << x << " ulps " << ulps;
      }
      // Refused: mostly x < -3, where 1 + erf or 1 + tanh cancels and the function's last bits reach the result.
      EXPECT_LT(refused, 2000) << "kind " << int(kind) << " chain " << chain;
      EXPECT_GT(checked, 0);
    }
}

// A device that computes each block by the CPU's layers (a second backend without a device, from the job's
// operands alone): the forward must keep every tap and event of the CPU-only forward, and refused plans must leave
// the device unasked.
struct LayersAsFeedForward : FeedForwardDevice {
  PrecisionPlan plan;
  long blocks = 0, normed = 0;  // blocks run; of them, handed the stream to normalise
  explicit LayersAsFeedForward(PrecisionPlan p) : plan(std::move(p)) {}
  bool runs(const AccumPolicy&, const AccumPolicy&) const override { return true; }
  DeviceResult feed_forward(const FeedForwardJob& job, std::span<float> out) override {
    EmulatedBackend cpu(plan);
    auto matrix = [](int rows, int cols, const WeightOperand& w) {
      Matrix<double> m(rows, cols);
      if (!w.f.empty()) std::copy(w.f.begin(), w.f.end(), m.data.begin());
      else std::copy(w.d.begin(), w.d.end(), m.data.begin());
      return m;
    };
    ModelConfig cfg;
    cfg.activation = job.act.kind;
    cfg.activation_chain = job.act.chain;
    cfg.mlp = job.gated ? Mlp::gated : Mlp::plain;
    LayerWeights<double> w;
    w.w1 = matrix(job.width, job.hidden, job.w1);
    if (job.gated) w.w3 = matrix(job.width, job.hidden, job.w3);
    w.w2 = matrix(job.hidden, job.width, job.w2);
    w.b1.assign(job.b1.begin(), job.b1.end());
    w.b2.assign(job.b2.begin(), job.b2.end());
    Matrix<double> h(job.rows, job.width);
    std::copy(job.h.begin(), job.h.end(), h.data.begin());
    if (job.norm) h = test::normed(cpu, *job.norm, h);  // the stream, normalised here
    const Matrix<double> y = layers::feed_forward(cpu, cfg, w, h);
    std::copy(y.data.begin(), y.data.end(), out.begin());
    ++blocks;
    normed += job.norm.has_value();
    // prepare(h) counted its events on the caller's side already (h is rounded here: no new ones)
    return {cpu.events().overflows, cpu.events().saturations, 0};
  }
};

TEST(FeedForwardDevice, BlocksHandedToADeviceGiveTheCpuForward) {
  const std::vector<test::DeviceCase> cases = {
      {"gpt2-tiny", "autocast-bf16", true},   // gelu_new as a chain, biases
      {"llama-tiny", "autocast-bf16", true},  // SwiGLU, no biases
      // RMSNorm computed in fp32 and stored in bf16, once before a gain other than 1 (norm_cast) and once after
      {"llama-tiny", "autocast-bf16", true, [](PrecisionPlan& p) { p[Op::norm].out = parse_format("bf16"); }, true,
       [](ModelConfig& m) { m.init.norm_gain = 1.37; }},
      {"tiny-vit", "pure-fp16", true},        // erf GELU, composite plan
      {"post-ln", "autocast-bf16", true, [](PrecisionPlan&) {}, false},  // post-LN: the norm comes after the branch
      // a gated block's input cast on the host, with clamps (a norm the device does not take): counted once per up
      // product
      {"llama-tiny", "autocast-bf16", true, [](PrecisionPlan& p) {
         p[Op::ffn_up].gemm->input = parse_format("p4:emax-2:emin-20:sat");
         p[Op::norm].rounding = Rounding::toward_zero;
       }, false},
      {"llama-tiny", "autocast-bf16", true, [](PrecisionPlan& p) { p[Op::norm].compute = parse_format("fp64"); }, false},
      {"gpt2-tiny", "fp8-e4m3", false},       // scaled operands
      {"gpt2-tiny", "mxfp8", false},          // block-scaled
      {"gpt2-tiny", "autocast-bf16", false, [](PrecisionPlan& p) { p[Op::act].rounding = Rounding::toward_zero; }},
      {"gpt2-tiny", "autocast-bf16", false, [](PrecisionPlan& p) { p[Op::ffn_down].compute = parse_format("fp64"); }},
  };
  for (const test::DeviceCase& c : cases) {
    std::unique_ptr<LayersAsFeedForward> device;
    const ModelConfig cfg = test::expect_same_forward(c, 5, [&](EmulatedBackend& be, const PrecisionPlan& plan) {
      device = std::make_unique<LayersAsFeedForward>(plan);
      be.use_feed_forward_device(device.get());
    });
    EXPECT_EQ(device->blocks, c.taken ? long(cfg.depth) : 0) << c.model << " under " << c.plan;
    EXPECT_EQ(device->normed, c.taken && c.normed ? long(cfg.depth) : 0) << c.model << " under " << c.plan;
  }
}

}  // namespace
}  // namespace lpsim
