#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>
#include <exception>

#include "cli/commands.hpp"
#include "cli/mpi_world.hpp"
#include "cli/strict_numbers.hpp"
#include "util/progress.hpp"
#include "util/suggest.hpp"
#include "lpsim/util/keep_freed_memory.hpp"

#ifndef LPSIM_VERSION
#define LPSIM_VERSION "unknown"
#endif

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
  lpsim::cli::add_compare_command(app);
  app.set_version_flag("--version", "lpsim " LPSIM_VERSION);
  // --threads on every command that computes (sweep has its own, which also sizes its memory check).
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    if (sub->get_name() != "formats" && sub->get_name() != "stats" && !sub->get_option_no_throw("--threads"))
      sub->add_option_function<int>("--threads", [](int n) { omp_set_num_threads(n); },
                                    "OpenMP threads (default: all cores; results do not depend on it)")
          ->check(CLI::Range(1, 4096));
  // --quiet on every command without its own: no progress lines (util/progress.hpp).
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    if (!sub->get_option_no_throw("--quiet"))
      sub->add_flag_callback("--quiet", [] { lpsim::progress_quiet = true; }, "no progress output on stderr");
  lpsim::cli::strict_integer_options(app);
  if (argc > 1 && argv[1][0] != '-') {  // a misspelt command: say which one was meant, not "A subcommand is required"
    std::vector<std::string> names;
    for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) names.push_back(sub->get_name());
    if (std::find(names.begin(), names.end(), argv[1]) == names.end()) {
      std::fprintf(stderr, "lpsim: error: '%s' is not a command%s; `lpsim --help` lists them\n", argv[1],
                   lpsim::did_you_mean(argv[1], names).c_str());
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {  // a command's own status (hf-check: 1 for an undocumented deviation)
    return app.exit(e);
  } catch (const CLI::ParseError& e) {  // usage errors exit 2, as the README promises; --help and --version 0
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const std::exception& e) {  // bad formats, numbers, files: the message names the culprit
    std::fprintf(stderr, "lpsim: error: %s\n", e.what());
    return 2;
  }
  return 0;
}
