// Winograd F(2x2, 3x3) Conv2D for 3x3, stride-1, undilated convolutions on NHWC (Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks", 2015). Each 2x2 output tile is
//   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
// with d the 4x4 input patch and g the 3x3 kernel, per channel pair. Summed over the input
// channels, the 16 elementwise products become 16 independent GEMMs
//   M[e] (tiles, F) = V[e] (tiles, C) @ U[e] (C, F),   e = 0..15,
// run on nncore's own GEMM micro-kernels (sgemm_prepacked, U packed once per call or cached).
// 16 multiplications per 4 outputs instead of 36: 2.25x fewer when the output is a multiple of 2.
//
// The transforms (input V = Bᵀ d B, output Y = Aᵀ M A + bias, act, weights U = G g Gᵀ) are
// written once over a vector-traits type (conv2d_winograd_impl.hpp) and compiled per ISA.
// Tiles are processed in blocks sized from the L2 cache CPUID reports, so the block's V and M stay
// in L2; blocks are the parallel work units. Each output's summation order depends on the shapes
// and the CPU only, never on the thread count: bitwise identical for any number of threads.
#pragma once

#include <cstdint>

#include "common/cpu.hpp"
#include "kernels/conv2d.hpp"

namespace nncore {

// The per-ISA transforms. Tiles are numbered t = (n * TH + th) * TW + tw over the batch, with
// TH = ceil(OH / 2), TW = ceil(OW / 2); tile (th, tw) reads input rows 2*th - pt + [0, 4) and
// columns 2*tw - pl + [0, 4) (zero outside x) and writes the output pixels 2*th + [0, 2),
// 2*tw + [0, 2) that lie inside y.
struct WinogradKernels {
  // v[e * ve + i * C + c] = (Bᵀ d B)[e] of tile t0 + i, channel c, for i in [0, count).
  // zeros: at least C zero floats (read in place of padding pixels).
  void (*input)(float* v, int64_t ve, const float* x, const Conv2dParams& p, int64_t t0,
                int64_t count, const float* zeros);
  // y pixels of tiles [t0, t0 + count) = act(Aᵀ M A + b), m[e * me + i * F + f].
  void (*output)(float* y, const float* m, int64_t me, const float* b, const Conv2dParams& p,
                 int64_t t0, int64_t count);
  // u[e * C * F + c * F + f] = (G g Gᵀ)[e] for g = w[:, :, c, f], w (3,3,C,F).
  void (*weights)(float* u, const float* w, int64_t c, int64_t f);
  const char* name;
  // Backward (weight gradient), see conv2d_winograd_impl.hpp: mg = A dY Aᵀ of tiles
  // [t0, t0 + count) of g (N, OH, OW, F), laid out as input's v with F channels; and
  // dw (+)= Gᵀ Z G for z (16, C, F).
  void (*grad)(float* mg, int64_t me, const float* g, const Conv2dParams& p, int64_t t0,
               int64_t count);
  void (*dw_back)(float* dw, const float* z, int64_t c, int64_t f, bool accumulate);
};

#if defined(NNCORE_X86)
extern const WinogradKernels kWinogradAvx2;    // conv2d_winograd_avx2.cpp
extern const WinogradKernels kWinogradAvx512;  // conv2d_winograd_avx512.cpp
#endif

// Which algorithm conv2d_forward and conv2d_backward (for dx) use: auto picks per layer shape
// (conv2d_winograd_pays); the others force it where it applies (tests, benchmarks).
enum class ConvAlgo : int { automatic = 0, direct = 1, winograd = 2 };
void set_conv2d_algo(ConvAlgo a);
ConvAlgo conv2d_algo();

// 3x3 kernel, stride 1, dilation 1, any padding: the geometry F(2x2, 3x3) covers.
bool conv2d_winograd_applies(const Conv2dParams& p);
// The per-shape rule (measured, see conv2d_winograd.cpp), under the current conv2d_algo().
bool conv2d_use_winograd(const Conv2dParams& p);
// The rule for conv2d_forward_cached (the weight transform done once): no minimum batch size.
bool conv2d_use_winograd_cached(const Conv2dParams& p);
// The same for the backward's dx convolution (p: g (OH, OW, F) -> dx (H, W, C), padded by 2 - pad):
// only when forced; 'auto' keeps the direct dx (measured slower as Winograd, see the .cpp).
bool conv2d_use_winograd_dx(const Conv2dParams& p);
// The same for the backward's weight gradient (p: the layer's own geometry).
bool conv2d_use_winograd_dw(const Conv2dParams& p);

// Floats of the transformed, GEMM-packed weights for channels c -> f under the active ISA.
int64_t conv2d_winograd_weights_floats(int64_t c, int64_t f);
// w (3,3,C,F) -> dst (64-byte aligned, conv2d_winograd_weights_floats floats): U = G g Gᵀ packed
// as 16 GEMM B operands for the active ISA. May throw std::bad_alloc (scratch).
void conv2d_winograd_pack(float* dst, const float* w, int64_t c, int64_t f);

// y = act(conv(x, w) + b) by Winograd, w given as conv2d_winograd_pack's output (packed under the
// ISA active now). Up to nt threads (1: inline, for callers already in a parallel region).
// May throw std::bad_alloc (scratch; also a worker's GEMM packing scratch, rethrown after the
// region, when some blocks of y may already be written: y is then unspecified).
void conv2d_winograd_forward(float* y, const float* x, const float* packed, const float* b,
                             const Conv2dParams& p, int nt);

// conv2d_forward with the weights' Winograd transform done once by the caller (the inference
// plan): packed is conv2d_winograd_pack(w) made while packed_isa was active, or nullptr. Where
// conv2d_use_winograd_cached holds and packed_isa is still the active ISA, runs Winograd on packed
// (the same bits as conv2d_forward where that runs Winograd, i.e. from 128 tiles on; fewer tiles
// run Winograd here but direct there); otherwise conv2d_forward(y, x, w, b, p).
void conv2d_forward_cached(float* y, const float* x, const float* w, const float* packed,
                           Isa packed_isa, const float* b, const Conv2dParams& p);

// dw (3,3,C,F) (+)= the weight gradient of images [0, p.n) by Winograd: x (N, H, W, C) and
// g (N, OH, OW, F) the (already activation-masked) output gradient. Single-threaded (the caller's
// parallel units own disjoint dW partials). Summation order: blocks of tiles in order (the block
// size depends on the shapes and the CPU's L2 only), the GEMM's fixed K order inside a block.
// May throw std::bad_alloc (scratch).
void conv2d_winograd_dw(float* dw, bool accumulate, const float* x, const float* g,
                        const Conv2dParams& p);

}  // namespace nncore
