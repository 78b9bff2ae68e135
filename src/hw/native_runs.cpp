#include "lpsim/hw/native_runs.hpp"
#include "lpsim/util/fnv1a.hpp"

#include <fmt/format.h>

#include <bit>
#include <stdexcept>

#include "lpsim/hw/tc_probe.hpp"
#include "lpsim/model/init.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "util/split.hpp"

namespace lpsim {

std::map<std::string, Tensor> native_tensors(const std::vector<NativeRun>& runs) {
  std::map<std::string, Tensor> t;
  for (const auto& r : runs)
    for (std::size_t i = 0; i < r.taps.size(); ++i)
      t[fmt::format("{}|{}|{}|{}|{}", r.model_file, r.plan, r.seed, i / 4, tap_name(all_taps[i % 4]))] =
          Tensor{"F32", {r.tokens, r.width}, std::vector<double>(r.taps[i].begin(), r.taps[i].end())};
  return t;
}

std::vector<NativeRun> native_runs_from(const std::map<std::string, Tensor>& tensors) {
  std::map<std::string, NativeRun> runs;
  std::map<std::string, std::map<std::pair<int, int>, const Tensor*>> parts;
  for (const auto& [key, tensor] : tensors) {
    const auto f = split(key, '|');
    if (f.size() != 5 || tensor.shape.size() != 2)
      throw std::runtime_error(fmt::format("native tap '{}' is not 'model|plan|seed|layer|tap' of rank 2", key));
    const std::string id = f[0] + "|" + f[1] + "|" + f[2];
    NativeRun& r = runs[id];
    r.model_file = f[0], r.plan = f[1], r.seed = std::stoull(f[2]);
    r.tokens = int(tensor.shape[0]), r.width = int(tensor.shape[1]);
    int tap = -1;
    for (int i = 0; i < 4; ++i)
      if (tap_name(all_taps[i]) == f[4]) tap = i;
    if (tap < 0) throw std::runtime_error(fmt::format("native tap '{}': unknown tap '{}'", key, f[4]));
    parts[id][{std::stoi(f[3]), tap}] = &tensor;
  }
  std::vector<NativeRun> out;
  for (auto& [id, r] : runs) {
    for (const auto& [where, t] : parts[id]) r.taps.emplace_back(t->values.begin(), t->values.end());
    out.push_back(std::move(r));
  }
  return out;
}

void BitMatch::add(float native, float emulated) {
  const std::uint64_t u = ulp_distance(native, emulated);
  ++elements;
  identical += u == 0;
  max_ulp = std::max(max_ulp, u);
  const int bin = u == 0 ? 0 : u == 1 ? 1 : u < 4 ? 2 : u < 16 ? 3 : u < 256 ? 4 : 5;
  ++histogram[bin];
}

void BitMatch::merge(const BitMatch& o) {
  elements += o.elements, identical += o.identical, max_ulp = std::max(max_ulp, o.max_ulp);
  for (int i = 0; i < 6; ++i) histogram[i] += o.histogram[i];
}

BitMatch compare_bits(std::span<const float> native, std::span<const double> emulated) {
  if (native.size() != emulated.size())
    throw std::runtime_error(fmt::format("{} native values against {} emulated", native.size(), emulated.size()));
  BitMatch m;
  for (std::size_t i = 0; i < native.size(); ++i) m.add(native[i], float(emulated[i]));
  return m;
}

std::uint64_t tap_digest(std::span<const float> values) {
  std::uint64_t h = fnv1a_basis;
  for (float v : values) h = fnv1a_add(h, std::bit_cast<std::uint32_t>(v), 4);
  return h;
}

std::uint64_t tap_digest(std::span<const double> values) {
  const std::vector<float> f(values.begin(), values.end());
  return tap_digest(std::span<const float>(f));
}

std::vector<std::vector<double>> emulate_native_run(const NativeRun& run) {
  const ModelConfig cfg = load_model_config(run.model_file);
  const Weights<double> w = make_weights(cfg, run.seed);
  const ModelInput<double> in = make_input(cfg, run.seed);
  PrecisionPlan plan = load_plan(run.plan);
  plan.params.reset();  // the deterministic native kernels hold every parameter in fp32 (cuda/native_adapter.cpp)
  EmulatedBackend be(plan, run.seed);
  std::vector<std::vector<double>> taps;
  for (auto& m : emulated_taps(be, cfg, w, in)) taps.push_back(as_vector(m.data));
  return taps;
}

}  // namespace lpsim
