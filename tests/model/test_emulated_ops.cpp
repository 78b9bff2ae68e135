// The emulated backend, operation by operation, against hand-written float arithmetic that does what the plan
// says a GPU kernel does (float operations, fmaf, _Float16 conversions, bfloat16 by bit manipulation): the bits
// must agree exactly. Also the range events and the determinism of stochastic rounding.
#include <gtest/gtest.h>
#include <omp.h>

#include <bit>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "lpsim/format/block_scale.hpp"
#include "lpsim/format/round_scalar.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/reference/forward_error.hpp"

namespace lpsim {
namespace {

float to_bf16(float x) {  // round to nearest even on the bit pattern (finite inputs)
  std::uint32_t b = std::bit_cast<std::uint32_t>(x);
  b += 0x7fff + ((b >> 16) & 1);
  return std::bit_cast<float>(b & 0xffff0000u);
}
float to_fp16(float x) { return static_cast<float>(static_cast<_Float16>(x)); }

Matrix<double> random_matrix(int r, int c, std::uint64_t seed, double scale) {
  Matrix<double> m(r, c);
  for (std::size_t i = 0; i < m.size(); ++i) m.data[i] = double(float(scale * normal_at(seed, 5, i)));
  return m;
}

TEST(EmulatedOps, LayerNormInFp32IsTheFloatKernel) {
  EmulatedBackend be(plan_preset("autocast-fp16"));
  const int n = 7, d = 48;
  const Matrix<double> x = random_matrix(n, d, 1, 4.0);
  NormWeights<double> w{as_vector(random_matrix(1, d, 2, 1.0).data), as_vector(random_matrix(1, d, 3, 0.5).data)};
  const double eps = 1e-5;
  const Matrix<double> y = layers::norm(be, NormKind::layernorm, x, w, eps);
  const float eps_f = float(eps);
  for (int i = 0; i < n; ++i) {
    float s = float(x(i, 0));
    for (int j = 1; j < d; ++j) s = s + float(x(i, j));
    const float mean = s / float(d);
    std::vector<float> c(d);
    for (int j = 0; j < d; ++j) c[j] = float(x(i, j)) - mean;
    float q = c[0] * c[0];
    for (int j = 1; j < d; ++j) q = std::fma(c[j], c[j], q);
    const float var = q / float(d);
    const float rstd = float(1.0 / std::sqrt(double(var + eps_f)));  // correctly rounded rsqrt, the model's choice
    for (int j = 0; j < d; ++j) {
      const float want = (c[j] * rstd) * float(w.gamma[j]) + float(w.beta[j]);
      ASSERT_EQ(y(i, j), double(want)) << i << "," << j;
    }
  }
}

TEST(EmulatedOps, SoftmaxInFp32IsTheFloatKernel) {
  EmulatedBackend be(plan_preset("autocast-bf16"));
  const Matrix<double> s = random_matrix(9, 9, 4, 6.0);
  for (bool causal : {false, true}) {
    const Matrix<double> p = layers::softmax(be, s, causal);
    for (int i = 0; i < s.rows; ++i) {
      const int valid = causal ? i + 1 : s.cols;
      float m = float(s(i, 0));
      for (int j = 1; j < valid; ++j) m = std::max(m, float(s(i, j)));
      std::vector<float> e(valid);
      for (int j = 0; j < valid; ++j) e[j] = float(std::exp(double(float(s(i, j)) - m)));
      float z = e[0];
      for (int j = 1; j < valid; ++j) z = z + e[j];
      for (int j = 0; j < s.cols; ++j) ASSERT_EQ(p(i, j), j < valid ? double(e[j] / z) : 0.0) << i << "," << j;
    }
  }
}

// A linear layer under autocast: operands cast to half, fp32 accumulation with fma in order, bias (a half value)
// added in fp32, one rounding to half. Without bias (the score GEMM) the fp32 sum is rounded to half directly.
TEST(EmulatedOps, AutocastLinearIsTheFloatKernel) {
  for (const char* preset : {"autocast-fp16", "autocast-bf16"}) {
    const bool half = std::string(preset) == "autocast-fp16";
    auto narrow = [&](float v) { return half ? to_fp16(v) : to_bf16(v); };
    EmulatedBackend be(plan_preset(preset));
    const int m = 5, k = 37, n = 11;
    const Matrix<double> a = random_matrix(m, k, 6, 3.0), b = random_matrix(k, n, 7, 0.3);
    const std::vector<double> bias = as_vector(random_matrix(1, n, 8, 0.5).data);
    const Matrix<double> with_bias = be.gemm(Op::qkv, a, b, &bias);
    const Matrix<double> without = be.gemm(Op::score, a, b, nullptr);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        float acc = narrow(float(a(i, 0))) * narrow(float(b(0, j)));
        for (int l = 1; l < k; ++l) acc = std::fma(narrow(float(a(i, l))), narrow(float(b(l, j))), acc);
        ASSERT_EQ(without(i, j), double(narrow(acc))) << preset << " " << i << "," << j;
        ASSERT_EQ(with_bias(i, j), double(narrow(acc + narrow(float(bias[j]))))) << preset << " " << i << "," << j;
      }
  }
}

// fp8: per-tensor power-of-two scales put each operand's largest magnitude in (224, 448]; the product is
// unscaled exactly in fp32 before the bias.
TEST(EmulatedOps, Fp8LinearScalesByPowersOfTwo) {
  EmulatedBackend be(plan_preset("fp8-e4m3"));
  Matrix<double> a(1, 2), b(2, 1);
  a.data = {0.75, -0.1};  // amax 0.75: scale 2^9 = 512 takes it to 384
  b.data = {3.0, 0.5};    // amax 3: scale 2^7 = 128 takes it to 384
  const Matrix<double> c = be.gemm(Op::ffn_up, a, b, nullptr);
  // e4m3 of 0.1*512 = 51.2 is 52 (step 4 in [32, 64)), so the result is (384*384 - 52*64) / 2^16, then bf16.
  const double exact = (384.0 * 384.0 - 52.0 * 64.0) / 65536.0;
  EXPECT_EQ(c(0, 0), double(to_bf16(float(exact))));
}

TEST(EmulatedOps, OverflowAndSaturationAreCountedNotThrown) {
  EmulatedBackend be(plan_preset("pure-fp16"));
  Matrix<double> x(1, 4);
  x.data = {1e5, -7e4, 65519.0, 1.0};  // 65520 and above overflow in fp16; 65519 rounds to 65504
  be.store(Op::residual, x);
  EXPECT_TRUE(std::isinf(x.data[0]) && std::isinf(x.data[1]));
  EXPECT_EQ(x.data[2], 65504.0);
  EXPECT_EQ(be.events().overflows, 2);
  EXPECT_EQ(be.events().saturations, 0);

  PrecisionPlan sat = plan_preset("fp32");
  sat[Op::act].out = parse_format("e4m3:sat");
  EmulatedBackend be2(sat);
  Matrix<double> y(1, 3);
  y.data = {1000.0, -500.0, 3.0};
  be2.store(Op::act, y);
  EXPECT_EQ(y.data[0], 448.0);
  EXPECT_EQ(y.data[1], -448.0);
  EXPECT_EQ(be2.events().saturations, 2);
  EXPECT_EQ(be2.events().overflows, 0);
}

// A whole forward whose activations overflow fp16 finishes, and the study reports the Inf/NaN it produced.
TEST(EmulatedOps, OverflowingForwardIsAFindingNotACrash) {
  ModelConfig c;
  c.width = 16, c.heads = 2, c.ffn = 32, c.depth = 2, c.tokens = 6;
  c.input.scale = 3e4;  // pure fp16 residual stream: x + attention(x) leaves the range
  c.init.scale = 4.0;
  StudyOptions o;
  o.check_reference = false;
  const StudyResult r = run_study(c, plan_preset("pure-fp16"), o);
  long nonfinite = 0;
  for (const auto& t : r.taps) nonfinite += t.nonfinite;
  EXPECT_GT(r.events.overflows, 0);
  EXPECT_GT(nonfinite, 0);
}

TEST(EmulatedOps, StochasticRoundingIsTheSameAtAnyThreadCount) {
  ModelConfig c;
  c.width = 32, c.heads = 2, c.ffn = 64, c.depth = 2, c.tokens = 9;
  PrecisionPlan plan = plan_preset("pure-bf16");
  for (Op op : all_ops) plan[op].rounding = Rounding::stochastic;
  const Weights<double> w = make_weights(c, 3);
  const ModelInput<double> in = make_input(c, 3);
  auto run = [&](int threads, std::uint64_t seed) {
    omp_set_num_threads(threads);
    EmulatedBackend be(plan, seed);
    return emulated_taps(be, c, w, in);
  };
  const auto one = run(1, 11), two = run(2, 11), other = run(2, 12);
  omp_set_num_threads(omp_get_num_procs());
  for (std::size_t t = 0; t < one.size(); ++t) ASSERT_EQ(one[t].data, two[t].data) << "tap " << t;
  EXPECT_NE(one.back().data, other.back().data);  // the seed matters
}

// The layers' row loops, attention's heads and the backend's conversion passes run on all threads (issue 18) for
// plans without stochastic rounding: every tap bit for bit and every range event count the same as on one thread,
// for shapes long enough to take the parallel path (>= 8192 elements), on encoder, decoder and Llama (grouped
// query) models, with fp8 overflow counts, saturating formats, gelu chains, block-scaled products and the flash
// kernel.
TEST(EmulatedOps, ParallelRowsGiveTheSameBitsAndEvents) {
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(LPSIM_SOURCE_DIR);
  struct Case {
    const char* model;
    const char* plan;
  };
  const Case cases[] = {{"models/tiny-vit.toml", "autocast-bf16"}, {"models/tiny-vit.toml", "fp8-e4m3"},
                        {"models/gpt2-tiny.toml", "pure-fp16"},     {"models/llama-tiny.toml", "autocast-bf16"},
                        {"models/llama-tiny.toml", "pure-bf16"},    {"models/gpt2-tiny.toml", "autocast-fp16+flash"},
                        {"models/tiny-vit.toml", "mxfp8"},          {"models/llama-tiny.toml", "nvfp4"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.model) + " " + c.plan);
    const ModelConfig cfg = load_model_config(c.model);
    const Weights<double> w = make_weights(cfg, 5);
    ModelInput<double> in = make_input(cfg, 5);
    if (std::string(c.plan) == "fp8-e4m3")  // large inputs: overflows and saturations to count
      for (double& v : in.x.data) v *= 300;
    auto run = [&](int threads) {
      omp_set_num_threads(threads);
      EmulatedBackend be(plan_preset(c.plan));
      EXPECT_TRUE(be.rows_in_parallel());
      EXPECT_TRUE(be.heads_in_parallel());
      Taps<double> taps = emulated_taps(be, cfg, w, in);
      return std::make_pair(taps, be.events());
    };
    const auto [one, events_one] = run(1);
    const auto [two, events_two] = run(2);
    omp_set_num_threads(omp_get_num_procs());
    ASSERT_EQ(one.size(), two.size());
    for (std::size_t t = 0; t < one.size(); ++t) {
      ASSERT_EQ(one[t].data.size(), two[t].data.size());
      for (std::size_t i = 0; i < one[t].data.size(); ++i)
        ASSERT_EQ(std::bit_cast<std::uint64_t>(one[t].data[i]), std::bit_cast<std::uint64_t>(two[t].data[i]))
            << "tap " << t << " element " << i;
    }
    EXPECT_EQ(events_one.overflows, events_two.overflows);
    EXPECT_EQ(events_one.saturations, events_two.saturations);
  }
  std::filesystem::current_path(cwd);
}

TEST(EmulatedOps, StochasticPlansRunTheirRowsSerially) {
  PrecisionPlan plan = plan_preset("pure-bf16");
  EXPECT_TRUE(EmulatedBackend(plan).rows_in_parallel());
  plan[Op::act].rounding = Rounding::stochastic;
  EXPECT_FALSE(EmulatedBackend(plan).rows_in_parallel());
  plan = plan_preset("pure-bf16");
  plan[Op::ffn_up].gemm = parse_policy("in=bf16,acc=fp32,round=sr");
  EXPECT_FALSE(EmulatedBackend(plan).rows_in_parallel());
  EXPECT_FALSE(EmulatedBackend(plan).heads_in_parallel());
}

// Heads share threads only where no call depends on the ones before it: an amax history per call (current,
// delayed, geometry scaling), a stochastic block scheme's stream per call, or a GEMM device's buffers.
TEST(EmulatedOps, HeadsRunInParallelOnlyWithoutPerCallState) {
  EXPECT_TRUE(EmulatedBackend(plan_preset("autocast-bf16")).heads_in_parallel());
  for (OutputScaling s : {OutputScaling::current, OutputScaling::delayed, OutputScaling::geometry}) {
    PrecisionPlan plan = plan_preset("fp8-e4m3");
    plan[Op::act].out_scaling = s;
    EXPECT_FALSE(EmulatedBackend(plan).heads_in_parallel()) << int(s);
  }
  PrecisionPlan plan = plan_preset("mxfp8");
  EXPECT_TRUE(EmulatedBackend(plan).heads_in_parallel());
  for (Op op : all_ops)
    if (plan[op].blocks) plan[op].blocks = block_scheme("mxfp4-sr");
  EXPECT_FALSE(EmulatedBackend(plan).heads_in_parallel());
  struct NoDevice : GemmDevice {
    bool gemm(const AccumPolicy&, int, int, int, std::span<const double>, std::span<const double>, std::span<double>,
              const StochasticStream&, std::uint64_t) override { return false; }
    bool gemm(const AccumPolicy&, int, int, int, std::span<const float>, std::span<const float>, std::span<float>,
              const StochasticStream&, std::uint64_t) override { return false; }
  } device;
  EmulatedBackend be(plan_preset("autocast-bf16"));
  be.use_gemm_device(&device);
  EXPECT_FALSE(be.heads_in_parallel());
  struct ConcurrentDevice : NoDevice {
    bool concurrent() const override { return true; }
  } concurrent;
  be.use_gemm_device(&concurrent);
  EXPECT_TRUE(be.heads_in_parallel());
}

// A GEMM device may keep a weight by its id (GemmOptions::b_id): the backend must give the same id only with the
// same values, in every forward it runs, never give an activation an id, and tell the device when the weights go.
// A recording device (it computes nothing, so the CPU does) checks that on two forwards of two backends.
struct Recorder : GemmDevice {
  std::map<std::uint64_t, std::vector<double>> values;  // id -> b of its first call
  std::set<std::uint64_t> forgotten;
  long calls = 0, with_id = 0, changed = 0;
  template <class T>
  bool record(std::span<const T> b, std::uint64_t id) {
    ++calls;
    if (id == 0) return false;
    ++with_id;
    const std::vector<double> now(b.begin(), b.end());
    const auto [it, fresh] = values.emplace(id, now);
    changed += !fresh && it->second != now;
    return false;
  }
  bool gemm(const AccumPolicy&, int, int, int, std::span<const double>, std::span<const double> b,
            std::span<double>, const StochasticStream&, std::uint64_t id) override { return record(b, id); }
  bool gemm(const AccumPolicy&, int, int, int, std::span<const float>, std::span<const float> b,
            std::span<float>, const StochasticStream&, std::uint64_t id) override { return record(b, id); }
  void forget(std::uint64_t id) override { forgotten.insert(id); }
};

TEST(EmulatedOps, GemmDeviceSeesOneIdPerWeightWithTheSameValues) {
  Recorder device;
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(LPSIM_SOURCE_DIR);
  const ModelConfig cfg = load_model_config("models/gpt2-tiny.toml");
  std::filesystem::current_path(cwd);
  const Weights<double> w = make_weights(cfg, 3);
  const ModelInput<double> in = make_input(cfg, 3), other = make_input(cfg, 4);
  std::set<std::uint64_t> first_backend;
  {
    EmulatedBackend be(plan_preset("autocast-bf16"));
    be.use_gemm_device(&device);
    forward(be, cfg, w, in);
    const std::size_t ids = device.values.size();
    const long calls = device.calls, with_id = device.with_id;
    forward(be, cfg, w, other);  // new activations, the same weights
    EXPECT_EQ(device.values.size(), ids) << "the second forward gave a weight a new id";
    EXPECT_EQ(device.calls, 2 * calls);
    EXPECT_EQ(device.with_id, 2 * with_id);
    // Every linear layer's weight has an id (q, k, v, out, two MLP matrices per block, the LM head if any); the
    // attention products (two per head) have none.
    EXPECT_EQ(with_id, 6L * cfg.depth + (cfg.lm_head ? 1 : 0));
    EXPECT_EQ(calls - with_id, 2L * cfg.heads * cfg.depth);
    for (const auto& [id, values] : device.values) first_backend.insert(id);
    EXPECT_TRUE(device.forgotten.empty());
  }
  EXPECT_EQ(device.forgotten, first_backend);  // all of them, when the backend went
  EXPECT_EQ(device.changed, 0);
  EmulatedBackend again(plan_preset("autocast-bf16"));
  again.use_gemm_device(&device);
  forward(again, cfg, w, in);
  EXPECT_EQ(device.values.size(), 2 * first_backend.size()) << "a new backend's weights need ids of their own";
  EXPECT_EQ(device.changed, 0);
}

// A plan that stores the parameters in its dtype (pure-bf16) rounds them once per backend: a second forward finds
// the same rounded weights (no new ids for the device) and gives the same bits; other weights drop the copy and
// everything cached from it (all forgotten), and give what a fresh backend gives.
TEST(EmulatedOps, StoredParamsAreRoundedOncePerBackend) {
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(LPSIM_SOURCE_DIR);
  const ModelConfig cfg = load_model_config("models/gpt2-tiny.toml");
  std::filesystem::current_path(cwd);
  const Weights<double> w = make_weights(cfg, 3), other = make_weights(cfg, 9);
  const ModelInput<double> in = make_input(cfg, 3);
  auto same = [](const Taps<double>& a, const Taps<double>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t t = 0; t < a.size(); ++t)
      for (std::size_t i = 0; i < a[t].data.size(); ++i)
        if (std::bit_cast<std::uint64_t>(a[t].data[i]) != std::bit_cast<std::uint64_t>(b[t].data[i])) return false;
    return true;
  };
  Recorder device;
  EmulatedBackend be(plan_preset("pure-bf16"));
  be.use_gemm_device(&device);
  const Taps<double> first = emulated_taps(be, cfg, w, in);
  const std::size_t ids = device.values.size();
  EXPECT_GT(ids, 0u);
  EXPECT_TRUE(same(first, emulated_taps(be, cfg, w, in)));
  EXPECT_EQ(device.values.size(), ids) << "the second forward rounded the parameters again";
  EXPECT_TRUE(device.forgotten.empty());
  const Taps<double> moved_on = emulated_taps(be, cfg, other, in);
  EXPECT_EQ(device.forgotten.size(), ids);
  EmulatedBackend fresh(plan_preset("pure-bf16"));
  EXPECT_TRUE(same(moved_on, emulated_taps(fresh, cfg, other, in)));
  EXPECT_FALSE(same(moved_on, first));
  EXPECT_EQ(device.changed, 0);
}

}  // namespace
}  // namespace lpsim

namespace lpsim {
namespace {

// A bf16 store (every autocast-bf16 activation) rounds each value once: a double that no float holds goes to the
// rounding core, not through float (1 + 2^-8 + 2^-30 becomes the midpoint 1 + 2^-8 as a float, which then rounds
// to even, 1, where the value itself rounds up to 1 + 2^-7), and floats take the bit trick; overflows are counted.
TEST(EmulatedOps, Bf16StoreRoundsEveryValueOnce) {
  EmulatedBackend be(plan_preset("autocast-bf16"));
  ASSERT_TRUE(be.plan()[Op::act].out.spec == formats::bf16);
  std::mt19937_64 rng(17);
  std::normal_distribution<double> normal(0.0, 10.0);
  Matrix<double> m(64, 100);
  for (double& x : m.data) x = normal(rng);  // doubles, almost none of them floats
  for (int j = 0; j < 50; ++j) m.data[std::size_t(j)] = double(float(m.data[std::size_t(j)]));  // and floats
  m.data[100] = 1 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30);
  m.data[101] = 3.4e38;  // above the midpoint of bf16's largest value and 2^128: infinity, an overflow
  const Matrix<double> in = m;
  be.store(Op::act, m);
  for (std::size_t i = 0; i < m.size(); ++i)
    ASSERT_EQ(std::bit_cast<std::uint64_t>(m.data[i]),
              std::bit_cast<std::uint64_t>(round_to(in.data[i], formats::bf16, Rounding::nearest_even)))
        << "value " << in.data[i];
  EXPECT_EQ(m.data[100], 1 + std::ldexp(1.0, -7));
  EXPECT_EQ(be.events().overflows, 1);
}

// A linear layer's activation cast to a narrower input format (fp16: rounded after the cast to float, in the same
// pass) counts each value the cast made infinite once; the product of an infinite operand counts nothing more.
TEST(EmulatedOps, NarrowOperandCastCountsItsOverflows) {
  EmulatedBackend be(plan_preset("pure-fp16"));
  ASSERT_TRUE(be.plan()[Op::ffn_up].gemm->input.spec == formats::fp16);
  Matrix<double> x = random_matrix(70, 64, 3, 1.0), w = random_matrix(64, 32, 4, 0.1);
  x(2, 5) = 1e5, x(40, 0) = -7e4, x(69, 63) = 65520;  // 65520 and above overflow in fp16
  x(10, 10) = 65519;  // rounds to 65504: no event
  be.linear(Op::ffn_up, x, w, nullptr);
  EXPECT_EQ(be.events().overflows, 3);
  EXPECT_EQ(be.events().saturations, 0);
}

// layers::store_computed: values that came out of compute(op, ·) stored as store() stores them, against round_to
// of each computed value to the op's out format. Where out is compute's format the emulated backend makes no pass;
// a skip where the formats differ (a narrower out, a saturating one) fails the values or the events.
TEST(EmulatedOps, StoreOfComputedValuesIsTheStore) {
  struct Case {
    const char* what;
    PrecisionPlan plan;
    Op op;
  };
  std::vector<Case> cases = {{"autocast residual: fp32 both", plan_preset("autocast-bf16"), Op::residual},
                             {"autocast act: fp32 compute, bf16 out", plan_preset("autocast-bf16"), Op::act},
                             {"pure-fp16 act: fp16 both", plan_preset("pure-fp16"), Op::act}};
  PrecisionPlan narrow = plan_preset("fp32");
  narrow[Op::act].compute = parse_format("fp16");
  narrow[Op::act].out = parse_format("e4m3:sat");
  cases.push_back({"fp16 compute, saturating e4m3 out", narrow, Op::act});
  PrecisionPlan same = plan_preset("fp32");
  same[Op::norm].compute = same[Op::norm].out = parse_format("e4m3:sat");
  cases.push_back({"saturating e4m3 both", same, Op::norm});
  std::mt19937_64 rng(23);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    EmulatedBackend skipping(c.plan), storing(c.plan);
    Matrix<double> m(70, 130);
    for (double& x : m.data) x = std::ldexp(normal(rng), int(rng() % 40) - 20);  // 2^-20 .. 2^20: over and under
    for (double& x : m.data) x = skipping.compute(c.op, x);
    const Matrix<double> computed = m;
    Matrix<double> stored = m;
    storing.store(c.op, stored);
    const RangeEvents before = skipping.events();
    layers::store_computed(skipping, c.op, m);
    const FormatSpec& out = c.plan[c.op].out.spec;
    for (std::size_t i = 0; i < m.size(); ++i) {
      const double y = round_to(computed.data[i], out, Rounding::nearest_even);
      ASSERT_EQ(std::bit_cast<std::uint64_t>(m.data[i]), std::bit_cast<std::uint64_t>(y)) << computed.data[i];
      ASSERT_EQ(std::bit_cast<std::uint64_t>(m.data[i]), std::bit_cast<std::uint64_t>(stored.data[i]));
    }
    EXPECT_EQ(skipping.events().overflows - before.overflows, storing.events().overflows);
    EXPECT_EQ(skipping.events().saturations - before.saturations, storing.events().saturations);
  }
}

}  // namespace
}  // namespace lpsim
