#pragma once
// Dot products and matrix products under an accumulation policy, computed by the fastest kernel that gives the
// reference's bits (dot_reference.hpp): an AVX-512 kernel for the common policies, a portable exact kernel for the
// rest, the MPFR reference itself for exact accumulation and operands wider than 26 bits.
#include <cstdint>
#include <span>
#include <string_view>

#include "lpsim/accum/policy.hpp"
#include "lpsim/format/array_round.hpp"

namespace lpsim {

class GemmDevice;

struct GemmOptions {
  StochasticStream sr{};     // stochastic rounding words; element (i, j) is number offset + i*n + j (sr_slots.hpp)
  Isa isa = Isa::best;       // every choice gives the same bits
  bool check_inputs = true;  // reject operands that are not values of the policy's input format
  GemmDevice* device = nullptr;  // an accelerator that runs the product with the same bits, where it can
  // Nonzero: b is a weight with this id (new_weight_id), the same values on every call with it, so a device may
  // keep its copy until forget(id).
  std::uint64_t b_id = 0;
};

// A process-wide id for a weight operand that a GemmDevice may keep: never 0, never issued twice.
std::uint64_t new_weight_id();

// An accelerator for gemm (the GPU's emulated GEMM, cuda/emulated_gemm.hpp). It computes exactly what the CPU
// kernels compute, bit for bit, or returns false and leaves the product to them (a policy it has no kernel for).
// Operands are already checked when it is called.
class GemmDevice {
 public:
  virtual ~GemmDevice() = default;
  // b_id: GemmOptions::b_id (0: b is a fresh operand).
  virtual bool gemm(const AccumPolicy& policy, int m, int n, int k, std::span<const double> a,
                    std::span<const double> b, std::span<double> c, const StochasticStream& sr,
                    std::uint64_t b_id) = 0;
  virtual bool gemm(const AccumPolicy& policy, int m, int n, int k, std::span<const float> a, std::span<const float> b,
                    std::span<float> c, const StochasticStream& sr, std::uint64_t b_id) = 0;
  // The weight with this id is gone: drop any copy kept of it.
  virtual void forget(std::uint64_t /*b_id*/) {}
  // Whether gemm may be called from several threads at once (the device serialises or overlaps the calls itself).
  virtual bool concurrent() const { return false; }
};

// Which kernel computes a policy.
enum class GemmPath : std::uint8_t {
  fp32_fma,       // AVX-512: binary32 accumulation with fma (or separate multiply and add), native instructions
  rounded_acc,    // AVX-512: narrower accumulators, each step rounded through round-to-odd at 24 bits
  tensor_core,    // AVX-512: the tensor-core model, vectorised over output elements
  generic,        // portable exact kernel, one element at a time
  reference,      // MPFR, one step at a time
};
std::string_view path_name(GemmPath path);
GemmPath gemm_path(const AccumPolicy& policy, Isa isa, bool float_operands);

// c (m x n) = a (m x k) * b (k x n), all row-major. Float arrays need formats that float holds (input, output).
void gemm(const AccumPolicy& policy, int m, int n, int k, std::span<const float> a, std::span<const float> b,
          std::span<float> c, const GemmOptions& options = {});
void gemm(const AccumPolicy& policy, int m, int n, int k, std::span<const double> a, std::span<const double> b,
          std::span<double> c, const GemmOptions& options = {});

// c (m x n) += a (m x k) * b (k x n) as a matrix unit's D = A B + C: each element's accumulation continues from
// its value in c (values of policy.acc) and stays in the accumulator (reference_accumulate_dot is the definition).
// Sequential over rows: callers are small tiles (flash attention's P V update).
void accumulate_gemm(const AccumPolicy& policy, int m, int n, int k, std::span<const double> a,
                     std::span<const double> b, std::span<double> c, const GemmOptions& options = {});

double dot(const AccumPolicy& policy, std::span<const double> a, std::span<const double> b,
           const GemmOptions& options = {});

// Whether dot() runs the policy as a plain binary32 loop: s = a0 b0, then s = fma(a_t, b_t, s) (or s + a_t b_t)
// in float, in order (binary32 input, accumulator and output, RNE, sequential, no product rounding, no tensor
// core). A caller may run the same loop itself on values it holds (a sum: fma(x, 1, s) = s + x).
bool is_float_loop(const AccumPolicy& policy);

}  // namespace lpsim
