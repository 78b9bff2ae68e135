#pragma once
// Rounding whole arrays to a format chosen at run time: the fast face of the rounding core.
#include <cstdint>
#include <span>
#include <string_view>

#include "lpsim/format/format.hpp"
#include "lpsim/format/rounding.hpp"

namespace lpsim {

// Where stochastic rounding takes its random bits: element i of the array uses random_bits(seed, stream,
// offset + i), so a result never depends on threads or chunking, and a caller rounding one long array in pieces
// passes the piece's start as offset.
struct StochasticStream {
  std::uint64_t seed = 0;
  std::uint64_t stream = 0;
  std::uint64_t offset = 0;
};

// Instruction sets of the kernels. Every one gives the same bits; `best` is the fastest this CPU runs.
enum class Isa : std::uint8_t { best, portable, avx512 };
bool isa_available(Isa isa);
std::string_view isa_name(Isa isa);

// out[i] = in[i] rounded to the format (held exactly in the carrier type). in and out may be the same array.
// Large arrays are split over OpenMP threads. A float array holds every value of formats with p <= 24 and
// emin >= -126; for wider formats, results beyond float's range become +-inf.
void round_array(std::span<const float> in, std::span<float> out, const FormatSpec& f, Rounding mode,
                 StochasticStream sr = {}, Isa isa = Isa::best);
void round_array(std::span<const double> in, std::span<double> out, const FormatSpec& f, Rounding mode,
                 StochasticStream sr = {}, Isa isa = Isa::best);

}  // namespace lpsim
