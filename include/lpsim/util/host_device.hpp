#pragma once
// Code written once for the CPU and the GPU: LPSIM_HD marks a function nvcc compiles for both, and kmath holds the
// few bit casts and exact math functions such code needs (the std:: ones on the host, CUDA's on the device). Every
// function here is exact (no rounding), so the two sides agree bit for bit.
#include <bit>
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define LPSIM_HD __host__ __device__
#else
#define LPSIM_HD
#endif

namespace lpsim::kmath {

LPSIM_HD inline std::uint64_t bits(double x) {
#ifdef __CUDA_ARCH__
  return static_cast<std::uint64_t>(__double_as_longlong(x));
#else
  return std::bit_cast<std::uint64_t>(x);
#endif
}
LPSIM_HD inline double from_bits(std::uint64_t b) {
#ifdef __CUDA_ARCH__
  return __longlong_as_double(static_cast<long long>(b));
#else
  return std::bit_cast<double>(b);
#endif
}

#ifdef __CUDA_ARCH__
LPSIM_HD inline int ilogb(double x) { return ::ilogb(x); }
LPSIM_HD inline double ldexp(double x, int e) { return ::ldexp(x, e); }
LPSIM_HD inline double nearbyint(double x) { return ::rint(x); }  // the device's rint rounds ties to even, no flags
LPSIM_HD inline double fma(double a, double b, double c) { return ::fma(a, b, c); }
LPSIM_HD inline double fabs(double x) { return ::fabs(x); }
LPSIM_HD inline bool isfinite(double x) { return ::isfinite(x); }
#else
inline int ilogb(double x) { return std::ilogb(x); }
inline double ldexp(double x, int e) { return std::ldexp(x, e); }
inline double nearbyint(double x) { return std::nearbyint(x); }
inline double fma(double a, double b, double c) { return std::fma(a, b, c); }
inline double fabs(double x) { return std::fabs(x); }
inline bool isfinite(double x) { return std::isfinite(x); }
#endif
// ilogb of a finite nonzero x: from the exponent field (no call), ilogb itself for subnormals.
LPSIM_HD inline int exponent(double x) {
  const int biased = int((bits(x) >> 52) & 0x7ff);
  return biased != 0 ? biased - 1023 : ilogb(x);
}

// x cut toward zero to a multiple of 2^q, exactly: the significand bits below 2^q cleared (+-0 when |x| < 2^q).
// The same value as ldexp(trunc(ldexp(x, -q)), q), without the calls. x finite.
LPSIM_HD inline double trunc_to_multiple(double x, int q) {
  const std::uint64_t b = bits(x);
  const int biased = int((b >> 52) & 0x7ff);
  const int clear = q - ((biased == 0 ? 1 : biased) - 1075);  // q minus the exponent of x's last significand bit
  if (clear <= 0) return x;
  if (clear > 52) return from_bits(b & (std::uint64_t{1} << 63));
  return from_bits(b & ~((std::uint64_t{1} << clear) - 1));
}

LPSIM_HD inline int imin(int a, int b) { return a < b ? a : b; }
LPSIM_HD inline int imax(int a, int b) { return a > b ? a : b; }
LPSIM_HD inline double dmax(double a, double b) { return a < b ? b : a; }  // std::max's rule

}  // namespace lpsim::kmath
