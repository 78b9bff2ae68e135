#pragma once
// Each subcommand registers itself on the app; main.cpp only wires them and reports errors.
#include <CLI/CLI.hpp>

#include <functional>

namespace lpsim {
class EmulatedBackend;
}

namespace lpsim::cli {
void add_formats_command(CLI::App& app);
void add_round_command(CLI::App& app);
void add_demo_command(CLI::App& app);
void add_dot_command(CLI::App& app);
// attach: what StudyOptions::on_backend does (lpsim-cuda registers the same command with its GPU devices).
void add_run_command(CLI::App& app, std::function<void(EmulatedBackend&)> attach = {});
void add_sweep_command(CLI::App& app);
void add_stats_command(CLI::App& app);
void add_bounds_command(CLI::App& app);
void add_fp8study_command(CLI::App& app);
void add_tcfit_command(CLI::App& app);
void add_native_error_command(CLI::App& app);
void add_trajectory_command(CLI::App& app);
void add_checkpoint_forward_command(CLI::App& app);
void add_forecast_command(CLI::App& app);
void add_lnbump_command(CLI::App& app);
void add_hf_check_command(CLI::App& app);
void add_sdpa_check_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_compare_command(CLI::App& app);
}  // namespace lpsim::cli
