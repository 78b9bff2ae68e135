#include "emulated_attention.hpp"

#include <cuda_runtime.h>

#include <cmath>
#include <vector>

#include "device_passes.cuh"
#include "device_slot.hpp"
#include "emulated_gemm.hpp"
#include "heads_on_device.hpp"
#include "lpsim/model/row_kernels.hpp"

namespace lpsim::cuda {

namespace {

// What the kernels count, summed on the device (range events are rare: one atomic per thread that saw any).
struct Counts {
  unsigned long long score_nonfinite;  // Inf/NaN among S as its GEMM gave it
  unsigned long long overflows, saturations;
  unsigned long long beyond, now_infinite;  // P's cast to pv's input, as EmulatedBackend::prepare counts them
  unsigned long long flagged;               // exp values left to the host
  unsigned long long out_nonfinite;         // Inf/NaN among the head's output
};


constexpr unsigned full_warp = 0xffffffffu;

// layers.hpp's scale_scores: every S value v (the GEMM's output, rounded to score's out) becomes compute(v / c) or
// compute(v * c) in double, then the scale class's store.
// Every head of the layer in one launch: head blockIdx.y's n values.
struct ScalePass {
  double constant;
  bool divide;
  ElementRounding compute, out;
};

__global__ void scale_kernel(ScalePass p, float* s, std::size_t n, Counts* counts) {
  s += blockIdx.y * n, counts += blockIdx.y;
  ElementEvents events;
  long nonfinite = 0;
  LPSIM_FOR_EACH(i, n) {
    const double v = s[i];
    nonfinite += !isfinite(v);
    const double x = p.divide ? __ddiv_rn(v, p.constant) : __dmul_rn(v, p.constant);
    const double c = round_element(p.compute, x);
    events.compute(p.compute, x, c);
    const double y = round_element(p.out, c);
    events.store(p.out, c, y);
    s[i] = float(y);
  }
  add(&counts->score_nonfinite, nonfinite);  // overflows of the product where its operands were finite (the host knows)
  add_events(counts, events);
}

// layers.hpp's softmax, one warp per row; row i sees keys 0..valid-1, the rest of P is 0. Every head in one
// launch: head blockIdx.y's rows x keys values, counts and list of values for the host.
struct SoftmaxPass {
  int rows, keys;
  bool causal;
  ElementRounding compute, out, pv_input;
  double exp_margin;
  __device__ int valid(int i) const { return causal ? min(i + 1, keys) : keys; }
};

// Rows are dealt to warps, grid-stride: a grid of at most 8192 blocks covers any number of rows.
__device__ int first_warp() { return int((blockIdx.x * std::size_t(blockDim.x) + threadIdx.x) / 32); }
__device__ int warps() { return int(gridDim.x * std::size_t(blockDim.x) / 32); }

// e = compute(exp(compute(s - m))) with m the row maximum as the CPU's loop finds it (the first value, replaced by
// any larger one; a NaN first value stays, later NaNs never replace it). Among equal maxima only +0 and -0 differ,
// and s - (+0) and s - (-0) give the same exp. Values rounds_alike cannot decide are listed for the host.
__device__ void exp_row(const SoftmaxPass& p, int i, int lane, const float* s, float* e, Counts* counts, Flag* flags) {
  const int valid = p.valid(i);
  const float* row = s + std::size_t(i) * p.keys;
  float* out = e + std::size_t(i) * p.keys;
  const float first = row[0];  // read before any lane writes (e may be s)
  float m = -INFINITY;
  for (int j = lane; j < valid; j += 32)
    if (row[j] > m) m = row[j];
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(full_warp, m, offset);
    if (other > m) m = other;
  }
  if (isnan(first)) m = first;
  ElementEvents events;
  auto compute = [&](double v) {
    const double r = round_element(p.compute, v);
    events.compute(p.compute, v, r);
    return r;
  };
  for (int j = lane; j < p.keys; j += 32) {
    if (j >= valid) {
      out[j] = 0.0f;
      continue;
    }
    const double x = rows::softmax_shift(double(row[j]), double(m), compute);  // layers.hpp's softmax, the same code
    const double y = exp(x);
    if (rounds_alike(p.compute, y, p.exp_margin)) {
      const double r = round_element(p.compute, y);
      events.compute(p.compute, y, r);
      out[j] = float(r);
    } else {
      flags[atomicAdd(&counts->flagged, 1ull)] = {std::size_t(i) * p.keys + j, x};
      out[j] = 0.0f;
    }
  }
  add_events(counts, events);
}

__global__ void exp_kernel(SoftmaxPass p, const float* s, float* e, Counts* counts, Flag* flags) {
  const std::size_t head = std::size_t(p.rows) * p.keys * blockIdx.y;
  s += head, e += head, flags += head, counts += blockIdx.y;
  const int lane = int(threadIdx.x % 32);
  for (int i = first_warp(); i < p.rows; i += warps()) exp_row(p, i, lane, s, e, counts, flags);
}

// z = e_0 + e_1 + ... in float, in order (the reduce policy's binary32 loop), then p = compute(e / z) in double, the
// softmax class's store, and the cast of P to pv's input (EmulatedBackend::prepare) in place.
__device__ void normalize_row(const SoftmaxPass& p, int i, int lane, float* e, Counts* counts) {
  const int valid = p.valid(i);
  float* row = e + std::size_t(i) * p.keys;
  float z = 0.0f;
  if (lane == 0) {
    z = row[0];
    for (int t = 1; t < valid; ++t) z = __fadd_rn(z, row[t]);
  }
  z = __shfl_sync(full_warp, z, 0);
  ElementEvents events;
  long beyond = 0, now_infinite = 0;
  auto compute = [&](double v) {
    const double r = round_element(p.compute, v);
    events.compute(p.compute, v, r);
    return r;
  };
  for (int j = lane; j < valid; j += 32) {
    const double c = rows::softmax_normalise(double(row[j]), double(z), compute);
    const double y = round_element(p.out, c);
    events.store(p.out, c, y);
    beyond += fabs(y) > p.pv_input.max && isfinite(y);
    const double in = round_element(p.pv_input, y);
    now_infinite += !isfinite(in);
    row[j] = float(in);
  }
  add_events(counts, events);
  add(&counts->beyond, beyond);
  add(&counts->now_infinite, now_infinite);
}

__global__ void normalize_kernel(SoftmaxPass p, float* e, Counts* counts) {
  e += std::size_t(p.rows) * p.keys * blockIdx.y, counts += blockIdx.y;
  const int lane = int(threadIdx.x % 32);
  for (int i = first_warp(); i < p.rows; i += warps()) normalize_row(p, i, lane, e, counts);
}

// Inf/NaN among each head's output (n values of head blockIdx.y).
__global__ void out_nonfinite_kernel(const float* o, std::size_t n, Counts* counts) {
  o += blockIdx.y * n, counts += blockIdx.y;
  long count = 0;
  LPSIM_FOR_EACH(i, n) count += !isfinite(o[i]);
  add(&counts->out_nonfinite, count);
}

}  // namespace

// Each step runs every head in one launch (the products batched over heads, query head h with key/value head
// h / group); the host waits twice per layer: for the count of exp values it must compute, and for the counts at
// the end.
DeviceResult heads_on_device(HeadBuffers& b, const AttentionLayerJob& layer, const float* q, const float* kt,
                             const float* v, float* o, double exp_margin) {
  const AttentionHeadJob& job = layer.head;
  const int heads = layer.heads, group = layer.group;
  const std::size_t scores = std::size_t(job.rows) * job.keys, qs = std::size_t(job.rows) * job.width,
                    ks = std::size_t(job.keys) * job.width;
  float* s = b.s.get<float>(scores * heads);
  Counts* counts = b.counts.get<Counts>(heads);
  Flag* flags = b.flags.get<Flag>(scores * heads);  // head h lists its values from flags + h * scores
  check(cudaMemset(counts, 0, sizeof(Counts) * heads), "cudaMemset");

  const SoftmaxPass softmax{job.rows, job.keys, job.causal, job.softmax_compute, job.softmax_out, job.pv_input,
                            exp_margin};
  const dim3 row_grid(blocks_for(std::size_t(job.rows) * 32), heads);
  launch_float_gemms(job.score, job.rows, job.keys, job.width, q, kt, s, heads, qs, ks, scores, group);
  const ScalePass scale{job.scale_constant, job.divide, job.scale_compute, job.scale_out};
  scale_kernel<<<dim3(blocks_for(scores), heads), 256>>>(scale, s, scores, counts);
  exp_kernel<<<row_grid, 256>>>(softmax, s, s, counts, flags);  // each warp reads its row before writing it
  check(cudaGetLastError(), "attention kernels");
  std::vector<Counts> c(heads);
  to_host(std::span<Counts>(c), counts);
  DeviceResult result;
  for (int h = 0; h < heads; ++h)
    if (c[h].flagged) {  // glibc's exp for the values the device's cannot round with certainty
      ElementEvents events;
      resolve_on_host(flags + h * scores, c[h].flagged, s + h * scores, b.host_values, [&](double x) {
        const double y = std::exp(x), r = round_element(job.softmax_compute, y);
        events.compute(job.softmax_compute, y, r);
        return r;
      });
      result.overflows += events.overflows, result.saturations += events.saturations;
      result.host_values += long(c[h].flagged);
    }
  normalize_kernel<<<row_grid, 256>>>(softmax, s, counts);
  launch_float_gemms(job.pv, job.rows, job.width, job.keys, s, v, o, heads, scores, ks, qs, group);
  out_nonfinite_kernel<<<dim3(blocks_for(qs), heads), 256>>>(o, qs, counts);
  check(cudaGetLastError(), "attention kernels");
  to_host(std::span<Counts>(c), counts);
  for (int h = 0; h < heads; ++h) {
    // A product of finite operands: its Inf/NaN are overflows.
    if (layer.qk_finite[h]) result.overflows += long(c[h].score_nonfinite);
    result.overflows += long(c[h].overflows);
    result.saturations += long(c[h].saturations);
    add_cast_events(result, c[h].beyond, c[h].now_infinite, job.pv_input);  // P's cast
    if (c[h].now_infinite == 0 && layer.v_finite[h]) result.overflows += long(c[h].out_nonfinite);
  }
  return result;
}

struct EmulatedAttention::Buffers : HeadBuffers {
  Slot q, kt, v, out;
  PinnedSlot staging;
};

EmulatedAttention::EmulatedAttention() : buffers_(std::make_unique<Buffers>()) {}
EmulatedAttention::~EmulatedAttention() = default;

bool EmulatedAttention::runs(const AccumPolicy& score, const AccumPolicy& pv) const {
  return has_float_kernel(score) && has_float_kernel(pv);
}

DeviceResult EmulatedAttention::head(const AttentionHeadJob& job, std::span<float> out) {
  const char qk = job.qk_finite, vf = job.v_finite;
  AttentionLayerJob layer;
  layer.head = job;
  layer.q = job.q, layer.kt = job.kt, layer.v = job.v;
  layer.qk_finite = std::span<const char>(&qk, 1), layer.v_finite = std::span<const char>(&vf, 1);
  return heads(layer, out);
}

DeviceResult EmulatedAttention::heads(const AttentionLayerJob& layer, std::span<float> out) {
  const std::lock_guard<std::mutex> turn(turn_);
  const Stopwatch call(seconds_);
  calls_ += layer.heads;
  Buffers& b = *buffers_;
  float* q = b.q.get<float>(layer.q.size());
  float* kt = b.kt.get<float>(layer.kt.size());
  float* v = b.v.get<float>(layer.v.size());
  float* o = b.out.get<float>(out.size());
  staged_to_device(b.staging, q, layer.q);
  staged_to_device(b.staging, kt, layer.kt);
  staged_to_device(b.staging, v, layer.v);
  const DeviceResult result = heads_on_device(b, layer, q, kt, v, o, exp_margin_);
  staged_to_host(b.staging, out, static_cast<const float*>(o));
  host_exps_ += result.host_values;
  return result;
}

}  // namespace lpsim::cuda
