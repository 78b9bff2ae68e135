#pragma once
// An accelerator for one head of the textbook attention (layers.hpp's math kernel: S = Q K^T under the score
// class's policy, S scaled in the scale class, row softmax in the softmax class, P V under the pv class's policy)
// that computes what EmulatedBackend computes on the CPU, bit for bit, and counts the same range events. The GPU's
// is cuda/emulated_attention.hpp; EmulatedBackend::device_head says which plans it takes.
//
// exp is the one step whose bits the device cannot compute as glibc does: the device takes exp in double with its
// own function (within 1 ulp, as glibc's is), and where the two could round differently to the softmax's compute
// format (rounds_alike false: a value within 2^-50 of a rounding boundary, about 1 in 2^26) it asks the host for
// glibc's value. The rounded result is then the host's in every case.
#include <cstdint>
#include <span>

#include "lpsim/accum/dot_kernel.hpp"
#include "lpsim/accum/policy.hpp"
#include "lpsim/format/format.hpp"
#include "lpsim/util/host_device.hpp"

namespace lpsim {

// One rounding to nearest even as EmulatedBackend's compute() and store() do it: binary32 by the cast, a narrower
// format (one a float holds) by the rounding core. Its results are floats.
struct ElementRounding {
  bool to_float = true;
  RoundParams<double> format{};  // when not to_float
  double max = 0;                // the format's largest finite value
  bool saturates = false;        // overflow clamps to max (OCP fp8's satfinite)
};

// The rounding to format f (one a float holds: carrier_holds<float>), to nearest even.
inline ElementRounding element_rounding(const FormatSpec& f) {
  ElementRounding r;
  r.to_float = f == formats::fp32;  // EmulatedBackend's Fast::to_float: the cast
  r.format = make_round_params<double>(f);
  r.max = f.max_finite();
  r.saturates = f.overflow == Overflow::saturate;
  return r;
}

LPSIM_HD inline double round_element(const ElementRounding& r, double v) {
  return r.to_float ? double(float(v)) : accum::round_with(v, r.format, Rounding::nearest_even, 0);
}

// Range events of one rounding v -> y, counted as EmulatedBackend counts them: compute() (one value) and store()
// (a tensor) differ only for an infinite input to a saturating format, which store() counts as clamped.
struct ElementEvents {
  long overflows = 0, saturations = 0;
  LPSIM_HD void compute(const ElementRounding& r, double v, double y) {
    if (kmath::isfinite(v) && !kmath::isfinite(y)) ++overflows;
    else if (kmath::isfinite(v) && kmath::fabs(v) > r.max && r.saturates) ++saturations;
  }
  LPSIM_HD void store(const ElementRounding& r, double x, double y) {
    overflows += kmath::isfinite(x) && !kmath::isfinite(y);
    saturations += r.saturates && kmath::isfinite(y) && kmath::fabs(x) > r.max;
  }
};

// Whether y, a value of exp within 1 ulp of the exact one, rounds to the same element as every other such value:
// then it rounds as glibc's exp (also within 1 ulp) does. Two ulps of double are at most 2^-51 |y|; the margin is
// twice that (relative = 2^-50; a wider one sends more values to the host, as a test of that path), and one
// subnormal step.
inline constexpr double exp_margin = 0x1p-50;
LPSIM_HD inline bool rounds_alike(const ElementRounding& r, double y, double relative = exp_margin) {
  if (!kmath::isfinite(y)) return true;
  const double margin = kmath::fabs(y) * relative + 0x1p-1074;
  // Equal values, not bits: exp is never negative, so a -0 from y - margin (y = 0) is the true result's +0.
  return round_element(r, y - margin) == round_element(r, y + margin);
}

// One head, its operands already rounded to their GEMM's input format (EmulatedBackend::prepare).
struct AttentionHeadJob {
  int rows = 0, keys = 0, width = 0;  // Q rows x width, K^T width x keys, V keys x width
  bool causal = false;                // row i sees keys 0..i
  std::span<const float> q, kt, v;
  bool qk_finite = true, v_finite = true;  // no Inf/NaN among the operands (a GEMM's non-finite output then counts)
  AccumPolicy score, pv;                   // their output: the class's out (no epilogue: no bias, no operand scale)
  bool divide = true;                      // S / scale_constant, else S * scale_constant (ScoreScale)
  double scale_constant = 1;               // already rounded to the scale class's compute
  ElementRounding scale_compute, scale_out, softmax_compute, softmax_out, pv_input;
};

// What a device adds to the backend's counts for one head or block (FeedForwardDevice returns it too).
struct DeviceResult {
  long overflows = 0, saturations = 0;  // every range event after the operands were prepared
  long host_values = 0;                 // values the host computed (their rounding undecided on the device)
};

// Every head of one attention layer: query head h attends with key/value head h / group (grouped-query
// attention). head holds what the heads share (shape, policies, roundings, scale); its q, kt, v and finiteness
// flags are replaced per head by slices of the arrays here.
struct AttentionLayerJob {
  AttentionHeadJob head;
  int heads = 1, group = 1;
  std::span<const float> q;   // heads x rows x width
  std::span<const float> kt;  // heads / group x width x keys
  std::span<const float> v;   // heads / group x keys x width
  std::span<const char> qk_finite, v_finite;  // per query head

  // Head h's own job, as head() takes it.
  AttentionHeadJob job(int h) const {
    AttentionHeadJob j = head;
    const std::size_t g = std::size_t(h / group), qs = std::size_t(j.rows) * j.width, ks = std::size_t(j.keys) * j.width;
    j.q = q.subspan(std::size_t(h) * qs, qs), j.kt = kt.subspan(g * ks, ks), j.v = v.subspan(g * ks, ks);
    j.qk_finite = qk_finite[std::size_t(h)] != 0, j.v_finite = v_finite[std::size_t(h)] != 0;
    return j;
  }
};

class AttentionDevice {
 public:
  virtual ~AttentionDevice() = default;
  // Whether it runs heads whose GEMMs have these policies (asked before anything is computed).
  virtual bool runs(const AccumPolicy& score, const AccumPolicy& pv) const = 0;
  // out: rows x width, values of pv's out. Called from several threads at once (the device takes them in turn).
  virtual DeviceResult head(const AttentionHeadJob& job, std::span<float> out) = 0;
  // Every head of a layer (out: heads x rows x width), the events summed over them: the same as head() for each in
  // turn, which is what this default does; a device overrides it to run them without a round trip per head.
  virtual DeviceResult heads(const AttentionLayerJob& job, std::span<float> out) {
    DeviceResult total;
    const std::size_t each = std::size_t(job.head.rows) * job.head.width;
    for (int h = 0; h < job.heads; ++h) {
      const DeviceResult r = head(job.job(h), out.subspan(std::size_t(h) * each, each));
      total.overflows += r.overflows, total.saturations += r.saturations, total.host_values += r.host_values;
    }
    return total;
  }
};

}  // namespace lpsim
