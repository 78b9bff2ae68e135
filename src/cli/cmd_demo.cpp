// `lpsim demo`: the main job until sweeps exist. Rounds a log-uniform sample of float32 numbers to each
// low-precision format and writes the relative error against the input to results/demo/rounding_error.csv,
// which scripts/plot_rounding_error.py draws: unit roundoff plateaus, the subnormal ramps, overflow.
#include <cmath>
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
  auto* cmd = app.add_subcommand("demo", "Relative rounding error of each format over 25 decades (CSV for a plot)");
  cmd->add_option("-o,--out", *out_dir, "output folder")->capture_default_str();
  cmd->add_option("-n,--samples", *samples, "samples")->capture_default_str()->check(CLI::Range(10, 10000000));
  cmd->callback([out_dir, samples] {
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
  });
}

}  // namespace lpsim::cli
