#pragma once
// A training run seen through lpsim (arXiv 2510.21770's Exp-2/3): for every checkpoint of the run, the emulated forward
// under a precision plan against the float64 forward on a fixed probe batch, r = ||E||_F / ||X||_F per layer and tap
// over the whole batch, and the per-layer diagnostics. A run directory is what scripts/train_digits.py writes:
//   ckpt/step_NNNN.safetensors   Hugging Face ViT names, plus each LayerNorm's own eps (the Exp-3 bump)
//   log.csv                      step,loss,...
//   ln_eps.csv                   step,norm,rho_ln,sigma2_median,eps_before,eps_after (every check of Algorithm 1)
// Reference: float64. Its own error (~1e-16 relative) is 10^12 below the 16-bit mismatch these studies measure;
// `lpsim run --reference mpfr` checks it on any single checkpoint.
#include <string>
#include <vector>

#include "lpsim/diag/diagnostics.hpp"
#include "lpsim/model/plan.hpp"
#include "lpsim/model/weights.hpp"

namespace lpsim {

// The probe batch: tensor "images" of shape [n, channels, image, image] (or [n, tokens, width] without an embedding).
std::vector<ModelInput<double>> read_probe(const std::string& path, const ModelConfig& cfg);

struct CheckpointFile {
  int step = 0;
  std::string path;
};
// run_dir/ckpt/step_<N>.safetensors, by step; an empty list when there are none.
std::vector<CheckpointFile> list_checkpoints(const std::string& run_dir);
// run_dir/log.csv's loss by step (NaN where a step is missing); empty when the file is absent.
std::vector<double> read_losses(const std::string& run_dir, int steps);

struct TrajectoryLayer {
  int layer = 0;
  double r_attn = 0, r_mid = 0, r_ffn = 0, r_block = 0;  // ||E||_F / ||X||_F over the probe batch
  long nonfinite = 0;                                     // Inf/NaN values in the emulated taps (findings)
  double eps_norm1 = 0, eps_norm2 = 0;                    // the LayerNorm eps the checkpoint uses
};

struct TrajectoryPoint {
  int step = 0;
  double loss = 0;
  std::vector<TrajectoryLayer> layers;
  std::vector<LayerDiagnostics> diagnostics;  // empty when not asked for; of the probe batch (diagnose's batch form)
};

TrajectoryPoint evaluate_checkpoint(const ModelConfig& cfg, const Weights<double>& w,
                                    const std::vector<ModelInput<double>>& probe, const PrecisionPlan& plan,
                                    bool diagnostics);

// The per-layer CSV (trajectory.csv: one row per step and layer, the diagnostic columns of the sweeps) and the
// per-step series that `lpsim forecast` reads (series.csv).
std::string trajectory_header();
std::string trajectory_rows(const TrajectoryPoint& p, const ModelConfig& cfg, const PrecisionPlan& plan);
std::string series_header();
std::string series_row(const TrajectoryPoint& p, const ModelConfig& cfg, const PrecisionPlan& plan);

struct TrajectoryOptions {
  int first_step = 0;        // checkpoints before it are skipped
  int every = 1;             // every n-th step
  bool diagnostics = true;
  bool quiet = false;
};
// Evaluates run_dir's checkpoints into run_dir/trajectory.csv and run_dir/series.csv, resuming: steps already in
// series.csv are kept and skipped, and the rows are put back in step order at the end. Checkpoints are evaluated in
// parallel, rows written in step order in chunks, so a stopped run loses at most one chunk, and the files are
// identical at any thread count and after an interruption. Returns the series rows'
// count.
int run_trajectory(const std::string& run_dir, const ModelConfig& cfg, const std::vector<ModelInput<double>>& probe,
                   const PrecisionPlan& plan, const TrajectoryOptions& o);

}  // namespace lpsim
