// Outputs and limits that cannot hurt the machine (issue 21): what a user names is never replaced by something
// else, sweep names stay inside --results, an MPFR reference too big for the memory is refused before any work,
// and statistics over Inf stay Inf and say what they left out.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lpsim/config/config_error.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/model_config.hpp"
#include "lpsim/model/plan.hpp"
#include "lpsim/model/safetensors.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "lpsim/stats/regression.hpp"
#include "lpsim/sweep/sweep_config.hpp"

namespace lpsim {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::map<std::string, Tensor> one = {{"x", Tensor{"F32", {2}, {1.0, 2.0}}}};

TEST(OutputSafety, DevicesAreWrittenThroughNeverReplaced) {
  write_safetensors("/dev/null", one);  // what `-o /dev/null` does: the device must stay a device
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_FALSE(fs::exists("/dev/null.tmp" + std::to_string(getpid())));
}

TEST(OutputSafety, SymlinksAreWrittenThroughAndStayLinks) {
  const fs::path dir = fs::temp_directory_path() / "lpsim_output_links";
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::create_symlink(dir / "target.safetensors", dir / "link.safetensors");
  write_safetensors((dir / "link.safetensors").string(), one);
  EXPECT_TRUE(fs::is_symlink(dir / "link.safetensors"));
  EXPECT_EQ(read_safetensors((dir / "target.safetensors").string()).at("x").values, (std::vector<double>{1.0, 2.0}));
  // A directory is refused, naming it; nothing is written beside it.
  try {
    write_safetensors(dir.string(), one);
    ADD_FAILURE() << "a directory was overwritten";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
  // A link planted under the temporary name is never followed: the write fails instead of writing through it.
  const fs::path planted = dir / ("out.safetensors.tmp" + std::to_string(getpid()));
  fs::create_symlink(dir / "victim", planted);
  EXPECT_THROW(write_safetensors((dir / "out.safetensors").string(), one), ConfigError);
  EXPECT_FALSE(fs::exists(dir / "victim"));
  fs::remove_all(dir);
}

TEST(OutputSafety, SweepNamesStayInsideTheResultsDirectory) {
  const std::string model = std::string(LPSIM_SOURCE_DIR) + "/models/tiny.toml";
  for (const std::string name : {"../escaped", "", "..", ".", "a/b", "line\\nbreak"}) {
    const std::string text = "[sweep]\nname = \"" + name + "\"\nmodel = \"" + model + "\"\n";
    try {
      parse_sweep(text, "s.toml");
      ADD_FAILURE() << "name '" << name << "' was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("key 'sweep.name'"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(parse_sweep("[sweep]\nname = \"ok-1.2_b+c\"\nmodel = \"" + model + "\"\n", "s.toml").name, "ok-1.2_b+c");
}

TEST(OutputSafety, AnMpfrReferenceTooBigIsRefusedBeforeAnyWork) {
  ModelConfig c;
  c.width = 4, c.heads = 1, c.ffn = 8, c.depth = 1, c.tokens = 65536;  // ~4 n^2 mpfr numbers: over a terabyte
  ASSERT_GT(reference_bytes(c, 128), 1e12);
  try {
    run_study(c, plan_preset("fp32"), StudyOptions{});
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    // The whole study's estimate, the MPFR check at 256 bits within it (memory_estimate.hpp).
    EXPECT_NE(std::string(e.what()).find("with the mpfr reference and its check needs about"), std::string::npos) << e.what();
  }
  c.tokens = 16;  // and a small one fits
  EXPECT_LT(reference_bytes(c, 256), 1e7);
}

TEST(OutputSafety, ModelsTooBigForTheMachineAreRefused) {
  ModelConfig c;
  c.width = 1024, c.heads = 8, c.ffn = 4096, c.depth = 4096;  // 5e10 parameters: 1.2 TB as doubles
  EXPECT_GT(parameter_count(c), 5e10);
  try {
    make_weights(c, 0);
    ADD_FAILURE() << "allocated";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("parameters need about"), std::string::npos) << e.what();
  }
}

TEST(OutputSafety, QuantilesOverInfinityAreInfinity) {
  EXPECT_EQ(quantile({1.0, INFINITY}, 0.0), 1.0);  // 1 + 0 * inf would be NaN
  EXPECT_EQ(quantile({1.0, INFINITY}, 1.0), INFINITY);
  EXPECT_EQ(quantile({1.0, INFINITY}, 0.5), INFINITY);
  EXPECT_EQ(quantile({INFINITY, INFINITY, 2.0}, 0.9), INFINITY);
  EXPECT_EQ(quantile({1.0, 2.0, 3.0}, 0.5), 2.0);
  // Regression says what it left out.
  const std::vector<double> x = {1, 2, 3, 4, 5}, y = {1, INFINITY, 3, -1, 5};
  const Regression r = regress(x, y, false, true, 0);
  EXPECT_EQ(r.n, 3);
  EXPECT_EQ(r.nonfinite, 1);
  EXPECT_EQ(r.nonpositive, 1);
}

}  // namespace
}  // namespace lpsim
