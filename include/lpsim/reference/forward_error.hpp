#pragma once
// Forward error of an emulated run against the MPFR reference, tap by tap, and the check that the reference
// itself is accurate enough to measure it.
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lpsim/emulation/emulated_backend.hpp"
#include "lpsim/model/forward.hpp"
#include "lpsim/model/model_config.hpp"
#include "lpsim/reference/dd_backend.hpp"
#include "lpsim/reference/memory_estimate.hpp"
#include "lpsim/reference/mpfr_backend.hpp"

namespace lpsim {

struct TapError {
  int layer = 0;
  Tap tap = Tap::block;
  double rel_fro = 0;      // ||X_emulated - X_ref||_F / ||X_ref||_F
  // Componentwise |x - x_ref| / |x_ref| over entries with x_ref != 0 (arXiv 2503.10251's measure): summary statistics.
  double max_rel = 0, mean_rel = 0, median_rel = 0, p95_rel = 0, p99_rel = 0;
  long elements = 0;
  long zero_ref = 0;       // entries where the reference is exactly 0 (left out of the componentwise statistics)
  long nonfinite = 0;      // Inf/NaN entries of the emulated tap
  long overflows = 0;      // roundings to Inf/NaN since the previous tap (EmulatedBackend's RangeEvents)
  long saturations = 0;
  double ref_fro = 0;      // ||X_ref||_F
  // The logits row only (nan elsewhere): over tokens, KL(p_ref || p_emulated) of the softmax distributions (mean,
  // max), the fraction of tokens whose arg max agrees, and the largest |logit difference|.
  double kl_mean = NAN, kl_max = NAN, top1 = NAN, logit_max_abs = NAN;
  // A mixture-of-experts layer's ffn and block rows only (nan elsewhere; route_compare.hpp): the fraction of tokens
  // whose set of experts differs from the reference's, the fraction with the same set in another order, the largest
  // |weight - reference weight| among tokens with the same set, and rel_fro over the tokens with a flipped set and
  // over the others.
  double route_flip = NAN, route_reorder = NAN, route_weight_err = NAN, flipped_rel_fro = NAN, kept_rel_fro = NAN;
};

// Next-token metrics of emulated logits (tokens x vocab) against reference logits, in long double.
template <class R>
void logit_metrics(TapError& t, const Matrix<double>& emulated, const Matrix<R>& reference);

// Compares an emulated tap with a reference tap of any scalar (MPFR: differences formed exactly in MPFR).
template <class R>
TapError compare_tap(const Matrix<double>& emulated, const Matrix<R>& reference);

struct ReferenceCheck {
  std::string kind;        // "mpfr", "fp64" or "dd"
  int bits = 0;            // precision of the reference (53 for fp64, 106 for dd)
  int check_bits = 0;      // precision of the run it was compared with (0: not checked)
  // mpfr, fp64: the largest componentwise relative difference from the check over all taps and the largest
  // ||ref - check||_F / ||check||_F. dd: the largest sampled local error (SampledCheck::worst) and the estimate
  // amplification * local of the forward's own error.
  double max_rel = 0;
  double fro_rel = 0;
  double local = 0, amplification = 0;  // dd only: the sampled local error, fp64 forward error / 2^-53
  bool adequate = true;    // fro_rel <= 1% of the smallest emulated rel_fro: the reference can measure the run
};

struct StudyOptions {
  std::uint64_t seed = 0;  // weights and inputs; also the stochastic-rounding seed
  int batch = 0;           // which input batch of the seed
  // "mpfr", "fp64" (checked against MPFR), "dd" (double-double, checked by sampled MPFR recomputation) or "auto"
  // (choose_reference's rule).
  std::string reference = "mpfr";
  int reference_bits = 128;
  bool check_reference = true;     // mpfr: a second run at twice the bits; fp64: an MPFR run at reference_bits
  bool progress = false;           // MPFR forwards report their layer, time and an estimate of what is left on stderr
  // Called with the emulated backend before its forward: attaches devices (`lpsim-cuda run` gives it the GPU's
  // GEMM, attention and feed-forward devices, which compute the CPU's bits). Empty: the CPU alone.
  std::function<void(EmulatedBackend&)> on_backend;
};

struct StudyResult {
  std::vector<TapError> taps;
  ReferenceCheck reference;
  RangeEvents events;          // totals of the emulated run
  SampledCheck sampled;        // the double-double reference's sampled check (dd only)
  double emulated_seconds = 0, reference_seconds = 0, check_seconds = 0;
  MemoryEstimate memory;       // what the study was estimated to need before it started (checked against MemAvailable)
};

// The taps of one forward (layer-major, in all_taps order), for callers that reuse one reference for many runs,
// with what each mixture-of-experts layer's router chose (empty for a dense model).
template <class T>
struct Taps : std::vector<Matrix<T>> {
  std::vector<Routing> routes;
};
// Bytes an MPFR forward of this model at `bits` holds at its peak (parameters, stored taps, one head's scores and
// probabilities, the MLP's activations), each number an mpfr_t with its limbs and the allocator's overhead.
double reference_bytes(const ModelConfig& cfg, int bits);
// Throws ConfigError naming the estimate and what is available when an MPFR forward at `bits` would not fit.
void check_reference_fits(const ModelConfig& cfg, int bits);
// bits <= 0: at the current precision (set_reference_bits), which threads running references in parallel need.
// Throws ConfigError with the estimate when reference_bytes exceeds the memory available (GMP would abort).
Taps<Real> reference_taps(int bits, const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in,
                          bool progress = false);
// events, when given, receives the backend's running RangeEvents at every tap.
Taps<double> emulated_taps(EmulatedBackend& be, const ModelConfig& cfg, const Weights<double>& w,
                           const ModelInput<double>& in, std::vector<RangeEvents>* events = nullptr);

Taps<double> fp64_taps(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in);
// The double-double reference (dd_backend.hpp), reading the double weights in place. check: where to put what
// the sampled MPFR check found (null: no check).
Taps<DD> dd_taps(const ModelConfig& cfg, const Weights<double>& w, const ModelInput<double>& in, std::uint64_t seed,
                 SampledCheck* check = nullptr, bool progress = false);
// Per-tap errors of emulated taps against reference taps, with the range events between taps.
template <class R>
std::vector<TapError> tap_errors(const ModelConfig& cfg, const Taps<double>& emulated, const Taps<R>& reference,
                                 const std::vector<RangeEvents>& events);

// Folds the difference of a reference from a more accurate one into check.max_rel and check.fro_rel.
template <class R1, class R2>
void compare_references(ReferenceCheck& check, const Taps<R1>& reference, const Taps<R2>& better);

// The double-double reference's error estimate (docs/REFERENCE.md): local = the sampled check's worst error,
// amplification = ||fp64 forward - dd||_F / ||dd||_F / 2^-53 (the largest over taps), fro_rel = their product.
void estimate_dd_error(ReferenceCheck& check, const SampledCheck& sampled, const Taps<double>& fp64, const Taps<DD>& dd);

// Multiply-adds of one forward (GEMMs only): what an MPFR reference's time grows with.
double forward_multiply_adds(const ModelConfig& cfg);
// "auto" picks MPFR when its reference and check would fit in min(2 GB, half the available memory) and the
// forward has at most kMpfrAutoMultiplyAdds multiply-adds (about 30 s of MPFR with its check on the 2 cores here:
// Tiny-ViT, 8.4e7 of them, takes 10 s),
// double-double otherwise; any other kind is returned as it is.
inline constexpr double kMpfrAutoMultiplyAdds = 2.5e8;
std::string choose_reference(const ModelConfig& cfg, const std::string& kind, int bits, bool check);
// Throws ConfigError naming a reference kind or a number of bits that run_study does not take.
void check_study_options(const StudyOptions& o);

StudyResult run_study(const ModelConfig& cfg, const PrecisionPlan& plan, const StudyOptions& options);
// Several plans against one reference (computed once, after every plan's emulated forward): what `lpsim compare`
// and a plan-by-plan table need. run_study is its one-plan case.
std::vector<StudyResult> compare_plans(const ModelConfig& cfg, const std::vector<PrecisionPlan>& plans,
                                       const StudyOptions& options);

// The per-tap CSV (one row per layer and tap), with the run's identity in the first columns.
std::string tap_csv_header();
std::string tap_csv_row(const ModelConfig& cfg, const PrecisionPlan& plan, const StudyOptions& o, const TapError& t);
// The same row from the layer column on (sweeps put their own identity columns first).
std::string tap_metric_cells(const PrecisionPlan& plan, const TapError& t);

}  // namespace lpsim
