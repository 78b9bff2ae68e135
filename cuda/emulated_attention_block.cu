// EmulatedGemm::attention: one attention layer on the GPU with the CPU's bits (attention_block_device.hpp). Each
// pass is the CPU's elementwise loop (layers.hpp's rotate, EmulatedBackend's product epilogue and operand casts),
// one thread per element; only H and the branch's output cross the bus.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "device_passes.cuh"
#include "emulated_gemm.hpp"
#include "emulated_gemm_buffers.hpp"
#include "heads_on_device.hpp"
#include "lpsim/model/row_kernels.hpp"
#include "norm_on_device.hpp"

namespace lpsim::cuda {

namespace {

struct LayerCounts {
  unsigned long long overflows, saturations;        // products' Inf/NaN, their epilogues, the rotations
  unsigned long long cat_beyond, cat_now_infinite;  // the heads' output cast to out_proj's input (one operand)
  unsigned long long out_nonfinite;                 // Inf/NaN among the output projection's result, without bias
};

// One head's operand cast, as EmulatedBackend::prepare counts it: finite values beyond the format's range, and the
// values Inf or NaN after the cast.
struct OperandCounts {
  unsigned long long beyond, now_infinite;
};

// One projection's result (rows x heads * width) cut into heads, each rotated where there are tables and stored in
// the rope class, cast to its product's input, and packed head after head (transposed for K: width x rows).
struct PackPass {
  int rows, heads, width;
  const double *cos, *sin;  // rows x width, or null: no rotation
  ElementRounding rope_compute, rope_out, cast;
  bool transpose;
};

__global__ void pack_kernel(PackPass p, const float* src, float* dst, LayerCounts* counts, OperandCounts* per_head) {
  const std::size_t cols = std::size_t(p.heads) * p.width, n = std::size_t(p.rows) * cols;
  ElementEvents events;
  auto compute = [&](double v) {
    const double y = round_element(p.rope_compute, v);
    events.compute(p.rope_compute, v, y);
    return y;
  };
  LPSIM_FOR_EACH(e, n) {
    const int i = int(e / cols), c = int(e % cols), h = c / p.width, j = c % p.width;
    double x = src[e];
    if (p.cos) {  // x c + rotate_half(x) s, each step rounded to compute, then store(rope)
      const int half = p.width / 2;
      const std::size_t t = std::size_t(i) * p.width + j;
      const double rot = j < half ? -double(src[e + half]) : double(src[e - half]);
      const double y = rows::rotary(x, rot, p.cos[t], p.sin[t], compute);  // layers.hpp's rotate, the same code
      x = round_element(p.rope_out, y);
      events.store(p.rope_out, y, x);
    }
    const double in = round_element(p.cast, x);
    if (fabs(x) > p.cast.max && isfinite(x)) atomicAdd(&per_head[h].beyond, 1ull);  // rare: range events
    if (!isfinite(in)) atomicAdd(&per_head[h].now_infinite, 1ull);
    const std::size_t to = p.transpose ? (std::size_t(h) * p.width + j) * p.rows + i
                                       : (std::size_t(h) * p.rows + i) * p.width + j;
    dst[to] = float(in);
  }
  add_events(counts, events);
}

// The heads' outputs (heads x rows x width) side by side (rows x heads * width), cast to out_proj's input.
__global__ void concat_kernel(const float* heads_out, int rows, int heads, int width, ElementRounding cast, float* dst,
                              LayerCounts* counts) {
  const std::size_t cols = std::size_t(heads) * width, n = std::size_t(rows) * cols;
  long beyond = 0, now_infinite = 0;
  LPSIM_FOR_EACH(e, n) {
    const std::size_t i = e / cols, c = e % cols, h = c / width, j = c % width;
    const double x = heads_out[(h * rows + i) * width + j];
    beyond += fabs(x) > cast.max && isfinite(x);
    const double in = round_element(cast, x);
    now_infinite += !isfinite(in);
    dst[e] = float(in);
  }
  add(&counts->cat_beyond, beyond);
  add(&counts->cat_now_infinite, now_infinite);
}

}  // namespace

bool EmulatedGemm::runs(const AccumPolicy& qkv, const AccumPolicy& score, const AccumPolicy& pv,
                        const AccumPolicy& out_proj) const {
  return has_float_kernel(qkv) && has_float_kernel(score) && has_float_kernel(pv) && has_float_kernel(out_proj);
}

DeviceResult EmulatedGemm::attention(const AttentionBlockJob& job, std::span<float> out) {
  const std::lock_guard<std::mutex> turn(turn_);
  const Stopwatch call(seconds_);
  ++attention_layers_;
  calls_ += 4;  // the projections (the heads' products are the heads')
  Buffers& d = *buffers_;
  const int rows = job.rows, width = job.head_width, heads = job.heads, kv = job.kv_heads, group = heads / kv;
  float* h = d.attn_h.get<float>(job.h.size());
  {
    const Stopwatch copies(copy_seconds_);
    staged_to_device(d.staging, h, job.h);
  }
  DeviceResult result;
  bool h_finite = job.h_finite;
  if (job.norm) {  // H = norm(stream), cast to qkv's input; the host's path prepares it for each projection
    float* normed = d.normed.get<float>(job.h.size());
    const NormResult n = norm_on_device(d.norm, *job.norm, h, rows, job.width, job.qkv_input, normed);
    result.overflows += n.overflows, result.saturations += n.saturations;
    add_cast_events(result, n.beyond, n.now_infinite, job.qkv_input, 3);
    h_finite = n.now_infinite == 0;
    h = normed;
  }
  LayerCounts* counts = d.attn_counts.get<LayerCounts>(1);
  OperandCounts* operands = d.attn_operands.get<OperandCounts>(heads + 2 * kv);  // Q heads, then K, then V
  check(cudaMemset(counts, 0, sizeof(LayerCounts)), "cudaMemset");
  check(cudaMemset(operands, 0, sizeof(OperandCounts) * (heads + 2 * kv)), "cudaMemset");

  // Q, K, V = H W (+ b): product() with its epilogue, or the count of a product's Inf/NaN of finite operands.
  auto project = [&](const WeightOperand& w, int which, std::span<const float> bias, int cols, Slot& result) {
    const float* wd = weight_floats(w, which);
    const std::size_t n = std::size_t(rows) * cols;
    float* c = result.get<float>(n);
    launch_float_gemm(job.qkv[!bias.empty()], rows, cols, job.width, h, wd, c);
    if (!bias.empty()) {
      float* b = d.attn_bias[which].get<float>(bias.size());
      to_device(b, bias);
      bias_kernel<<<blocks_for(n), 256>>>(c, n, cols, b, job.qkv_compute, job.qkv_out, counts);
    } else if (h_finite && w.finite) {
      count_nonfinite_kernel<<<blocks_for(n), 256>>>(c, n, &counts->overflows);
    }
    return static_cast<const float*>(c);
  };
  const float* q = project(job.wq, 0, job.bq, heads * width, d.attn_q);
  const float* k = project(job.wk, 1, job.bk, kv * width, d.attn_k);
  const float* v = project(job.wv, 2, job.bv, kv * width, d.attn_v);

  const double *cos = nullptr, *sin = nullptr;
  if (!job.rope_cos.empty()) {
    double* c = d.attn_cos.get<double>(job.rope_cos.size());
    double* s = d.attn_sin.get<double>(job.rope_sin.size());
    to_device(c, job.rope_cos);
    to_device(s, job.rope_sin);
    cos = c, sin = s;
  }
  const std::size_t qs = std::size_t(rows) * width;
  float* pq = d.attn_pq.get<float>(qs * heads);
  float* pkt = d.attn_pkt.get<float>(qs * kv);
  float* pv = d.attn_pv.get<float>(qs * kv);
  const PackPass pack_q{rows, heads, width, cos, sin, job.rope_compute, job.rope_out, job.score_input, false};
  const PackPass pack_k{rows, kv, width, cos, sin, job.rope_compute, job.rope_out, job.score_input, true};
  const PackPass pack_v{rows, kv, width, nullptr, nullptr, job.rope_compute, job.rope_out, job.head.pv_input, false};
  pack_kernel<<<blocks_for(qs * heads), 256>>>(pack_q, q, pq, counts, operands);
  pack_kernel<<<blocks_for(qs * kv), 256>>>(pack_k, k, pkt, counts, operands + heads);
  pack_kernel<<<blocks_for(qs * kv), 256>>>(pack_v, v, pv, counts, operands + heads + kv);
  check(cudaGetLastError(), "attention layer kernels");

  // The operands' casts, counted per head as the host prepares them (K and V once per query head of their group).
  std::vector<OperandCounts> oc(heads + 2 * kv);
  to_host(std::span<OperandCounts>(oc), static_cast<const OperandCounts*>(operands));
  for (int i = 0; i < heads; ++i) add_cast_events(result, oc[i].beyond, oc[i].now_infinite, job.score_input, 1);
  for (int g = 0; g < kv; ++g) {
    const OperandCounts &kc = oc[heads + g], &vc = oc[heads + kv + g];
    add_cast_events(result, kc.beyond, kc.now_infinite, job.score_input, group);
    add_cast_events(result, vc.beyond, vc.now_infinite, job.head.pv_input, group);
  }
  std::vector<char> qk_finite(heads), v_finite(heads);
  for (int i = 0; i < heads; ++i) {
    const int g = i / group;
    qk_finite[i] = oc[i].now_infinite == 0 && oc[heads + g].now_infinite == 0;
    v_finite[i] = oc[heads + kv + g].now_infinite == 0;
  }
  AttentionLayerJob layer;
  layer.head = job.head;
  layer.heads = heads, layer.group = group;
  layer.qk_finite = qk_finite, layer.v_finite = v_finite;
  float* o = d.attn_heads.get<float>(qs * heads);
  const DeviceResult hr = heads_on_device(d.heads, layer, pq, pkt, pv, o, exp_margin_);
  result.overflows += hr.overflows, result.saturations += hr.saturations, result.host_values += hr.host_values;
  host_exps_ += hr.host_values;

  // The output projection of the heads side by side.
  const std::size_t cat_size = qs * heads;
  float* cat = d.attn_cat.get<float>(cat_size);
  concat_kernel<<<blocks_for(cat_size), 256>>>(o, rows, heads, width, job.out_proj_input, cat, counts);
  const float* wo = weight_floats(job.wo, 3);
  float* y = d.attn_out.get<float>(out.size());
  const bool bias = !job.bo.empty();
  launch_float_gemm(job.out_proj[bias], rows, job.width, heads * width, cat, wo, y);
  if (bias) {
    float* b = d.attn_bias[3].get<float>(job.bo.size());
    to_device(b, job.bo);
    bias_kernel<<<blocks_for(out.size()), 256>>>(y, out.size(), job.width, b, job.out_proj_compute, job.out_proj_out,
                                                 counts);
  } else {
    count_nonfinite_kernel<<<blocks_for(out.size()), 256>>>(y, out.size(), &counts->out_nonfinite);
  }
  check(cudaGetLastError(), "attention layer kernels");
  {
    const Stopwatch copies(copy_seconds_);
    staged_to_host(d.staging, out, static_cast<const float*>(y));
  }
  LayerCounts c{};
  to_host(std::span<LayerCounts>(&c, 1), static_cast<const LayerCounts*>(counts));
  result.overflows += long(c.overflows);
  result.saturations += long(c.saturations);
  add_cast_events(result, c.cat_beyond, c.cat_now_infinite, job.out_proj_input, 1);
  if (!bias && c.cat_now_infinite == 0 && job.wo.finite) result.overflows += long(c.out_nonfinite);
  return result;
}

}  // namespace lpsim::cuda
