/* The two calls lpsim_bench_round makes into CPFloat (bench/cpfloat_shim.c). */
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
/* A custom CPFloat format: precision counts the implicit bit, as in lpsim; round is a cpfloat_rounding_t value.
 * Returns 0, or a negative number when CPFloat refuses the options. */
int cpfloat_shim_configure(int precision, int emin, int emax, int round, int subnormal, int saturation);
int cpfloat_shim_round(float *out, const float *in, size_t n);
#ifdef __cplusplus
}
#endif
