#pragma once
// safetensors files (8-byte little-endian header length, JSON header, raw little-endian data), and a model's
// weights read from and written to them under its family's tensor names (family.hpp; checkpoint_weights.cpp).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lpsim/model/weights.hpp"

namespace lpsim {

struct Tensor {
  std::string dtype;             // F64, F32, F16, BF16 (F8_E4M3, F8_E5M2 read too)
  std::vector<std::int64_t> shape;
  std::vector<double> values;    // decoded exactly
};

// Throws ConfigError naming the file and what is wrong (truncated, bad JSON, offsets outside the data, ...).
std::map<std::string, Tensor> read_safetensors(const std::string& path);
// Every tensor of a checkpoint: one safetensors file, or a Hugging Face directory (model.safetensors, or the shards
// its index names; a tensor in two shards is an error).
std::map<std::string, Tensor> read_checkpoint(const std::string& path);
// The files a checkpoint is read from: the file itself, or a Hugging Face directory's config.json and its
// model.safetensors (or its index and every shard the index names). A sweep's definition records their identity.
std::vector<std::string> checkpoint_files(const std::string& path);
// Values must be values of the dtype (they are encoded exactly, never rounded).
void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors);

// Weights from a checkpoint under the tensor names of the config's family (with or without its base model's
// prefix); a single file written under another family's names is read under those (a GPT-2 file as an encoder).
// Shapes are checked against the config; a model directory holding a tensor the model does not use is refused.
Weights<double> load_safetensors_weights(const std::string& path, const ModelConfig& cfg);
// The inverse, under the family's names, in `dtype`.
void save_safetensors_weights(const std::string& path, const ModelConfig& cfg, const Weights<double>& w,
                              const std::string& dtype = "F32");

}  // namespace lpsim
