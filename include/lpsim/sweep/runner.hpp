#pragma once
// Running a sweep: chunks of consecutive units in parallel (a chunk is one unit for sweeps of up to 256 units),
// each finished chunk written at once and atomically as results/<name>/parts/chunk-<index>.csv, so an interrupted
// sweep resumes where it stopped and a crash never leaves a half-written file. When every part exists the final files are assembled from the parts in unit order, so
// they are the same whatever the thread count, shards or interruptions:
//   taps.csv      one row per unit, plan, layer and tap (tap_csv_header's metrics after the axis columns)
//   summary.csv   one row per configuration (model axes, seed, plan) with tail statistics over batches and layers
//   manifest.json lpsim version and commit, the sweep file, plans, reference and its check, machine, times
#include <string>

#include "lpsim/sweep/sweep_config.hpp"

namespace lpsim {

struct SweepOptions {
  std::string results_root = "results";
  int shard = 0, shards = 1;  // run the chunks with index % shards == shard
  int threads = 0;            // 0: OpenMP's default
  bool progress = true;
  bool assemble = true;       // write the final files when every part exists
};

struct SweepOutcome {
  int units = 0, ran = 0, skipped = 0;  // skipped: parts already present (resumed)
  bool complete = false;                // every part exists and the final files were written
  std::string directory;
};

SweepOutcome run_sweep(const SweepConfig& sweep, const SweepOptions& options);

// Assembles the final files from the parts (`lpsim merge` after sharded runs). Throws naming missing parts.
void assemble_sweep(const SweepConfig& sweep, const SweepPlan& plan, const std::string& directory);

}  // namespace lpsim
