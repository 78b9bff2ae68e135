// EmulatedBackend's adapter to the accelerators (the device room's interfaces, include/lpsim/device/): which plans
// and blocks a device may take, and the jobs handed to it, built from the plan, the model and the backend's
// rounded weights. The CPU's roundings, caches and passes stay in emulated_backend.cpp.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "emulation/host_buffers.hpp"
#include "lpsim/emulation/emulated_backend.hpp"

namespace lpsim {

using namespace host_buffers;

// The plan allows a device to take the op's elementwise or product steps: round to nearest even, no scaling of
// outputs or operands, no block scaling, every format one a float holds.
static bool device_can_take(const OpPrecision& p) {
  return p.rounding == Rounding::nearest_even && p.out_scaling == OutputScaling::none && !p.scaling && !p.blocks &&
         !p.weight_blocks && fits_float(p.compute.spec) && fits_float(p.out.spec) &&
         (!p.gemm || fits_float(p.gemm->input.spec));
}

void EmulatedBackend::use_feed_forward_device(FeedForwardDevice* device) {
  ffn_device_ = device;
  ffn_recipe_.reset();
  if (!device) return;
  for (Op op : {Op::ffn_up, Op::act, Op::ffn_down})
    if (!device_can_take(plan_[op])) return;
  FeedForwardJob job;
  job.up = *plan_[Op::ffn_up].gemm, job.down = *plan_[Op::ffn_down].gemm;
  job.up.output_rounding = job.down.output_rounding = Rounding::nearest_even;
  for (const bool bias : {false, true}) {  // product(): with a bias the result is taken in compute
    job.up.output = bias ? plan_[Op::ffn_up].compute : plan_[Op::ffn_up].out;
    job.down.output = bias ? plan_[Op::ffn_down].compute : plan_[Op::ffn_down].out;
    if (!device->runs(job.up, job.down)) return;
  }
  job.up_input = element_rounding(plan_[Op::ffn_up].gemm->input.spec);
  job.up_compute = element_rounding(plan_[Op::ffn_up].compute.spec);
  job.up_out = element_rounding(plan_[Op::ffn_up].out.spec);
  job.down_input = element_rounding(plan_[Op::ffn_down].gemm->input.spec);
  job.down_compute = element_rounding(plan_[Op::ffn_down].compute.spec);
  job.down_out = element_rounding(plan_[Op::ffn_down].out.spec);
  job.act.compute = element_rounding(plan_[Op::act].compute.spec);
  job.act.out = element_rounding(plan_[Op::act].out.spec);
  job.act.composite = plan_[Op::act].composite;
  job.act.sqrt2 = std::sqrt(2.0);
  job.act.sqrt_2_over_pi = std::sqrt(2.0 / 3.141592653589793238462643383279502884);  // layers::pi_as<double>
  ffn_recipe_ = std::move(job);
}

std::optional<Matrix<double>> EmulatedBackend::device_feed_forward(const ModelConfig& cfg, const LayerWeights<double>& w,
                                                                   const Matrix<double>& h,
                                                                   const NormWeights<double>* norm) {
  const bool gated = cfg.mlp == Mlp::gated;
  if (!ffn_recipe_ || h.empty() || (gated && (w.w3.empty() || !w.b1.empty()))) return std::nullopt;
  FeedForwardJob job = *ffn_recipe_;
  job.rows = h.rows, job.width = h.cols, job.hidden = w.w1.cols, job.gated = gated;
  job.act.kind = cfg.activation;
  job.act.chain = cfg.activation_chain && cfg.activation == Activation::gelu_tanh;
  // What linear(ffn_up, h, w1, b1) and linear(ffn_up, h, w3) prepare: h for each (range events).
  const std::optional<BlockInput> input = block_input(Op::ffn_up, gated ? 2 : 1, cfg, h, norm);
  if (!input) return std::nullopt;
  job.h = input->floats(), job.h_finite = input->prepared.finite, job.norm = input->norm;
  // What linear(ffn_up, h, w1, b1), (linear(ffn_up, h, w3)) and linear(ffn_down, u, w2, b2) do on the host first.
  auto view = [](const Operand& o) { return WeightOperand{o.f, o.d, o.id, o.finite}; };
  job.w1 = view(weight(Op::ffn_up, w.w1));
  if (gated) job.w3 = view(weight(Op::ffn_up, w.w3));
  job.w2 = view(weight(Op::ffn_down, w.w2));
  std::vector<float> b1, b2;
  auto bias = [&](Op op, const std::vector<double>& b, std::vector<float>& f, AccumPolicy& policy) {
    if (b.empty()) return;
    f = bias_floats(op, b);
    policy.output = plan_[op].compute;
  };
  job.up.output = plan_[Op::ffn_up].out, job.down.output = plan_[Op::ffn_down].out;
  bias(Op::ffn_up, w.b1, b1, job.up);
  bias(Op::ffn_down, w.b2, b2, job.down);
  job.b1 = b1, job.b2 = b2;
#pragma omp atomic
  gemm_calls_ += gated ? 3 : 2;  // the streams of the products
  const std::span<float> out = result_buffer(ResultUse::block, std::size_t(h.rows) * w.w2.cols);
  const DeviceResult r = ffn_device_->feed_forward(job, out);
  count_events(r.overflows, r.saturations);
  Matrix<double> y = from_floats(h.rows, w.w2.cols, out.data());
  tick(Op::ffn_up);
  return y;
}

// The part of every head's job the plan fixes, where its attention is the textbook kernel and the plan lets a device
// take every step of it (before asking a device whether it runs the products).
static std::optional<AttentionHeadJob> heads_recipe(const PrecisionPlan& plan) {
  if (plan.attention.kind != AttentionKernel::Kind::math) return std::nullopt;
  for (Op op : {Op::score, Op::scale, Op::softmax, Op::pv})
    if (!device_can_take(plan[op])) return std::nullopt;
  if (!plan[Op::softmax].reduce || !is_float_loop(*plan[Op::softmax].reduce)) return std::nullopt;
  AttentionHeadJob job;
  job.score = *plan[Op::score].gemm, job.pv = *plan[Op::pv].gemm;
  for (auto [policy, op] : {std::pair{&job.score, Op::score}, std::pair{&job.pv, Op::pv}}) {
    policy->output = plan[op].out;  // product() without epilogue: rounded straight to out
    policy->output_rounding = Rounding::nearest_even;
  }
  job.scale_compute = element_rounding(plan[Op::scale].compute.spec);
  job.scale_out = element_rounding(plan[Op::scale].out.spec);
  job.softmax_compute = element_rounding(plan[Op::softmax].compute.spec);
  job.softmax_out = element_rounding(plan[Op::softmax].out.spec);
  job.pv_input = element_rounding(plan[Op::pv].gemm->input.spec);
  return job;
}

void EmulatedBackend::use_attention_device(AttentionDevice* device) {
  attention_device_ = device;
  head_recipe_.reset();
  if (!device) return;
  std::optional<AttentionHeadJob> job = heads_recipe(plan_);
  if (job && device->runs(job->score, job->pv)) head_recipe_ = std::move(job);
}

AttentionHeadJob EmulatedBackend::head_job(AttentionHeadJob job, int rows, int keys, int width, bool causal,
                                           ScoreScale how) {
  job.rows = rows, job.keys = keys, job.width = width, job.causal = causal;
  job.divide = how == ScoreScale::divide;
  const double d = width;
  job.scale_constant = job.divide ? compute(Op::scale, std::sqrt(d)) : compute(Op::scale, 1 / std::sqrt(d));
  return job;
}

std::optional<Matrix<double>> EmulatedBackend::device_heads(std::span<const Matrix<double>> q,
                                                            std::span<const Matrix<double>> k,
                                                            std::span<const Matrix<double>> v, bool causal,
                                                            ScoreScale how) {
  if (!takes_heads() || q.empty() || k.empty() || k.size() != v.size() || q.size() % k.size() != 0) return std::nullopt;
  const int rows = q[0].rows, width = q[0].cols, keys = k[0].rows;
  if (rows == 0 || keys == 0 || width == 0) return std::nullopt;
  for (const Matrix<double>& m : q)
    if (m.rows != rows || m.cols != width || !all_floats(m.data)) return std::nullopt;
  for (std::size_t g = 0; g < k.size(); ++g)
    if (k[g].rows != keys || k[g].cols != width || v[g].rows != keys || v[g].cols != width || !all_floats(k[g].data) ||
        !all_floats(v[g].data))
      return std::nullopt;  // prepare() would take its double path
  const int heads = int(q.size()), kv = int(k.size()), group = heads / kv;
  // What device_head prepares per head, for all of them; packed head after head.
  const std::size_t qs = std::size_t(rows) * width, ks = std::size_t(keys) * width;
  std::vector<float> qf(heads * qs), ktf(kv * ks), vf(kv * ks);
  std::vector<char> qk_finite(heads), v_finite(heads), k_finite(kv), vg_finite(kv);
  Counts k_events, v_events;
  auto pack = [&](Op op, const Matrix<double>& m, float* to, char& finite, Counts* events) {
    const Operand o = prepare(op, m);
    std::copy(o.f.begin(), o.f.end(), to);
    finite = o.finite;
    if (!events) return;
#pragma omp atomic
    events->a += o.overflows;
#pragma omp atomic
    events->b += o.saturations;
  };
  parallel_for(heads + 2 * kv, true, [&](std::int64_t t) {
    const int i = int(t), g = i - heads, j = i - heads - kv;
    if (i < heads) pack(Op::score, q[i], qf.data() + i * qs, qk_finite[i], nullptr);
    else if (g < kv) pack(Op::score, transpose(k[g]), ktf.data() + g * ks, k_finite[g], &k_events);
    else pack(Op::pv, v[j], vf.data() + j * ks, vg_finite[j], &v_events);
  });
  for (int h = 0; h < heads; ++h) qk_finite[h] = qk_finite[h] && k_finite[h / group], v_finite[h] = vg_finite[h / group];
  // device_head prepares K and V once per query head: their casts' events count group times.
  count_events(long(group - 1) * (k_events.a + v_events.a), long(group - 1) * (k_events.b + v_events.b));
  AttentionLayerJob job;
  job.head = head_job(*head_recipe_, rows, keys, width, causal, how);
  job.heads = heads, job.group = group;
  job.q = qf, job.kt = ktf, job.v = vf, job.qk_finite = qk_finite, job.v_finite = v_finite;
#pragma omp atomic
  gemm_calls_ += std::uint64_t(heads) * (std::uint64_t(rows) + 2);  // as device_head, head by head
  const std::span<float> out = result_buffer(ResultUse::heads, std::size_t(heads) * qs);
  const DeviceResult r = attention_device_->heads(job, out);
  count_events(r.overflows, r.saturations);
  Matrix<double> all(rows, heads * width, uninitialized);
  parallel_for(rows, all.size() >= parallel_elements, [&](std::int64_t i) {
    double* row = all.data.data() + std::size_t(i) * all.cols;
    for (int h = 0; h < heads; ++h) {
      const float* from = out.data() + std::size_t(h) * qs + std::size_t(i) * width;
      for (int c = 0; c < width; ++c) row[h * width + c] = from[c];
    }
  });
  tick(Op::score);
  return all;
}

std::optional<Matrix<double>> EmulatedBackend::device_head(const Matrix<double>& q, const Matrix<double>& k,
                                                           const Matrix<double>& v, bool causal, ScoreScale how) {
  if (!head_recipe_ || q.cols != k.cols || v.cols != q.cols || k.rows != v.rows || q.empty() || k.empty()) return std::nullopt;
  if (!all_floats(q.data) || !all_floats(k.data) || !all_floats(v.data))
    return std::nullopt;  // prepare() would take its double path
  // What gemm(score, q, k^T), scale_scores, softmax and gemm(pv, p, v) would do on the host before the device's part.
  const Operand qa = prepare(Op::score, q), ka = prepare(Op::score, transpose(k)), va = prepare(Op::pv, v);
  AttentionHeadJob job = head_job(*head_recipe_, q.rows, k.rows, q.cols, causal, how);
  job.q = qa.f, job.kt = ka.f, job.v = va.f;
  job.qk_finite = qa.finite && ka.finite, job.v_finite = va.finite;
#pragma omp atomic
  gemm_calls_ += std::uint64_t(q.rows) + 2;  // the streams of the two products and of each row's sum
  const std::span<float> out = result_buffer(ResultUse::heads, std::size_t(q.rows) * v.cols);
  const DeviceResult r = attention_device_->head(job, out);
  count_events(r.overflows, r.saturations);
  Matrix<double> h = from_floats(q.rows, v.cols, out.data());
  tick(Op::score);
  return h;
}

void EmulatedBackend::use_attention_block_device(AttentionBlockDevice* device) {
  block_device_ = device;
  block_recipe_.reset();
  if (!device) return;
  const std::optional<AttentionHeadJob> head = heads_recipe(plan_);
  if (!head) return;
  for (Op op : {Op::qkv, Op::rope, Op::out_proj})
    if (!device_can_take(plan_[op])) return;
  AttentionBlockJob job;
  for (const bool bias : {false, true}) {  // product(): with a bias the result is taken in compute
    for (auto [policy, op] : {std::pair{&job.qkv[bias], Op::qkv}, std::pair{&job.out_proj[bias], Op::out_proj}}) {
      *policy = *plan_[op].gemm;
      policy->output = bias ? plan_[op].compute : plan_[op].out;
      policy->output_rounding = Rounding::nearest_even;
    }
    if (!device->runs(job.qkv[bias], head->score, head->pv, job.out_proj[bias])) return;
  }
  job.qkv_input = element_rounding(plan_[Op::qkv].gemm->input.spec);
  job.qkv_compute = element_rounding(plan_[Op::qkv].compute.spec);
  job.qkv_out = element_rounding(plan_[Op::qkv].out.spec);
  job.rope_compute = element_rounding(plan_[Op::rope].compute.spec);
  job.rope_out = element_rounding(plan_[Op::rope].out.spec);
  job.score_input = element_rounding(plan_[Op::score].gemm->input.spec);
  job.out_proj_input = element_rounding(plan_[Op::out_proj].gemm->input.spec);
  job.out_proj_compute = element_rounding(plan_[Op::out_proj].compute.spec);
  job.out_proj_out = element_rounding(plan_[Op::out_proj].out.spec);
  job.head = *head;
  block_recipe_ = std::move(job);
}

std::optional<Matrix<double>> EmulatedBackend::device_attention(const ModelConfig& cfg, const LayerWeights<double>& w,
                                                                const Matrix<double>& h, const Matrix<double>& rope_cos,
                                                                const Matrix<double>& rope_sin,
                                                                const NormWeights<double>* norm) {
  if (!block_recipe_ || stochastic_ || h.empty()) return std::nullopt;  // stochastic: see takes_heads
  if (cfg.qk_norm) return std::nullopt;  // the device's attention layer has no per-head norms: the host's path
  if (plan_.kv_cache.active()) return std::nullopt;  // the KV cache is the host's (the heads may still go)
  const int rows = h.rows, dh = cfg.head_width(), heads = cfg.heads, kv = cfg.kv_head_count();
  if (dh <= 0 || kv <= 0 || heads % kv != 0) return std::nullopt;
  if (w.wq.cols != heads * dh || w.wk.cols != kv * dh || w.wv.cols != kv * dh || w.wo.rows != heads * dh)
    return std::nullopt;
  const bool rope = !rope_cos.empty();
  if (rope && (rope_cos.cols != dh || rope_sin.cols != dh || rope_cos.rows < rows || rope_sin.rows < rows))
    return std::nullopt;
  AttentionBlockJob job = *block_recipe_;
  job.rows = rows, job.width = h.cols, job.heads = heads, job.kv_heads = kv, job.head_width = dh;
  // What the host's three linear(qkv, h, ...) calls prepare: H once here, its cast's events counted three times.
  const std::optional<BlockInput> input = block_input(Op::qkv, 3, cfg, h, norm);
  if (!input) return std::nullopt;
  job.h = input->floats(), job.h_finite = input->prepared.finite, job.norm = input->norm;
  auto view = [](const Operand& o) { return WeightOperand{o.f, o.d, o.id, o.finite}; };
  job.wq = view(weight(Op::qkv, w.wq));
  job.wk = view(weight(Op::qkv, w.wk));
  job.wv = view(weight(Op::qkv, w.wv));
  job.wo = view(weight(Op::out_proj, w.wo));
  const std::vector<float> bq = bias_floats(Op::qkv, w.bq), bk = bias_floats(Op::qkv, w.bk),
                           bv = bias_floats(Op::qkv, w.bv), bo = bias_floats(Op::out_proj, w.bo);
  job.bq = bq, job.bk = bk, job.bv = bv, job.bo = bo;
  if (rope) {
    const std::size_t n = std::size_t(rows) * dh;  // the tables' first rows: one per token
    job.rope_cos = std::span<const double>(rope_cos.data.data(), n);
    job.rope_sin = std::span<const double>(rope_sin.data.data(), n);
  }
  job.head = head_job(job.head, rows, rows, dh, cfg.causal, cfg.score_scale);
#pragma omp atomic
  gemm_calls_ += 4 + std::uint64_t(heads) * (std::uint64_t(rows) + 2);  // as the host's products and heads
  const std::span<float> out = result_buffer(ResultUse::attention, std::size_t(rows) * w.wo.cols);
  const DeviceResult r = block_device_->attention(job, out);
  count_events(r.overflows, r.saturations);
  Matrix<double> y = from_floats(rows, w.wo.cols, out.data());
  tick(Op::score);
  return y;
}

std::optional<EmulatedBackend::BlockInput> EmulatedBackend::block_input(Op op, int uses, const ModelConfig& cfg,
                                                                        const Matrix<double>& h,
                                                                        const NormWeights<double>* norm) {
  BlockInput in;
  if (norm) {  // the device normalises the stream and casts it
    std::optional<std::vector<float>> stream = as_floats(h.data);
    if (!stream || !(in.norm = norm_job(cfg, *norm, h.cols))) return std::nullopt;
    in.stream = std::move(*stream);
    return in;
  }
  if (!all_floats(h.data)) return std::nullopt;  // prepare() would take its double path
  in.prepared = prepare(op, h);
  count_events(long(uses - 1) * in.prepared.overflows, long(uses - 1) * in.prepared.saturations);
  return in;
}

std::optional<NormJob> EmulatedBackend::norm_job(const ModelConfig& cfg, const NormWeights<double>& w, int width) {
  const OpPrecision& p = plan_[Op::norm];
  if (!device_can_take(p) || !p.reduce || !is_float_loop(*p.reduce)) return std::nullopt;
  if (int(w.gamma.size()) != width || (!w.beta.empty() && int(w.beta.size()) != width)) return std::nullopt;
  NormJob job;
  job.rms = cfg.norm == NormKind::rmsnorm;
  job.cast = cfg.norm_cast;
  job.fma = p.reduce->fma;
  job.epsilon = compute(Op::norm, w.eps >= 0 ? w.eps : cfg.norm_eps);  // as layers.hpp's norm, with its events
  job.compute = element_rounding(p.compute.spec);
  job.out = element_rounding(p.out.spec);
  job.gamma = w.gamma, job.beta = w.beta;
  return job;
}

}  // namespace lpsim
