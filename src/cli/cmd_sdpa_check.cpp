// `lpsim sdpa-check`: PyTorch's scaled_dot_product_attention outputs saved on the GPU (scripts/sdpa_probe.py)
// against lpsim's attention kernels: bit agreement and errors, per file, for the flash kernel's tile sizes and
// orders and for math attention.
//   lpsim sdpa-check results/hf/sdpa
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "lpsim/hw/sdpa_observations.hpp"

namespace lpsim::cli {

void add_sdpa_check_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>("results/hf/sdpa");
  CLI::App* cmd = app.add_subcommand("sdpa-check", "PyTorch's sdpa outputs from the GPU against lpsim's attention kernels");
  cmd->add_option("dir", *dir, "directory with tensors/*.safetensors")->capture_default_str();
  cmd->callback([dir] {
    std::vector<std::pair<std::string, AttentionKernel>> kernels = {{"math", {}}};
    for (int block : {64, 128, 256})
      for (bool reverse : {false, true})
        kernels.push_back({fmt::format("flash/{}{}", block, reverse ? "/rev" : ""),
                           AttentionKernel{AttentionKernel::Kind::flash, block, reverse}});
    fmt::print("{:<34} {:<12} {:<14} {:>9} {:>11} {:>11} {:>7}\n", "file", "output", "kernel", "same bits",
               "observed", "predicted", "ratio");
    for (const auto& [label, kernel] : kernels)
      for (const SdpaComparison& c : compare_sdpa_observations(*dir, kernel))
        fmt::print("{:<34} {:<12} {:<14} {:>9.4f} {:>11.4e} {:>11.4e} {:>7.3f}\n", c.file, c.output, label, c.same_bits,
                   c.observed, c.predicted, c.ratio());
  });
}

}  // namespace lpsim::cli
