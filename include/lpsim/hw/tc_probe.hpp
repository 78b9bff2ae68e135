#pragma once
// Probe matrices that reveal how a GPU's matrix units accumulate, and the fit of lpsim's tensor-core model
// (accum/policy.hpp, TensorCoreModel) to what the hardware returned.
//
// A probe set is `tiles` independent products D = A (16 x K) B (K x 8), the shape of one warp's mma.sync chain,
// with operands that are values of one input format. The device side (cuda/, scripts/cuda_torch_probe.py)
// computes D on the GPU; the host side scores candidate models by how many outputs they reproduce bit for bit.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lpsim/accum/policy.hpp"
#include "lpsim/model/safetensors.hpp"

namespace lpsim {

struct ProbeSet {
  std::string format;  // fp16, bf16, e4m3, e5m2
  std::string kind;    // random: N(0,1); wide: exponents over most of the range; cancel: the second half of each
                       // dot product cancels the first up to small perturbations (the accumulator's low bits show)
  int tiles = 0, k = 0;
  std::vector<float> a, b;  // tiles x 16 x k and tiles x k x 8, row-major
  std::string key() const { return format + "." + kind; }
};

inline constexpr int probe_rows = 16, probe_cols = 8;

// Every format x kind, seeded; values are exact in the format (and in float).
std::vector<ProbeSet> make_probe_sets(std::uint64_t seed, int tiles, int k);

// The file the device reads: tensors "<format>.<kind>.a" and ".b" (F32).
std::map<std::string, Tensor> probe_tensors(const std::vector<ProbeSet>& sets);
std::vector<ProbeSet> probe_sets_from(const std::map<std::string, Tensor>& tensors);

// D of a probe set under an accumulation policy, by lpsim's kernels.
std::vector<float> emulate_probe(const ProbeSet& set, const AccumPolicy& policy);

// Distance between two floats in units in the last place of binary32 (ordered integers; NaN = max).
std::uint64_t ulp_distance(float x, float y);

struct ProbeScore {
  std::string model;      // policy text
  double match = 0;       // fraction of outputs bit-identical
  std::uint64_t max_ulp = 0;
  double mean_ulp = 0;
};
ProbeScore score_probe(const ProbeSet& set, const std::vector<float>& observed, const AccumPolicy& policy);

// Candidate models: IEEE sequential fp32 fma (a CUDA core loop), exact accumulation rounded once, and the
// tensor-core model over k in {4, 8, 16, 32, 64}, kept bits 22..30 (fp16/bf16) or 10..30 (fp8), alignment
// truncated or rounded, normalisation toward zero or to nearest. Sorted best first (match, then max_ulp).
// `out`: the format the engine returned its product in (fp32, or fp16/bf16 where an API rounds it).
std::vector<ProbeScore> fit_tensor_core(const std::vector<const ProbeSet*>& sets,
                                        const std::vector<const std::vector<float>*>& observed,
                                        const std::string& out = "fp32");

}  // namespace lpsim
