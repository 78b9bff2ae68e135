#pragma once
// Seeded weights and inputs. Every tensor draws from its own counter-based stream (named after the tensor), so a
// value depends only on (seed, tensor, index): the same on every machine and at any thread count.
#include <cstdint>

#include "lpsim/format/format.hpp"
#include "lpsim/model/weights.hpp"

namespace lpsim {

// Weights from the initialiser of cfg.init (or the safetensors file it names), rounded to cfg.init.storage.
Weights<double> make_weights(const ModelConfig& cfg, std::uint64_t seed);
// Runs the model on a file's input: token ids (whitespace separated; the sequence length becomes the file's) or an
// image's values (channel, row, column). Throws ConfigError naming the file and the bad value.
void use_input_file(ModelConfig& cfg, const std::string& path);
// A copy whose parameters outside GEMMs are rounded to f (PrecisionPlan::params).
Weights<double> params_rounded(const Weights<double>& w, const FormatSpec& f);
// The rotary tables of a RoPE model (Weights::rope_cos/sin), as transformers computes them in fp32.
void add_rope_tables(Weights<double>& w, const ModelConfig& cfg);

// Input batch number `batch` (from cfg.input: a seeded generator or a file), rounded to cfg.init.storage.
ModelInput<double> make_input(const ModelConfig& cfg, std::uint64_t seed, int batch = 0);
// An input from its numbers (an image as channels x rows x columns, or the tokens x width residual stream), rounded
// to cfg.init.storage and cut into patches where the model embeds patches.
ModelInput<double> input_from_values(const ModelConfig& cfg, std::vector<double> values);

// A standard normal number from the stream (Box-Muller on two counter-based uniforms).
double normal_at(std::uint64_t seed, std::uint64_t stream, std::uint64_t index);
std::uint64_t stream_id(const char* name, int layer = -1);

}  // namespace lpsim
