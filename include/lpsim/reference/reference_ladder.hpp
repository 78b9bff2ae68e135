#pragma once
// The one reference ladder: the reference a study or a sweep measures against (MPFR at `bits`, double-double, or
// float64) and, when asked, its check (MPFR at twice the bits; the double-double's sampled MPFR recomputation times
// the forward's gain; float64 against MPFR). compare_plans and the sweep runner both call it, so a study and a
// sweep unit with the same model, seed and reference measure against the same numbers.
#include <chrono>
#include <string>

#include "lpsim/reference/forward_error.hpp"

namespace lpsim {

struct ReferenceRun {
  ReferenceCheck check;   // kind, bits; with the check: check_bits, max_rel, fro_rel (adequate is the caller's)
  SampledCheck sampled;   // dd with its check
  double reference_seconds = 0, check_seconds = 0;
};

// Computes the reference of `kind` ("mpfr", "dd", "fp64"; resolved, not "auto") and hands its taps to measure
// (a generic callable: Taps<Real>, Taps<DD> or Taps<double>) before the check runs. bits > 0 sets the MPFR
// precision (and leaves it set); bits <= 0 keeps the current one (sweeps set it once before their threads).
template <class Measure>
ReferenceRun run_reference(const std::string& kind, int bits, bool check, const ModelConfig& cfg,
                           const Weights<double>& w, const ModelInput<double>& in, std::uint64_t seed, bool progress,
                           Measure&& measure) {
  auto since = [](auto t0) { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  ReferenceRun r;
  r.check.kind = kind;
  auto t0 = std::chrono::steady_clock::now();
  if (kind == "dd") {
    const Taps<DD> ref = dd_taps(cfg, w, in, seed, check ? &r.sampled : nullptr, progress);
    r.reference_seconds = since(t0) - r.sampled.seconds;
    r.check.bits = 106;
    measure(ref);
    if (check) {
      t0 = std::chrono::steady_clock::now();
      // First-order estimate of the reference's own error: the sampled local errors times the forward's gain on
      // local errors, measured as the fp64 forward's error over fp64's unit roundoff (docs/REFERENCE.md).
      estimate_dd_error(r.check, r.sampled, fp64_taps(cfg, w, in), ref);
      r.check_seconds = since(t0) + r.sampled.seconds;
    }
  } else if (kind == "fp64") {
    const Taps<double> ref = fp64_taps(cfg, w, in);
    r.reference_seconds = since(t0);
    r.check.bits = 53;
    measure(ref);
    if (check) {
      t0 = std::chrono::steady_clock::now();
      const Taps<Real> better = reference_taps(bits, cfg, w, in, progress);
      r.check.check_bits = reference_bits();
      compare_references(r.check, ref, better);
      r.check_seconds = since(t0);
    }
  } else {
    const Taps<Real> ref = reference_taps(bits, cfg, w, in, progress);
    const int used = reference_bits();
    r.check.bits = used;
    r.reference_seconds = since(t0);
    measure(ref);
    if (check) {
      t0 = std::chrono::steady_clock::now();
      const Taps<Real> better = reference_taps(2 * used, cfg, w, in, progress);
      r.check.check_bits = reference_bits();
      compare_references(r.check, ref, better);
      r.check_seconds = since(t0);
      set_reference_bits(used);
    }
  }
  return r;
}

}  // namespace lpsim
