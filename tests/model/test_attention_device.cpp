// The host's side of the attention device's contract (attention_device.hpp), which CI can check without a GPU: the
// exp certification never lets through a value whose rounding another exp within 1 ulp could change, and the
// element rounding is the rounding core's. (The GPU's heads against the CPU's, bit for bit, run on the device:
// lpsim-cuda emulate --check, docs/CUDA.md.)
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <limits>
#include <random>

#include "lpsim/format/block_scale.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/device/attention_device.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/layers.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "support/device_contract.hpp"

namespace lpsim {
namespace {

double ulps_away(double y, int k) {
  for (; k > 0; --k) y = std::nextafter(y, std::numeric_limits<double>::infinity());
  for (; k < 0; ++k) y = std::nextafter(y, -std::numeric_limits<double>::infinity());
  return y;
}

bool same_bits(double a, double b) { return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b); }

// Around every rounding boundary (the midpoint of two neighbours of the format, where round to nearest even turns)
// of values exp gives in softmax (0 < y <= 1): a value that rounds_alike passes must round as every value within
// two ulps of it (the reach of two exps each within 1 ulp). A margin of one ulp or none fails this.
TEST(AttentionDevice, ExpCertificationCoversTwoUlpsAroundEveryBoundary) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> arg(-100.0, 0.0);
  for (const FormatSpec& f : {formats::fp32, formats::bf16, formats::fp16}) {
    const ElementRounding r = element_rounding(f);
    long passed = 0, refused = 0;
    for (int trial = 0; trial < 2000; ++trial) {
      const double lower = round_to(std::exp(arg(rng)), f, Rounding::toward_zero);  // a value of the format
      const double upper = round_to(ulps_away(lower, 1), f, Rounding::upward);      // its upper neighbour
      const double boundary = lower + (upper - lower) / 2;                          // exact in double
      for (int k = -8; k <= 8; ++k) {
        const double y = ulps_away(boundary, k);
        if (!rounds_alike(r, y)) {
          ++refused;
          continue;
        }
        ++passed;
        for (int j = -2; j <= 2; ++j)
          ASSERT_TRUE(same_bits(round_element(r, ulps_away(y, j)), round_element(r, y)))
              << "p=" << f.precision << " y=" << y << " k=" << k << " j=" << j;
      }
    }
    EXPECT_GT(passed, 0) << "p=" << f.precision;
    EXPECT_GT(refused, 0) << "p=" << f.precision;  // the values at the boundary are left to the host
  }
}

// Away from boundaries nearly every value passes: the host computes about 1 in 2^26 of them.
TEST(AttentionDevice, ExpCertificationPassesTypicalValues) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> arg(-30.0, 0.0);
  const ElementRounding r = element_rounding(formats::fp32);
  long refused = 0;
  for (int i = 0; i < 200000; ++i) refused += !rounds_alike(r, std::exp(arg(rng)));
  EXPECT_LE(refused, 2);
  EXPECT_TRUE(rounds_alike(r, 0.0));
  EXPECT_TRUE(rounds_alike(r, 1.0));
  EXPECT_TRUE(rounds_alike(r, std::numeric_limits<double>::quiet_NaN()));
}

// round_element is the rounding core's round to nearest even (the cast for binary32), on values of every kind.
TEST(AttentionDevice, ElementRoundingIsTheCore) {
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<std::uint64_t> bits;
  for (const FormatSpec& f : {formats::fp32, formats::bf16, formats::fp16, formats::e4m3, formats::e4m3_sat,
                              formats::e5m2_sat}) {
    const ElementRounding r = element_rounding(f);
    for (int i = 0; i < 100000; ++i) {
      // doubles spread over the float range and beyond: random significand, exponent in [-160, 160]
      const double x = std::ldexp(std::bit_cast<double>((bits(rng) >> 12) | 0x3ff0000000000000ull) - 1.5,
                                  int(bits(rng) % 321) - 160);
      const double expected = round_to(x, f, Rounding::nearest_even);
      ASSERT_TRUE(same_bits(round_element(r, x), expected) || (expected != expected && round_element(r, x) != round_element(r, x)))
          << "p=" << f.precision << " x=" << x;
    }
    for (double x : {0.0, -0.0, std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()})
      EXPECT_TRUE(same_bits(round_element(r, x), round_to(x, f, Rounding::nearest_even))) << "p=" << f.precision << " x=" << x;
  }
}

// The events of one rounding as EmulatedBackend counts them: a finite value that became Inf/NaN overflowed, one
// beyond the largest finite value of a saturating format was clamped; store() also counts a clamped infinity.
TEST(AttentionDevice, ElementEventsCountOverflowsAndClamps) {
  const ElementRounding bf16 = element_rounding(formats::bf16), e4m3 = element_rounding(formats::e4m3_sat);
  const double big = 1e39, inf = std::numeric_limits<double>::infinity();
  ElementEvents e;
  e.compute(bf16, big, round_element(bf16, big));
  e.compute(bf16, inf, round_element(bf16, inf));
  e.compute(e4m3, 1000.0, round_element(e4m3, 1000.0));
  e.compute(e4m3, inf, round_element(e4m3, inf));
  EXPECT_EQ(e.overflows, 1);
  EXPECT_EQ(e.saturations, 1);
  ElementEvents s;
  s.store(e4m3, 1000.0, round_element(e4m3, 1000.0));
  s.store(e4m3, inf, round_element(e4m3, inf));
  s.store(bf16, big, round_element(bf16, big));
  EXPECT_EQ(s.overflows, 1);
  EXPECT_EQ(s.saturations, 2);
}

// The backend's side of a head handed to a device: a device that computes each head by the CPU's own layers (a
// second backend without a device, from the job's operands alone) must leave every tap and range event of the
// forward as the CPU-only forward has them. That holds only if the backend hands over the operands rounded as the
// CPU path rounds them, the right scale and mask, every head of a GQA group with its key/value head after the
// rotary embedding, puts the result in the head's columns and adds the device's events once. It also checks which
// plans are refused (the head then runs on the CPU: nothing is asked of the device) and what a job's roundings are.
struct LayersAsDevice : AttentionDevice {
  PrecisionPlan plan;
  long heads_run = 0, layers = 0;  // heads computed; calls with a whole layer's heads
  std::vector<AttentionHeadJob> jobs;
  explicit LayersAsDevice(PrecisionPlan p) : plan(std::move(p)) {}
  bool runs(const AccumPolicy&, const AccumPolicy&) const override { return true; }
  DeviceResult head(const AttentionHeadJob& job, std::span<float> out) override {
    EmulatedBackend cpu(plan);
    auto matrix = [](int rows, int cols, std::span<const float> v) {
      Matrix<double> m(rows, cols);
      std::copy(v.begin(), v.end(), m.data.begin());
      return m;
    };
    Matrix<double> s = cpu.gemm(Op::score, matrix(job.rows, job.width, job.q), matrix(job.width, job.keys, job.kt), nullptr);
    for (double& x : s.data)  // layers::scale_scores with the job's constant (the device is given no other)
      x = cpu.compute(Op::scale, job.divide ? x / job.scale_constant : x * job.scale_constant);
    cpu.store(Op::scale, s);
    const Matrix<double> p = layers::softmax(cpu, s, job.causal);
    const Matrix<double> o = cpu.gemm(Op::pv, p, matrix(job.keys, job.width, job.v), nullptr);
    std::copy(o.data.begin(), o.data.end(), out.begin());
#pragma omp critical(layers_as_device)
    {
      ++heads_run;
      if (jobs.size() < 2) jobs.push_back(job);
    }
    return {cpu.events().overflows, cpu.events().saturations, 0};
  }
  DeviceResult heads(const AttentionLayerJob& job, std::span<float> out) override {
    ++layers;
    return AttentionDevice::heads(job, out);  // head by head, from the layer's packed operands
  }
};

TEST(AttentionDevice, HeadsHandedToADeviceGiveTheCpuForward) {
  const std::string root = LPSIM_SOURCE_DIR;
  const std::vector<test::DeviceCase> cases = {
      {"gpt2-tiny", "autocast-bf16", true},
      {"llama-tiny", "autocast-bf16", true},  // RoPE, GQA, Llama's multiplied scale
      {"tiny-vit", root + "/cuda/plans/attention-overflow.toml", true},  // overflows in the scale store
      {"gpt2-tiny", "pure-fp16", true},
      {"gpt2-tiny", "mxfp8", true},  // block scaling is on the linear layers only
      {"gpt2-tiny", "fp64", false},  // fp64 maths: not a float format
      {"gpt2-tiny", "autocast-bf16+flash", false},
      {"gpt2-tiny", "autocast-bf16", false, [](PrecisionPlan& p) { p[Op::score].scaling = true; }},
      {"gpt2-tiny", "autocast-bf16", false, [](PrecisionPlan& p) { p[Op::pv].blocks = block_scheme("mxfp8-e4m3"); }},
      {"gpt2-tiny", "autocast-bf16", false, [](PrecisionPlan& p) { p[Op::softmax].rounding = Rounding::toward_zero; }},
      {"gpt2-tiny", "autocast-bf16", false, [](PrecisionPlan& p) { p[Op::scale].out_scaling = OutputScaling::current; }},
      {"gpt2-tiny", "autocast-bf16", false, [](PrecisionPlan& p) { p[Op::softmax].compute = parse_format("fp64"); }},
      // GQA with casts of Q and K to a 4-bit format that clamps above 0.47: each key head's clamps count once per query head, as on
      // the CPU, where every head prepares its key head again
      {"llama-tiny", "autocast-bf16", true, [](PrecisionPlan& p) { p[Op::score].gemm->input = parse_format("p4:emax-2:emin-20:sat"); }},
  };
  for (const test::DeviceCase& c : cases) {
    std::unique_ptr<LayersAsDevice> device;
    const ModelConfig cfg = test::expect_same_forward(c, 3, [&](EmulatedBackend& be, const PrecisionPlan& plan) {
      device = std::make_unique<LayersAsDevice>(plan);
      be.use_attention_device(device.get());
    });
    EXPECT_EQ(device->heads_run, c.taken ? long(cfg.heads) * cfg.depth : 0) << c.model << " under " << c.plan;
    EXPECT_EQ(device->layers, c.taken ? cfg.depth : 0) << c.model << " under " << c.plan;
    if (c.taken && c.plan == "autocast-bf16" && c.model == "gpt2-tiny") {
      const AttentionHeadJob& job = device->jobs.at(0);
      const PrecisionPlan plan = load_plan(c.plan);
      EXPECT_EQ(job.rows, cfg.tokens);
      EXPECT_EQ(job.keys, cfg.tokens);
      EXPECT_EQ(job.width, cfg.head_width());
      EXPECT_TRUE(job.causal);
      EXPECT_TRUE(job.divide);
      EXPECT_EQ(job.scale_constant, double(float(std::sqrt(double(cfg.head_width())))));
      EXPECT_TRUE(job.softmax_compute.to_float);             // autocast: softmax in fp32
      EXPECT_FALSE(job.pv_input.to_float);                    // P cast to bf16 for its GEMM
      EXPECT_EQ(job.pv_input.format.precision, formats::bf16.precision);
      EXPECT_TRUE(job.score.output == plan[Op::score].out);  // no epilogue: rounded straight to out
    }
  }
}

// Under a plan that rounds stochastically somewhere (here the FFN's up product) the heads go to the device one by
// one, each rotated just before it as on the CPU: rotating all first would renumber the random streams.
TEST(AttentionDevice, LayersGoWholeUnlessThePlanRoundsStochastically) {
  for (const bool stochastic : {false, true}) {
    const test::DeviceCase c{"llama-tiny", "autocast-bf16", true, [&](PrecisionPlan& p) {
                               if (stochastic) p[Op::ffn_up].rounding = Rounding::stochastic;
                             }};
    std::unique_ptr<LayersAsDevice> device;
    const ModelConfig cfg = test::expect_same_forward(c, 5, [&](EmulatedBackend& be, const PrecisionPlan& plan) {
      device = std::make_unique<LayersAsDevice>(plan);
      be.use_attention_device(device.get());
    });
    EXPECT_EQ(device->heads_run, long(cfg.heads) * cfg.depth) << stochastic;
    EXPECT_EQ(device->layers, stochastic ? 0 : cfg.depth) << stochastic;
  }
}

}  // namespace
// A study runs its emulated forward with the devices StudyOptions::on_backend attaches (`lpsim-cuda run` gives it
// the GPU's): the heads reach the device, and the measured errors are the CPU-only study's.
TEST(AttentionDevice, StudiesRunWithTheDevicesTheCallerAttaches) {
  const ModelConfig cfg = load_model_config(std::string(LPSIM_SOURCE_DIR) + "/models/llama-tiny.toml");
  const PrecisionPlan plan = plan_preset("autocast-bf16");
  StudyOptions o;
  o.reference = "fp64", o.check_reference = false, o.seed = 2;
  const StudyResult cpu = run_study(cfg, plan, o);
  LayersAsDevice device(plan);
  o.on_backend = [&](EmulatedBackend& be) { be.use_attention_device(&device); };
  const StudyResult with_device = run_study(cfg, plan, o);
  EXPECT_EQ(device.layers, cfg.depth);
  ASSERT_EQ(cpu.taps.size(), with_device.taps.size());
  for (std::size_t t = 0; t < cpu.taps.size(); ++t) {
    EXPECT_EQ(cpu.taps[t].rel_fro, with_device.taps[t].rel_fro) << t;
    EXPECT_EQ(cpu.taps[t].max_rel, with_device.taps[t].max_rel) << t;
    EXPECT_EQ(cpu.taps[t].overflows + cpu.taps[t].saturations,
              with_device.taps[t].overflows + with_device.taps[t].saturations) << t;
  }
}

}  // namespace lpsim
