// Single-precision GEMM, Goto/BLIS structure: the five loops and the packing are written once here;
// only the MR x NR micro-kernel is per ISA (gemm_ukr_*.cpp), chosen at run time by CPUID.
#pragma once

#include <cstdint>

#include "common/cpu.hpp"

namespace nncore {

enum class Act : int { none = 0, relu = 1 };

struct GemmParams {
  bool trans_a = false;   // op(a) = a^T: a is stored (K, M) with row stride lda
  bool trans_b = false;   // op(b) = b^T: b is stored (N, K) with row stride ldb
  float alpha = 1.0f;
  float beta = 0.0f;      // beta == 0: c is never read (NaN garbage in c cannot leak)
  const float* bias = nullptr;  // epilogue: (N,) added to every row, after alpha*AB + beta*C
  Act act = Act::none;          // epilogue: applied last
  int num_threads = 0;          // 0: nncore's setting; 1 when called inside an outer parallel region
};

// c (M,N; row stride ldc) = act(alpha * op(a) (M,K) @ op(b) (K,N) + beta * c + bias)
// Bitwise identical for any thread count (the K loop is never split). May throw std::bad_alloc for
// its packing buffers (before any thread starts), nothing else.
void sgemm(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb,
           int64_t m, int64_t n, int64_t k, const GemmParams& p);

// op(b) (K,N) packed once for many products with different A, e.g. a recurrent weight used at every
// time step (saves repacking it per call). The layout belongs to the ISA it was packed for.
struct GemmPackedB {
  const float* data;
  int64_t k, n;
  Isa isa;
};
// Floats sgemm_pack_b needs at dst (dst must be 64-byte aligned, e.g. from thread_scratch).
int64_t sgemm_packed_b_floats(Isa isa, int64_t k, int64_t n);
GemmPackedB sgemm_pack_b(float* dst, Isa isa, const float* b, int64_t ldb, bool trans_b, int64_t k,
                         int64_t n);
// c (M,N) = act(alpha * op(a) @ B + beta * c + bias) with B from sgemm_pack_b. Single-threaded (for
// use inside an outer parallel region; p.num_threads and p.trans_b are ignored); bitwise identical
// to sgemm with one thread. May throw std::bad_alloc for its A-packing scratch, nothing else.
void sgemm_prepacked(float* c, int64_t ldc, const float* a, int64_t lda, const GemmPackedB& b,
                     int64_t m, const GemmParams& p);

// The plain triple loop (float accumulation), kept as a readable oracle.
void sgemm_ref(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb,
               int64_t m, int64_t n, int64_t k, const GemmParams& p);

// The cache blocks sgemm uses under `isa` on this CPU: the ones registered with the kernel (tuned on
// Zen 4/5), with MC lowered until the packed A block (MC x KC) fits half the L2 and NC until the
// packed B panel (KC x NC) fits half the L3 of cpu_caches() (never below one micro-tile). KC is
// kept: it fixes the summation order, so results do not depend on the cache sizes through it.
struct GemmBlocks {
  int64_t mr, nr, mc, kc, nc;
};
GemmBlocks sgemm_blocks(Isa isa);

// Name of the micro-kernel the active ISA uses, e.g. "avx512_14x32".
const char* sgemm_kernel_name();

}  // namespace nncore
