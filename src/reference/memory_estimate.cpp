#include "lpsim/reference/memory_estimate.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "lpsim/config/config_error.hpp"
#include "lpsim/reference/forward_error.hpp"
#include "util/available_memory.hpp"

namespace lpsim {

namespace {

// Numbers a forward keeps as taps: the four taps of every block, the final norm and the logits.
double tap_elements(const ModelConfig& c) {
  const double n = c.tokens, d = c.width;
  return (4.0 * c.depth + (c.final_norm ? 1 : 0) + 1) * n * d + (c.lm_head ? n * double(c.vocab) : 0);
}

// The largest set of numbers alive at once inside one layer or the head, `bytes` each: the projections, the
// scores and probabilities of every head that runs at once (with their rounded copy in the emulated forward:
// score_copies 3, else 2), the MLP's activations, the logits with their rounded copy.
double live_bytes(const ModelConfig& c, double bytes, int concurrent_heads, int score_copies) {
  const double n = c.tokens, d = c.width, f = c.ffn, q = c.q_width(), kv = c.kv_width();
  const double heads = std::max(1, std::min(concurrent_heads, c.heads));
  const double attention = 2 * n * (q + 2 * kv) + score_copies * heads * n * n + 2 * n * q + 4 * n * d;
  const double mlp = n * f * (c.mlp == Mlp::gated ? 3 : 2) * 2 + 4 * n * d;
  const double head = c.lm_head ? 2 * n * double(c.vocab) + 2 * n * d : 2 * n * d;
  return bytes * std::max({attention, mlp, head});
}

// Parameters that GEMMs read (the emulated backend keeps a rounded copy of each).
double gemm_parameters(const ModelConfig& c) {
  const double d = c.width, f = c.ffn, q = c.q_width(), kv = c.kv_width();
  const double mlp = (c.mlp == Mlp::gated ? 3 : 2) * d * (c.experts > 0 ? double(c.experts) * c.expert_width() : f);
  const double block = d * q + 2 * d * kv + q * d + mlp + (c.experts > 0 ? d * c.experts : 0);
  const double embed = c.embedding == Embedding::patch ? double(c.patch_dim()) * d : 0;
  return c.depth * block + embed + (c.lm_head ? double(c.vocab) * d : 0);
}

// Bytes of the emulated backend's rounded copy of one GEMM operand: a float where the input format fits in one.
double operand_bytes(const PrecisionPlan& plan) {
  double widest = 4;
  for (Op op : all_ops)
    if (plan[op].gemm && plan[op].gemm->input.spec.precision > 24) widest = 8;
  return widest;
}

}  // namespace

double MemoryEstimate::total() const { return parameters + std::max(emulated, reference) + baseline; }

std::string MemoryEstimate::describe() const {
  return fmt::format("about {:.2f} GB (parameters {:.2f}, emulated forward {:.2f}, reference {:.2f})", total() / 1e9,
                     parameters / 1e9, emulated / 1e9, reference / 1e9);
}

MemoryEstimate study_memory(const ModelConfig& cfg, const PrecisionPlan& plan, const std::string& reference,
                            int reference_bits, bool check, int threads) {
  MemoryEstimate m;
  const double taps = tap_elements(cfg);
  m.baseline = 12e6;  // a tiny run's peak resident set here: libraries, thread stacks
  // The double weights live through the whole study; the emulated backend's copies only through its forward.
  m.parameters = 8 * parameter_count(cfg);
  const bool stored_params = plan.params && !(plan.params->spec == formats::fp64);
  m.emulated = operand_bytes(plan) * gemm_parameters(cfg) + (stored_params ? 8 * parameter_count(cfg) : 0) +
               8 * taps + live_bytes(cfg, 8, threads, 3);
  const double emulated_taps = 8 * taps;  // kept while the reference runs, to be compared with it
  m.tap_bytes = emulated_taps;
  if (reference == "mpfr") {
    // With the check: the reference's taps are kept while the whole forward at twice the bits runs.
    const double per_number = 32 + 8 * std::ceil(reference_bits / 64.0) + 16;  // as reference_bytes counts them
    m.reference = emulated_taps + (check ? per_number * taps + reference_bytes(cfg, 2 * reference_bits)
                                         : reference_bytes(cfg, reference_bits));
  } else if (reference == "dd") {
    // The double-double forward, then (with the check) the fp64 forward beside its taps.
    m.reference = emulated_taps + 16 * taps +
                  std::max(live_bytes(cfg, 16, threads, 2), check ? 8 * taps + live_bytes(cfg, 8, threads, 2) : 0.0);
  } else {  // fp64, checked against MPFR at reference_bits
    m.reference = emulated_taps + 8 * taps + (check ? reference_bytes(cfg, reference_bits) : live_bytes(cfg, 8, threads, 2));
  }
  return m;
}

void check_memory(const std::string& what, const MemoryEstimate& need, const std::string& advice) {
  const double have = available_memory_bytes();
  if (have > 0 && need.total() > have)
    throw ConfigError(fmt::format("{} needs {}, {:.2f} GB are available; {}", what, need.describe(), have / 1e9, advice));
}

}  // namespace lpsim
