#pragma once
// arXiv 2602.18851's FP8 overflow scenario, forward only: attention logits S / sqrt(d_h) stored in fp8 e4m3 under four
// per-tensor scalings (current amax, Transformer Engine's delayed amax history, the geometry-aware scale from the
// deterministic logit bound that the weights alone give, and the scale from arXiv 2602.18851's rank-aware bound) and two block
// scalings along each row of logits (MXFP8, DeepSeek's 1x128 tiles), over a sequence of input batches of which some carry a transient
// outlier token. Overflows (e4m3 has no infinity: NaN, as ml_dtypes casts), saturations and the forward error of each
// batch against the float64 reference are counted per scheme.
#include <cstdint>
#include <string>
#include <vector>

#include "lpsim/model/weights.hpp"

namespace lpsim {

// Per layer, max over heads of ||W_Q W_K^T||_2 (max_t ||h_t||)^2 / sqrt(d_h), where for a pre-LN block every
// normalised token satisfies ||h_t|| <= ||gamma||_inf sqrt(d) + ||beta||_2 (LayerNorm; RMSNorm without beta): a bound
// on every logit that needs no activation. Throws for post-LN models (their attention input is not normalised).
std::vector<double> logit_bounds_from_weights(const ModelConfig& cfg, const Weights<double>& w);
// Per layer, max over heads of arXiv 2602.18851's rank-aware bound (diag/logit_bounds.hpp) with the second moments a
// normalised token has a priori: gamma_a^2 + beta_a^2 per coordinate (zero-mean, unit-variance normalised values),
// n = tokens, failure probability delta per head. Needs no activation either, but holds only with probability
// 1 - delta and only for inputs the Gaussian model describes.
std::vector<double> rank_aware_bounds_from_weights(const ModelConfig& cfg, const Weights<double>& w, double delta = 1e-3);

struct Fp8StudyOptions {
  int batches = 40;
  std::vector<int> outliers = {10, 25};  // batches whose token 0 is the outlier
  double outlier_scale = 8;              // its magnitude, in units of the input scale
  std::uint64_t seed = 0;
  std::string plan = "autocast-bf16";    // everything else; the logits (scale op) are stored in `logit_format`
  std::string logit_format = "e4m3";
};

struct Fp8StudyRow {
  int batch = 0;
  bool outlier = false;
  std::string scheme;  // current, delayed, geometry, rank; mxfp8-e4m3, fp8-1x128 (block scaling along each row)
  long overflows = 0, saturations = 0, nonfinite = 0;
  double logit_amax = 0;   // largest |logit| of the batch (float64 forward)
  double logit_bound = 0;  // the scheme's bound (max over layers): geometry's or rank's; geometry's for the others
  double r_final = 0;      // ||E||_F / ||X||_F of the final block against the float64 forward
};

std::vector<Fp8StudyRow> run_fp8_study(const ModelConfig& cfg, const Fp8StudyOptions& options);

}  // namespace lpsim
