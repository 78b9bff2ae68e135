/* CPFloat (Fasi and Mikaitis), called from the C++ benchmark through a plain C function: its headers are C99
 * with GNU extensions and define their functions static inline, so they compile here and nowhere else.
 * Built only when LPSIM_CPFLOAT_DIR points to a CPFloat checkout with its pcg-c submodule. */
#include <stddef.h>

#include "cpfloat_binary32.h"
#include "cpfloat_shim.h"

static optstruct *options = NULL;

int cpfloat_shim_configure(int precision, int emin, int emax, int round, int subnormal, int saturation) {
  if (options == NULL) options = init_optstruct();
  strcpy(options->format, "custom");
  options->precision = (cpfloat_precision_t)precision;
  options->emin = emin;
  options->emax = emax;
  options->explim = CPFLOAT_EXPRANGE_TARG;
  options->infinity = CPFLOAT_INF_USE;
  options->round = (cpfloat_rounding_t)round;
  options->saturation = saturation ? CPFLOAT_SAT_USE : CPFLOAT_SAT_NO;
  options->subnormal = subnormal ? CPFLOAT_SUBN_USE : CPFLOAT_SUBN_RND;
  options->flip = CPFLOAT_SOFTERR_NO;
  options->p = 0;
  return cpfloat_validate_optstructf(options) < 0 ? -2 : 0;
}

int cpfloat_shim_round(float *out, const float *in, size_t n) { return cpfloatf(out, in, n, options); }
