// Winograd F(2x2, 3x3) Conv2D: the driver (blocks of tiles, GEMMs, threads), the portable
// transforms and the per-shape rule. The algorithm and its layout: conv2d_winograd.hpp.
//
// Per block of tiles (one parallel work unit): input transform into V (16, tb, C), 16
// sgemm_prepacked M[e] = V[e] @ U[e] on one thread, output transform of M (16, tb, F) into y with
// bias and activation. tb depends on the shapes and the CPU's L2 size only, so a tile's arithmetic
// never depends on the thread count or on which thread runs its block.
#include "kernels/conv2d_winograd.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "common/cpu.hpp"
#include "common/dispatch.hpp"
#include "common/parallel.hpp"
#include "common/parallel_units.hpp"
#include "common/scratch.hpp"
#include "kernels/gemm.hpp"
#include "kernels/conv2d_winograd_impl.hpp"

namespace nncore {

namespace {

struct Scalar {
  static constexpr int kWidth = 1;
  using vec = float;
  using mask = bool;
  static vec zero() { return 0.0f; }
  static vec set1(float s) { return s; }
  static mask lanes(int64_t n) { return n > 0; }
  static vec load(mask m, const float* p) { return m ? *p : 0.0f; }
  static void store(mask m, float* p, vec v) {
    if (m) *p = v;
  }
  static vec loadu(const float* p) { return *p; }
  static void storeu(float* p, vec v) { *p = v; }
  static vec add(vec a, vec b) { return a + b; }
  static vec sub(vec a, vec b) { return a - b; }
  static vec mul(vec a, vec b) { return a * b; }
  static vec relu(vec r) { return r < 0.0f ? 0.0f : r; }  // NaN kept
};

void input_generic(float* v, int64_t ve, const float* x, const Conv2dParams& p, int64_t t0,
                   int64_t count, const float* zeros) {
  wino_input<Scalar>(v, ve, x, p, t0, count, zeros);
}
void output_generic(float* y, const float* m, int64_t me, const float* b, const Conv2dParams& p,
                    int64_t t0, int64_t count) {
  wino_output<Scalar>(y, m, me, b, p, t0, count);
}
void weights_generic(float* u, const float* w, int64_t c, int64_t f) {
  wino_weights<Scalar>(u, w, c, f);
}

void grad_generic(float* mg, int64_t me, const float* g, const Conv2dParams& p, int64_t t0,
                  int64_t count) {
  wino_grad<Scalar>(mg, me, g, p, t0, count);
}
void dw_back_generic(float* dw, const float* z, int64_t c, int64_t f, bool accumulate) {
  wino_dw_back<Scalar>(dw, z, c, f, accumulate);
}

const WinogradKernels kWinogradGeneric = {input_generic,   output_generic,
                                          weights_generic, "winograd_f2x3_generic",
                                          grad_generic,    dw_back_generic};
#if defined(NNCORE_X86)
constexpr PerIsa<WinogradKernels> kWinograd = {&kWinogradGeneric, &kWinogradAvx2,
                                               &kWinogradAvx512};
#else
constexpr PerIsa<WinogradKernels> kWinograd = {&kWinogradGeneric, nullptr, nullptr};
#endif
NNCORE_KERNEL_FAMILY(conv2d_winograd, kWinograd, name);

std::atomic<int> g_algo{static_cast<int>(ConvAlgo::automatic)};

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Floats of one packed U[e] (C x F) under `isa`, rounded to whole cache lines so every U[e] starts
// 64-byte aligned.
int64_t packed_floats(Isa isa, int64_t c, int64_t f) {
  return round_up(sgemm_packed_b_floats(isa, c, f), 16);
}

// Tiles per block: V and M of the block (16 * tb * (C + F) floats) fill at most half the L2 that
// CPUID reports; a multiple of the GEMM's row tile, between 2 and 64 row tiles; and at most a
// quarter of the batch's tiles (rounded up), so 2-4 threads get units to share.
int64_t block_tiles(const Conv2dParams& p, int64_t tiles, Isa isa) {
  const int64_t mr = sgemm_blocks(isa).mr;
  const int64_t per_tile = 16 * (p.c + p.f) * static_cast<int64_t>(sizeof(float));
  int64_t tb = static_cast<int64_t>(cpu_caches().l2) / 2 / per_tile / mr * mr;
  tb = std::max<int64_t>(2 * mr, std::min<int64_t>(tb, 64 * mr));
  tb = std::min(tb, round_up((tiles + 3) / 4, mr));
  return std::max<int64_t>(1, tb);
}

}  // namespace

void set_conv2d_algo(ConvAlgo a) { g_algo.store(static_cast<int>(a)); }
ConvAlgo conv2d_algo() { return static_cast<ConvAlgo>(g_algo.load()); }

bool conv2d_winograd_applies(const Conv2dParams& p) {
  return p.kh == 3 && p.kw == 3 && p.sh == 1 && p.sw == 1 && p.dh == 1 && p.dw == 1 &&
         p.oh > 0 && p.ow > 0 && p.c > 0 && p.f > 0;
}

// The rule, measured on a Zen 3 (AVX2, 8 floats per vector, 512 KB L2; bench/bench_winograd.py,
// 1 thread, forward and backward, Winograd / direct): wins at 0.74-0.91 for 32->64 channels on
// 13x13 and 15x15 inputs, 64->64 on 6x6 (also its dx), 64->128 on 8x8 'same' (0.49); losses at
// 1.1-1.4 for 8->16 and 16->16 channels, 32->32 on a 7x7 input (saving 1.56), 64->64 on 5x5
// (saving 1.27), the 64->32 dx of the 32->64 layer, and batch 1 (36 tiles: the per-call weight
// transform and packing are not amortised). So Winograd runs when
//   - the multiplications it saves, 9 OH OW / (16 TH TW) (a partial last tile row or column costs
//     a whole tile), reach 1.75;
//   - the GEMM depth C is at least 4 vectors and its width F at least 8 vectors of the active ISA
//     (narrower, the transforms and the packing of V cost more than the saved FMAs);
//   - the batch has at least 128 tiles.
// On a Zen 5 (AVX-512 on 512-bit units, 16 floats per vector, 1 MB L2; the same benchmark,
// 1 thread, 2026-12-02) the forward's boundaries are the same in channels, not in vectors: wins at
// 0.67-0.78 for 32->64 on 13x13 and 15x15 inputs at batch 32 (0.68-0.73 at batch 16-17 with the
// plan's cached weights, 0.95 at batch 1), 0.56-0.76 for 64->64 on 6x6 and 64->128 on 8x8;
// losses for 8->16 and 16->16 (1.2-2.3), 64->64 on 5x5 (1.3) and 32->32 on 7x7 (1.0). So the
// thresholds are C >= 32 and F >= 64 channels on every FMA ISA (on AVX-512: 2 and 4 vectors). The
// portable ISA keeps im2col + GEMM unless forced (not measured).
namespace {

// The rule below with the batch's tile minimum as a parameter.
bool use_winograd(const Conv2dParams& p, int64_t min_tiles) {
  if (!conv2d_winograd_applies(p)) return false;
  const ConvAlgo a = conv2d_algo();
  if (a != ConvAlgo::automatic) return a == ConvAlgo::winograd;
  if (active_isa() == Isa::generic) return false;
  if (p.c < 32 || p.f < 64) return false;
  const int64_t th = (p.oh + 1) / 2, tw = (p.ow + 1) / 2;
  if (p.n * th * tw < min_tiles) return false;
  return 9.0 * static_cast<double>(p.oh * p.ow) >= 1.75 * 16.0 * static_cast<double>(th * tw);
}

}  // namespace

bool conv2d_use_winograd(const Conv2dParams& p) { return use_winograd(p, 128); }

// With the weights transformed once (the inference plan), the tile minimum, which paid for the
// per-call weight transform, goes: on Zen 3 (AVX2, 1 thread) the 32->64 layer on a 13x13 input at
// batch 1 (36 tiles) took 62-72 us as Winograd on cached weights, 76-85 us direct, 119 us as
// Winograd with the per-call transform (the ~50 us the minimum avoided).
bool conv2d_use_winograd_cached(const Conv2dParams& p) { return use_winograd(p, 1); }

// dx of a 3x3 layer as Winograd: on Zen 3 (AVX2, 1 and 2 threads, tools as above) the whole
// backward took 1.13-1.18x as long with it for the 64->64 layer on 6x6 inputs at batch 32 and 256
// (the one dx shape the forward rule admits in the seed and CIFAR CNNs; 1.1x for the 64->32 dx of
// the 32->64 layer): the padded 4x4 gradient tiles are mostly zeros and each batch tile is a small
// call. Kept for forced use (tests, benchmarks) until a shape where it pays is measured.
bool conv2d_use_winograd_dx(const Conv2dParams& p) {
  return conv2d_winograd_applies(p) && conv2d_algo() == ConvAlgo::winograd;
}

// dW of a 3x3 layer as Winograd (conv2d_winograd_dw). Measured on Zen 3 (AVX2, 1 thread,
// bench/bench_winograd.py --dw-ab, dW + db alone, Winograd / direct): 0.87-0.88 for 32->64 on
// 13x13 and 15x15 inputs at batch 32, 0.70 at batch 256, 0.63-0.70 for 64->64 on 6x6, 0.65 for
// 64->128 on 8x8 'same'; 1.1 for 64->64 on 5x5 (saving 1.27), 1.0-1.1 for 32->32, 1.4 for 32->32
// on 7x7, 1.9-2.3 for 8->16 and 16->16 channels, 1.0 at batch 1: the same boundaries as the
// forward's, so the same rule (forced 'winograd' / 'direct' included). On a Zen 5 (AVX-512, 1
// thread, the same benchmark, 2026-12-02) the direct dW is relatively faster: Winograd loses at
// 1.07-1.27 for the 32->64 layers on 13x13 and 15x15 inputs and wins only from 64 input channels
// (0.86-0.94 for 64->64 on 6x6, 0.84 for 64->128 on 8x8), so on AVX-512 it also needs C >= 64.
bool conv2d_use_winograd_dw(const Conv2dParams& p) {
  if (!conv2d_use_winograd(p)) return false;
  return conv2d_algo() != ConvAlgo::automatic || active_isa() != Isa::avx512 || p.c >= 64;
}

int64_t conv2d_winograd_weights_floats(int64_t c, int64_t f) {
  return 16 * packed_floats(active_isa(), c, f);
}

void conv2d_winograd_pack(float* dst, const float* w, int64_t c, int64_t f) {
  const Isa isa = active_isa();
  float* const u = thread_scratch(ScratchSlot::misc).floats(16 * c * f);
  kWinograd.get(isa).weights(u, w, c, f);
  const int64_t pf = packed_floats(isa, c, f);
  for (int e = 0; e < 16; ++e) sgemm_pack_b(dst + e * pf, isa, u + e * c * f, f, false, c, f);
}

void conv2d_winograd_forward(float* y, const float* x, const float* packed, const float* b,
                             const Conv2dParams& p, int nt) {
  const int64_t tiles = p.n * ((p.oh + 1) / 2) * ((p.ow + 1) / 2);
  if (tiles <= 0) return;
  const Isa isa = active_isa();
  const WinogradKernels& k = kWinograd.get(isa);
  const int64_t C = p.c, F = p.f;
  const int64_t tb = block_tiles(p, tiles, isa);
  const int64_t units = (tiles + tb - 1) / tb;
  nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nt, units)));
  const int64_t vf = round_up(16 * tb * C, 16), mf = round_up(16 * tb * F, 16);
  const int64_t zf = round_up(C, 16), wf = vf + mf + zf;
  float* const buf = thread_scratch(ScratchSlot::winograd).floats(nt * wf);
  for (int i = 0; i < nt; ++i) std::memset(buf + i * wf + vf + mf, 0, sizeof(float) * zf);
  const int64_t pf = packed_floats(isa, C, F);
  GemmPackedB u[16];
  for (int e = 0; e < 16; ++e) u[e] = {packed + e * pf, C, F, isa};
  parallel_units_guarded(units, nt, [&](int tid, int64_t unit) {
    float* const v = buf + tid * wf;
    float* const m = v + vf;
    const int64_t t0 = unit * tb, count = std::min(tb, tiles - t0);
    k.input(v, tb * C, x, p, t0, count, m + mf);
    const GemmParams g;
    for (int e = 0; e < 16; ++e) sgemm_prepacked(m + e * tb * F, F, v + e * tb * C, C, u[e], count, g);
    k.output(y, m, tb * F, b, p, t0, count);
  });
}

// Per call: blocks of tb tiles in order; per block the input transform V (16, tb, C), the gradient
// transform Mg (16, tb, F), and 16 GEMMs Z[e] (C, F) += V[e]ᵀ @ Mg[e] (the K loop over the block's
// tiles, in the GEMM's fixed order); then dw (+)= Gᵀ Z G. tb: V and Mg of a block fill at most twice
// the L2 CPUID reports (at least 8 tiles; in practice a call's whole few images: fewer, deeper
// GEMMs measured faster than L2-resident blocks, 0.88 vs 0.91 of the direct dW for the seed CNN's
// conv2 on Zen 3), so it depends on the shapes and the CPU only.
void conv2d_winograd_dw(float* dw, bool accumulate, const float* x, const float* g,
                        const Conv2dParams& p) {
  const int64_t C = p.c, F = p.f;
  const int64_t tiles = p.n * ((p.oh + 1) / 2) * ((p.ow + 1) / 2);
  const Isa isa = active_isa();
  const WinogradKernels& k = kWinograd.get(isa);
  if (tiles <= 0) {
    if (!accumulate) std::fill(dw, dw + 9 * C * F, 0.0f);
    return;
  }
  const int64_t per_tile = 16 * (C + F) * static_cast<int64_t>(sizeof(float));
  int64_t tb = static_cast<int64_t>(cpu_caches().l2) * 2 / per_tile;
  tb = std::min(tiles, std::max<int64_t>(8, tb));
  const int64_t vf = round_up(16 * tb * C, 16), mf = round_up(16 * tb * F, 16);
  const int64_t zf = round_up(16 * C * F, 16), cf = round_up(C, 16);
  float* const v = thread_scratch(ScratchSlot::winograd).floats(vf + mf + zf + cf);
  float* const mg = v + vf;
  float* const z = mg + mf;
  float* const zeros = z + zf;
  std::memset(zeros, 0, sizeof(float) * cf);
  for (int64_t t0 = 0; t0 < tiles; t0 += tb) {
    const int64_t count = std::min(tb, tiles - t0);
    k.input(v, tb * C, x, p, t0, count, zeros);
    k.grad(mg, tb * F, g, p, t0, count);
    GemmParams gp;
    gp.trans_a = true;
    gp.beta = t0 == 0 ? 0.0f : 1.0f;
    gp.num_threads = 1;
    for (int e = 0; e < 16; ++e)
      sgemm(z + e * C * F, F, v + e * tb * C, C, mg + e * tb * F, F, C, F, count, gp);
  }
  k.dw_back(dw, z, C, F, accumulate);
}

}  // namespace nncore
