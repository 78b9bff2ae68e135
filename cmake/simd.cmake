# The SIMD kernels live in their own translation units, compiled with AVX-512 flags and chosen at run time
# (include/lpsim/format/cpu_features.hpp), so one binary runs everywhere and gives the same bits everywhere.
include(CheckCXXCompilerFlag)
set(LPSIM_AVX512_FLAGS -mavx512f -mavx512bw -mavx512vl -mavx512dq -mf16c -mfma -mbmi2)
check_cxx_compiler_flag("-mavx512f -mavx512bw -mavx512vl -mavx512dq -mf16c" LPSIM_HAVE_AVX512_FLAGS)
option(LPSIM_ENABLE_AVX512 "Build the AVX-512 kernels (dispatched at run time)" ${LPSIM_HAVE_AVX512_FLAGS})
