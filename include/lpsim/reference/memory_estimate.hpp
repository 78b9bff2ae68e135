#pragma once
// How much memory a study needs at its peak, estimated before any work from the model's sizes, the plan and the
// reference, so that a run that cannot fit is refused with the estimate in the message instead of dying in the
// allocator (a model of width 8 at 65,536 tokens needs 34 GB for one head's scores). Every path is covered: the
// double weights and the emulated backend's operand copies, the emulated forward's taps and its largest live set
// (scores and probabilities of the heads that run at once, the MLP, the logits), and the reference at its peak
// (fp64, double-double, MPFR with its check at twice the bits). bench/memory_estimate.sh compares the estimates
// with measured peaks.
#include <string>

#include "lpsim/model/model_config.hpp"
#include "lpsim/model/plan.hpp"

namespace lpsim {

struct MemoryEstimate {
  double parameters = 0;  // bytes: the double weights, and the operand copies of the emulated backend
  double emulated = 0;    // the emulated forward: its taps and the largest live set of one layer or the head
  double reference = 0;   // the reference (and its check) at their peak, with the emulated taps it is compared to
  double baseline = 0;    // the process itself: libraries, thread stacks, allocator slack
  double tap_bytes = 0;   // one emulated forward's taps (kept per plan while one reference serves several)
  double total() const;
  // "about 3.2 GB (parameters 1.1, emulated forward 0.4, reference 1.7)"
  std::string describe() const;
};

// reference: "mpfr", "fp64" or "dd" (as choose_reference resolved it); check: whether its check runs; threads: how
// many heads may run at once.
MemoryEstimate study_memory(const ModelConfig& cfg, const PrecisionPlan& plan, const std::string& reference,
                            int reference_bits, bool check, int threads);

// Throws ConfigError "<what> needs <describe()>, <available> GB are available; <advice>" when the estimate exceeds
// the memory available now (MemAvailable); nothing when the system does not say.
void check_memory(const std::string& what, const MemoryEstimate& need, const std::string& advice);

}  // namespace lpsim
