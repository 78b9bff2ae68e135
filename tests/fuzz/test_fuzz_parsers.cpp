// A seeded mutation fuzzer for every parser that reads user input: model TOML, Hugging Face config.json, plan TOML,
// sweep TOML, safetensors, format strings, accumulation policy strings, block scheme names, token and image input
// files. Each parser gets 5000 inputs mutated from the corpus in tests/fuzz/corpus; an input passes when the parser
// returns or throws an exception with a message (lpsim's named errors). A crash, a hang (over 2 s), an empty
// message or std::bad_alloc / std::length_error (a size taken from the input unchecked) fails the test. Run the
// sanitizer build (README) to catch memory errors and undefined behaviour on the same inputs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>

#include "lpsim/accum/policy.hpp"
#include "lpsim/format/block_scale.hpp"
#include "lpsim/format/format.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/model/model_config.hpp"
#include "lpsim/model/plan.hpp"
#include "lpsim/model/safetensors.hpp"
#include "lpsim/stats/csv_table.hpp"
#include "lpsim/stats/regression_table.hpp"
#include "lpsim/sweep/sweep_config.hpp"

namespace lpsim {
namespace {

constexpr int inputs_per_parser = 5000;
const std::filesystem::path corpus = std::filesystem::path(LPSIM_SOURCE_DIR) / "tests/fuzz/corpus";

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::filesystem::path scratch() {
  const auto d = std::filesystem::temp_directory_path() / ("lpsim_fuzz_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d;
}

void write(const std::filesystem::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

// One to four edits: flip a bit, overwrite a byte, insert a dictionary token, delete or duplicate a range, or splice
// in an interesting number where a number was.
class Mutator {
 public:
  explicit Mutator(std::uint64_t seed) : g_(seed) {}
  std::string operator()(std::string s) {
    const int edits = 1 + int(g_() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t n = s.size();
      const std::size_t at = n ? g_() % n : 0;
      switch (g_() % 6) {
        case 0: if (n) s[at] = char(s[at] ^ (1 << (g_() % 8))); break;
        case 1: if (n) s[at] = char(g_() % 256); break;
        case 2: s.insert(at, tokens[g_() % std::size(tokens)]); break;
        case 3: if (n) s.erase(at, 1 + g_() % std::min<std::size_t>(16, n - at)); break;
        case 4: if (n) s.insert(at, s.substr(at, 1 + g_() % std::min<std::size_t>(32, n - at))); break;
        case 5: {  // replace the run of digits around `at` by an interesting number
          std::size_t b = at, f = at;
          while (b > 0 && std::isdigit(static_cast<unsigned char>(s[b - 1]))) --b;
          while (f < n && std::isdigit(static_cast<unsigned char>(s[f]))) ++f;
          s.replace(b, f - b, numbers[g_() % std::size(numbers)]);
          break;
        }
      }
    }
    return s;
  }

 private:
  std::mt19937_64 g_;
  static constexpr const char* tokens[] = {"0", "-1", "nan", "inf", "\"", "[", "]", "{", "}", "=", ",", ":", "\n",
                                           "[plan]", "[model]", "e4m3", "fp8", "\\u0000", "null", "true", "\"\"",
                                           "[[", "# ", ".", "-", "mxfp4", "+flash", ":sat", "tc=", "order="};
  static constexpr const char* numbers[] = {"0", "-1", "1e309", "-0", "2147483648", "9223372036854775807",
                                            "18446744073709551616", "4096", "65536", "1e-400", "3.5", "-2147483649",
                                            "999999999999", "1"};
};

// Runs `parse` on inputs mutated from `seeds`; returns how many were accepted.
int fuzz(const std::string& name, const std::vector<std::string>& seeds, const std::function<void(const std::string&)>& parse) {
  Mutator mutate(std::hash<std::string>{}(name));
  int accepted = 0;
  for (int i = 0; i < inputs_per_parser; ++i) {
    const std::string input = mutate(seeds[i % seeds.size()]);
    const auto start = std::chrono::steady_clock::now();
    try {
      parse(input);
      ++accepted;
    } catch (const std::bad_alloc&) {
      ADD_FAILURE() << name << " input " << i << ": std::bad_alloc (a size from the input was not checked)";
    } catch (const std::length_error& e) {
      ADD_FAILURE() << name << " input " << i << ": std::length_error " << e.what();
    } catch (const std::exception& e) {
      if (std::string(e.what()).empty()) ADD_FAILURE() << name << " input " << i << ": an error without a message";
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (seconds > 2) ADD_FAILURE() << name << " input " << i << " took " << seconds << " s";
  }
  ::testing::Test::RecordProperty(name + "_accepted", accepted);
  std::printf("fuzz %-18s %d inputs, %d accepted, %d refused with a message\n", name.c_str(), inputs_per_parser,
              accepted, inputs_per_parser - accepted);
  return accepted;
}

std::vector<std::string> lines(const std::string& file) {
  std::vector<std::string> v;
  std::istringstream in(slurp(corpus / file));
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}

TEST(Fuzz, StringParsers) {
  fuzz("format", lines("formats.txt"), [](const std::string& s) { parse_format(s); });
  fuzz("policy", lines("policies.txt"), [](const std::string& s) {
    const AccumPolicy p = parse_policy(s);
    if (parse_policy(to_string(p)) != p) throw std::logic_error("to_string does not round-trip");  // a bug, not an error
  });
  fuzz("scheme", lines("schemes.txt"), [](const std::string& s) { block_scheme(s); });
  fuzz("plan-preset", {"autocast-fp16", "pure-bf16+flash", "fp8-deepseek"}, [](const std::string& s) { plan_preset(s); });
}

TEST(Fuzz, TomlParsers) {
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(LPSIM_SOURCE_DIR);  // sweep files name models relative to the repository
  fuzz("model-toml", {slurp(corpus / "model.toml")}, [](const std::string& s) {
    const ModelConfig c = parse_model_config(s, "fuzz.toml");
    parameter_count(c);
  });
  fuzz("plan-toml", {slurp(corpus / "plan.toml")}, [](const std::string& s) { describe(parse_plan(s, "fuzz.toml")); });
  fuzz("sweep-toml", {slurp(corpus / "sweep.toml")}, [](const std::string& s) { parse_sweep(s, "fuzz.toml"); });
  // The expansion too: grid sizes, model axes and plan axes from the mutated file (a grid of 10^12 units kept
  // expanding for minutes before it was refused up front).
  fuzz("sweep-expand", {slurp(corpus / "sweep.toml")}, [](const std::string& s) { expand(parse_sweep(s, "fuzz.toml")); });
  std::filesystem::current_path(cwd);
}

TEST(Fuzz, HfConfigAndInputFiles) {
  const auto dir = scratch();
  const std::string llama = slurp(corpus / "hf_config.json"), vit = slurp(corpus / "vit_config.json"),
                    gpt2 = slurp(corpus / "gpt2_config.json");
  fuzz("hf-config", {llama, vit, gpt2}, [&](const std::string& s) {
    write(dir / "config.json", s);
    load_model_config(dir.string());  // no weights beside it: the config is read and checked first
  });
  std::filesystem::remove(dir / "config.json");
  const std::string tokens = slurp(corpus / "tokens.txt"), image = slurp(corpus / "image.txt");
  const ModelConfig text_model = parse_model_config(
      "[model]\narch = \"gpt2\"\nwidth = 8\nheads = 2\nffn = 16\ndepth = 1\ntokens = 32\nembedding = \"tokens\"\n"
      "vocab = 256\n", "gpt2.toml");
  fuzz("token-input", {tokens}, [&](const std::string& s) {
    write(dir / "in.txt", s);
    ModelConfig c = text_model;
    use_input_file(c, (dir / "in.txt").string());
    make_input(c, 0);
  });
  ModelConfig image_model = parse_model_config(
      "[model]\narch = \"encoder\"\nwidth = 8\nheads = 2\nffn = 16\ndepth = 1\ntokens = 17\nembedding = \"patch\"\n"
      "image = 16\npatch = 4\nchannels = 3\nclass_token = true\n", "vit.toml");
  fuzz("image-input", {image}, [&](const std::string& s) {
    write(dir / "in.txt", s);
    ModelConfig c = image_model;
    use_input_file(c, (dir / "in.txt").string());
    make_input(c, 0);
  });
  std::filesystem::remove_all(dir);
}

TEST(Fuzz, Safetensors) {
  const auto dir = scratch();
  const ModelConfig cfg = parse_model_config(slurp(corpus / "model.toml"), "model.toml");
  save_safetensors_weights((dir / "seed.safetensors").string(), cfg, make_weights(cfg, 1), "F32");
  const std::string seed = slurp(dir / "seed.safetensors");
  fuzz("safetensors", {seed}, [&](const std::string& s) {
    write(dir / "x.safetensors", s);
    read_safetensors((dir / "x.safetensors").string());
    load_safetensors_weights((dir / "x.safetensors").string(), cfg);
  });
  // A sharded checkpoint's index (its two shards: the seed file and one more tensor, so a valid index reads them).
  std::filesystem::create_directories(dir / "sharded");
  std::filesystem::copy_file(dir / "seed.safetensors", dir / "sharded" / "model-00001-of-00002.safetensors");
  write_safetensors((dir / "sharded" / "model-00002-of-00002.safetensors").string(),
                    {{"extra", Tensor{"F32", {2}, {1.0, 2.0}}}});
  fuzz("checkpoint-index", {slurp(corpus / "index.json")}, [&](const std::string& s) {
    write(dir / "sharded" / "model.safetensors.index.json", s);
    checkpoint_files((dir / "sharded").string());
    read_checkpoint((dir / "sharded").string());
  });
  std::filesystem::remove_all(dir);
}

// lpsim stats' input: a CSV (quoted fields, Inf, missing cells) and the regression over two of its columns.
TEST(Fuzz, CsvAndRegression) {
  const auto dir = scratch();
  fuzz("stats-csv", {slurp(corpus / "summary.csv")}, [&](const std::string& s) {
    write(dir / "s.csv", s);
    const CsvTable t = read_csv((dir / "s.csv").string());
    RegressionRequest q;
    q.x = "u", q.y = "r_block_p95", q.group = "plan", q.bootstrap = 50;
    regression_text(t, q);
    regression_csv(t, q);
  });
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lpsim
