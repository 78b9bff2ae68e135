// The host's side of the attention layer device's contract (attention_block_device.hpp), which CI can check
// without a GPU: a device that computes each layer by the CPU's own layers (a second backend without a device, from
// the job's operands alone) must leave every tap and range event of the forward as the CPU-only forward has them.
// That holds only if the backend hands over H rounded as the CPU path rounds it (and counts its cast once per
// projection), the rounded weights and biases, the rotary tables' rows, the heads' recipe and the grouping, and
// adds the device's events once. (The GPU's layers against the CPU's, bit for bit: lpsim-cuda emulate --check.)
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "lpsim/format/block_scale.hpp"
#include "lpsim/device/attention_block_device.hpp"
#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/layers.hpp"
#include "support/device_contract.hpp"

namespace lpsim {
namespace {

Matrix<double> matrix(int rows, int cols, std::span<const float> v) {
  Matrix<double> m(rows, cols);
  std::copy(v.begin(), v.end(), m.data.begin());
  return m;
}

std::vector<double> doubles(std::span<const float> v) { return {v.begin(), v.end()}; }

struct LayersAsBlockDevice : AttentionBlockDevice {
  PrecisionPlan plan;
  long layers = 0, normed = 0;  // layers run; of them, handed the stream to normalise
  std::vector<AttentionBlockJob> jobs;
  explicit LayersAsBlockDevice(PrecisionPlan p) : plan(std::move(p)) {}
  bool runs(const AccumPolicy&, const AccumPolicy&, const AccumPolicy&, const AccumPolicy&) const override {
    return true;
  }
  DeviceResult attention(const AttentionBlockJob& job, std::span<float> out) override {
    ++layers;
    normed += job.norm.has_value();
    if (jobs.size() < 1) jobs.push_back(job);
    ModelConfig cfg;  // what layers::attention reads of the model, from the job
    cfg.width = job.width, cfg.heads = job.heads, cfg.kv_heads = job.kv_heads, cfg.head_dim = job.head_width;
    cfg.tokens = job.rows, cfg.causal = job.head.causal;
    cfg.score_scale = job.head.divide ? ScoreScale::divide : ScoreScale::multiply;
    auto weight = [&](const WeightOperand& w, int rows, int cols) { return matrix(rows, cols, w.f); };
    LayerWeights<double> w;
    const int qw = job.heads * job.head_width, kw = job.kv_heads * job.head_width;
    w.wq = weight(job.wq, job.width, qw), w.wk = weight(job.wk, job.width, kw), w.wv = weight(job.wv, job.width, kw);
    w.wo = weight(job.wo, qw, job.width);
    w.bq = doubles(job.bq), w.bk = doubles(job.bk), w.bv = doubles(job.bv), w.bo = doubles(job.bo);
    Matrix<double> cos, sin;
    if (!job.rope_cos.empty()) {
      cos = Matrix<double>(job.rows, job.head_width), sin = Matrix<double>(job.rows, job.head_width);
      std::copy(job.rope_cos.begin(), job.rope_cos.end(), cos.data.begin());
      std::copy(job.rope_sin.begin(), job.rope_sin.end(), sin.data.begin());
    }
    EmulatedBackend cpu(plan);  // H is already rounded to qkv's input: casting it again adds no event
    Matrix<double> h = matrix(job.rows, job.width, job.h);
    if (job.norm) h = test::normed(cpu, *job.norm, h);  // the stream, normalised here
    const Matrix<double> y = layers::attention(cpu, cfg, w, h, cos, sin);
    std::copy(y.data.begin(), y.data.end(), out.begin());
    return {cpu.events().overflows, cpu.events().saturations, 0};
  }
};

TEST(AttentionBlockDevice, LayersHandedToADeviceGiveTheCpuForward) {
  const std::string root = LPSIM_SOURCE_DIR;
  auto clamping = [](Op op) {  // a 4-bit input format that clamps above 0.47: casts with range events
    return [op](PrecisionPlan& p) { p[op].gemm->input = parse_format("p4:emax-2:emin-20:sat"); };
  };
  const std::vector<test::DeviceCase> cases = {
      {"gpt2-tiny", "autocast-bf16", true},  // biases on every projection
      {"llama-tiny", "autocast-bf16", true},  // RoPE, GQA, Llama's multiplied scale, no biases
      {"tiny-vit", root + "/cuda/plans/attention-overflow.toml", true},  // overflows in the scale store
      {"gpt2-tiny", "pure-fp16", true},
      // RMSNorm computed in fp32 and stored in bf16, once before a gain other than 1 (norm_cast) and once after
      {"llama-tiny", "autocast-bf16", true, [](PrecisionPlan& p) { p[Op::norm].out = parse_format("bf16"); }, true,
       [](ModelConfig& m) { m.init.norm_gain = 1.37; }},
      {"llama-tiny", "autocast-bf16", true, clamping(Op::qkv)},    // H's cast (on the device, after its norm)
      // H's cast on the host (a norm the device does not take): counted once per projection
      {"llama-tiny", "autocast-bf16", true, [&](PrecisionPlan& p) {
         clamping(Op::qkv)(p);
         p[Op::norm].rounding = Rounding::toward_zero;
       }, false},
      {"llama-tiny", "autocast-bf16", true, clamping(Op::score)},  // K's: once per query head of its group
      {"llama-tiny", "autocast-bf16", true, clamping(Op::out_proj)},  // the heads' output cast
      {"post-ln", "autocast-bf16", true, [](PrecisionPlan&) {}, false},  // post-LN: the norm comes after the branch
      {"llama-tiny", "autocast-bf16", true, [](PrecisionPlan& p) { p[Op::norm].rounding = Rounding::toward_zero; }, false},
      {"gpt2-tiny", "mxfp8", false},  // block scaling on the projections
      {"gpt2-tiny", "fp64", false},
      {"gpt2-tiny", "autocast-bf16+flash", false},
      {"llama-tiny", "autocast-bf16", false, [](PrecisionPlan& p) { p[Op::rope].rounding = Rounding::toward_zero; }},
      {"llama-tiny", "autocast-bf16", false, [](PrecisionPlan& p) { p[Op::ffn_up].rounding = Rounding::stochastic; }},
      {"gpt2-tiny", "autocast-bf16", false, [](PrecisionPlan& p) { p[Op::qkv].scaling = true; }},
      {"gpt2-tiny", "autocast-bf16", false, [](PrecisionPlan& p) { p[Op::out_proj].compute = parse_format("fp64"); }},
      {"gpt2-tiny", "autocast-bf16", false, [](PrecisionPlan& p) { p[Op::pv].blocks = block_scheme("mxfp8-e4m3"); }},
  };
  for (const test::DeviceCase& c : cases) {
    std::unique_ptr<LayersAsBlockDevice> device;
    const ModelConfig cfg = test::expect_same_forward(c, 3, [&](EmulatedBackend& be, const PrecisionPlan& plan) {
      device = std::make_unique<LayersAsBlockDevice>(plan);
      be.use_attention_block_device(device.get());
    });
    EXPECT_EQ(device->layers, c.taken ? cfg.depth : 0) << c.model << " under " << c.plan;
    // Pre-LN models hand the stream over with the norm, unless the plan's norm class is one the device cannot take.
    EXPECT_EQ(device->normed, c.taken && c.normed ? cfg.depth : 0) << c.model << " under " << c.plan;
    if (c.taken && c.plan == "autocast-bf16" && c.model == "llama-tiny" && !device->jobs.empty()) {
      const AttentionBlockJob& job = device->jobs[0];
      EXPECT_EQ(job.heads, cfg.heads);
      EXPECT_EQ(job.kv_heads, cfg.kv_head_count());
      EXPECT_LT(job.kv_heads, job.heads);  // the case is one of grouped queries
      EXPECT_EQ(job.rope_cos.size(), std::size_t(cfg.tokens) * cfg.head_width());
      EXPECT_FALSE(job.head.divide);
      EXPECT_TRUE(job.qkv[0].output == load_plan(c.plan)[Op::qkv].out);      // no bias: straight to out
      EXPECT_TRUE(job.qkv[1].output == load_plan(c.plan)[Op::qkv].compute);  // a bias: the epilogue's compute
    }
  }
}

}  // namespace
}  // namespace lpsim
