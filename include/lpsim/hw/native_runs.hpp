#pragma once
// Forward taps that a GPU computed natively, stored so that the emulation side of the comparison runs anywhere
// (CI has no GPU): a safetensors file with one F32 tensor per (model file, plan, seed, layer, tap), keyed
// "<model file>|<plan>|<seed>|<layer>|<tap>", and the bit-for-bit comparison with lpsim's emulated taps.
#include <array>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "lpsim/model/safetensors.hpp"

namespace lpsim {

struct NativeRun {
  std::string model_file;  // as given to the device tool (relative to the repository root)
  std::string plan;        // preset name or plan file
  std::uint64_t seed = 0;
  int tokens = 0, width = 0;
  std::vector<std::vector<float>> taps;  // layer-major, attn/mid/ffn/block, tokens x width each
};

std::map<std::string, Tensor> native_tensors(const std::vector<NativeRun>& runs);
std::vector<NativeRun> native_runs_from(const std::map<std::string, Tensor>& tensors);

// Bits of native outputs against emulated ones: identical count, largest distance in binary32 ulps, and a
// histogram over ulp distances 0, 1, 2-3, 4-15, 16-255, >= 256 (NaN against a number counts as >= 256).
struct BitMatch {
  long elements = 0, identical = 0;
  std::uint64_t max_ulp = 0;
  std::array<long, 6> histogram{};
  void add(float native, float emulated);
  void merge(const BitMatch& o);
  double rate() const { return elements ? double(identical) / double(elements) : 1.0; }
};
BitMatch compare_bits(std::span<const float> native, std::span<const double> emulated);

// FNV-1a (64 bits) of the binary32 bits of a tap: what CI compares when the native values are not stored.
std::uint64_t tap_digest(std::span<const float> values);
std::uint64_t tap_digest(std::span<const double> values);  // each value converted to float first

// The emulated taps of a stored run under its plan, with the weights and input of its model and seed.
std::vector<std::vector<double>> emulate_native_run(const NativeRun& run);

}  // namespace lpsim
