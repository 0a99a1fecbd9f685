// The micro-kernel contract, shared by the per-ISA files. Kept free of templates and standard-library
// headers on purpose: an inline function instantiated in an AVX-512 file could otherwise be picked by
// the linker for generic callers and fault on CPUs without AVX-512.
//
// c (MR x NR; row stride ldc) = alpha * sum_p a[p*MR + i] * b[p*NR + j] + beta * c
// a: packed A micro-panel (k x MR), b: packed B micro-panel (k x NR), both 64-byte aligned.
// beta == 0 means c is not read.
#pragma once

#include <stdint.h>

namespace nncore {

typedef void (*sgemm_ukr_fn)(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                             float alpha, float beta);

// The same for only the first m (< MR) rows of the tile: a is still packed with stride MR.
typedef void (*sgemm_ukr_rows_fn)(int64_t m, int64_t k, const float* a, const float* b, float* c,
                                  int64_t ldc, float alpha, float beta);

void sgemm_ukr_generic_4x16(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                            float alpha, float beta);
#if defined(NNCORE_X86)
void sgemm_ukr_avx2_6x16(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                         float alpha, float beta);
void sgemm_ukr_avx512_14x32(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                            float alpha, float beta);
void sgemm_ukr_avx512_14x32_rows(int64_t m, int64_t k, const float* a, const float* b, float* c,
                                 int64_t ldc, float alpha, float beta);
#endif

}  // namespace nncore
