// `lpsim demo`: the main job until sweeps exist. Rounds a log-uniform sample of float32 numbers to each
// low-precision format and writes the relative error against the input to results/demo/rounding_error.csv,
// which scripts/plot_rounding_error.py draws: unit roundoff plateaus, the subnormal ramps, overflow.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/os.h>

#include "cli/commands.hpp"
#include "util/atomic_file.hpp"
#include "lpsim/format/array_round.hpp"
#include "lpsim/format/random_stream.hpp"

namespace lpsim::cli {

void add_demo_command(CLI::App& app) {
  auto out_dir = std::make_shared<std::string>("results/demo");
  auto samples = std::make_shared<int>(4000);
  auto no_plot = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("demo", "Relative rounding error of each format over 25 decades (CSV for a plot)");
  cmd->add_option("-o,--out", *out_dir, "output folder")->capture_default_str();
  cmd->add_option("-n,--samples", *samples, "samples")->capture_default_str()->check(CLI::Range(10, 10000000));
  cmd->add_flag("--no-plot", *no_plot, "skip the matplotlib plot (scripts/plot_rounding_error.py)");
  cmd->callback([out_dir, samples, no_plot] {
    const std::vector<std::string> names = {"fp16", "bf16", "tf32", "e5m2", "e4m3", "e4m3:sat", "e2m1"};
    std::vector<float> xs(static_cast<std::size_t>(*samples));
    for (std::size_t i = 0; i < xs.size(); ++i) {  // log-uniform on [1e-12, 1e7], seeded
      const double u = static_cast<double>(random_bits(1, 0, i) >> 11) * 0x1p-53;
      xs[i] = static_cast<float>(std::pow(10.0, -12.0 + 19.0 * u));
    }
    std::filesystem::create_directories(*out_dir);
    {
      std::string csv = "format,mode,x,rounded,rel_error\n";
      std::vector<float> ys(xs.size());
      for (const auto& name : names) {
        const Format f = parse_format(name);
        round_array(xs, ys, f.spec, Rounding::nearest_even);
        for (std::size_t i = 0; i < xs.size(); ++i) {
          const double rel = std::isfinite(ys[i]) ? std::fabs(double(ys[i]) - xs[i]) / xs[i] : NAN;
          csv += fmt::format("{},rne,{:.9g},{:.9g},{:.6g}\n", f.name, xs[i], ys[i], rel);
        }
      }
      write_atomically(*out_dir + "/rounding_error.csv", csv);  // never leave a half-written file
    }
    fmt::print("wrote {}/rounding_error.csv ({} formats x {} samples)\n", *out_dir, names.size(), xs.size());
    if (*no_plot) return;
    // The plot, as the sweep makes its own: Debian's python3 with matplotlib (what scripts/setup.sh installs).
    const std::string script = std::string(LPSIM_SOURCE_DIR) + "/scripts/plot_rounding_error.py";
    if (out_dir->find('\'') != std::string::npos) {
      fmt::print(stderr, "demo: the plot was not made (a quote in the folder's name); the CSV is complete\n");
      return;
    }
    const std::string command = fmt::format("/usr/bin/python3 '{}' '{}'", script, *out_dir);
    std::fflush(stdout);  // our lines before the script's
    if (std::system(command.c_str()) != 0)
      fmt::print(stderr, "demo: the plot was not made ({} failed); the CSV is complete\n", command);
  });
}

}  // namespace lpsim::cli
