#pragma once
// summary.csv: one row per configuration (model axis values, seed, plan), tail statistics of the forward error
// over its batches and layers. The papers report 95th percentiles of the block-output mismatch r_block.
#include <string>

#include "lpsim/sweep/sweep_config.hpp"

namespace lpsim {

std::string summarize(const SweepConfig& sweep, const SweepPlan& plan, const std::string& taps_csv);

}  // namespace lpsim
