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

// Variant reading A unpacked, row-major: a[i*lda + p]. For a short N, packing A costs as much as
// the product itself; reading rows straight from the source removes that pass.
typedef void (*sgemm_ukr_rowa_fn)(int64_t k, const float* a, int64_t lda, const float* b, float* c,
                                  int64_t ldc, float alpha, float beta);

// The same for only the first m (< MR) rows of the tile: a is still packed with stride MR.
typedef void (*sgemm_ukr_rows_fn)(int64_t m, int64_t k, const float* a, const float* b, float* c,
                                  int64_t ldc, float alpha, float beta);

// One row: c (1 x n) = alpha * a (1 x k, element stride inca) @ b (k x n, row stride ldb) + beta * c
// (beta == 0: c not read). Each output is one FMA chain in k order. For a single input row (a
// Dense layer at batch 1) packing B costs more than the product.
typedef void (*sgemv_rowb_fn)(int64_t k, int64_t n, const float* a, int64_t inca, const float* b,
                              int64_t ldb, float* c, float alpha, float beta);

// One row against `panels` full packed B micro-panels (k x NR each, panel stride k * NR): c (1 x
// panels * NR) = alpha * a @ B + beta * c, a's elements inca apart. Exactly the arithmetic of the
// tile kernels' rows (one FMA chain per element in k order, same store formula), but several panels
// at once so the chains overlap: a single row through the tile kernel waits on FMA latency.
typedef void (*sgemv_packed_fn)(int64_t k, int64_t panels, const float* a, int64_t inca,
                                const float* b, float* c, float alpha, float beta);

void sgemm_ukr_generic_4x16(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                            float alpha, float beta);
#if defined(NNCORE_X86)
void sgemm_ukr_avx2_6x16(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                         float alpha, float beta);
void sgemv_rowb_avx2(int64_t k, int64_t n, const float* a, int64_t inca, const float* b,
                     int64_t ldb, float* c, float alpha, float beta);
void sgemv_packed_avx2_16(int64_t k, int64_t panels, const float* a, int64_t inca,
                          const float* b, float* c, float alpha, float beta);
void sgemm_ukr_avx512_14x32(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                            float alpha, float beta);
void sgemm_ukr_avx512_14x32_rowa(int64_t k, const float* a, int64_t lda, const float* b, float* c,
                                 int64_t ldc, float alpha, float beta);
void sgemv_rowb_avx512(int64_t k, int64_t n, const float* a, int64_t inca, const float* b,
                       int64_t ldb, float* c, float alpha, float beta);
void sgemv_packed_avx512_32(int64_t k, int64_t panels, const float* a, int64_t inca,
                            const float* b, float* c, float alpha, float beta);
void sgemm_ukr_avx512_14x32_rows(int64_t m, int64_t k, const float* a, const float* b, float* c,
                                 int64_t ldc, float alpha, float beta);
#endif

}  // namespace nncore
