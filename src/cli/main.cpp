#include <cstdio>
#include <exception>

#include "cli/commands.hpp"
#include "cli/mpi_world.hpp"
#include "lpsim/util/keep_freed_memory.hpp"

int main(int argc, char** argv) {
  lpsim::keep_freed_memory();
  const lpsim::cli::MpiWorld world = lpsim::cli::mpi_start(argc, argv);
  struct Stop {
    const lpsim::cli::MpiWorld& w;
    ~Stop() { lpsim::cli::mpi_stop(w); }
  } stop{world};
  CLI::App app{"lpsim: emulated-precision forward-error studies of transformers"};
  app.require_subcommand(1);
  lpsim::cli::add_formats_command(app);
  lpsim::cli::add_round_command(app);
  lpsim::cli::add_demo_command(app);
  lpsim::cli::add_dot_command(app);
  lpsim::cli::add_run_command(app);
  lpsim::cli::add_sweep_command(app);
  lpsim::cli::add_stats_command(app);
  lpsim::cli::add_bounds_command(app);
  lpsim::cli::add_fp8study_command(app);
  lpsim::cli::add_tcfit_command(app);
  lpsim::cli::add_native_error_command(app);
  lpsim::cli::add_trajectory_command(app);
  lpsim::cli::add_checkpoint_forward_command(app);
  lpsim::cli::add_forecast_command(app);
  lpsim::cli::add_lnbump_command(app);
  lpsim::cli::add_hf_check_command(app);
  lpsim::cli::add_sdpa_check_command(app);
  lpsim::cli::add_quantize_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {  // bad formats, numbers, files: the message names the culprit
    std::fprintf(stderr, "lpsim: error: %s\n", e.what());
    return 2;
  }
  return 0;
}
