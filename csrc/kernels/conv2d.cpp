// Conv2D forward and backward: direct (implicit-GEMM) kernels on AVX-512 / AVX2, im2col + sgemm on
// the portable path, over tiles of the batch. 3x3 stride-1 layers whose shape passes
// conv2d_use_winograd run their forward as Winograd F(2x2,3x3) instead (conv2d_winograd.hpp); the
// backward's dx can run the same way when forced (conv2d_use_winograd_dx), and its dW by the same
// rule (conv2d_use_winograd_dw, conv2d_winograd_dw) inside the per-chunk dW partials.
//
// With NHWC and the (KH,KW,C,F) kernel the convolution is the GEMM P @ W, P the patch matrix: one
// row per output pixel (n, oh, ow), one column per (kh, kw, c), K = KH*KW*C. Its result is the NHWC
// output itself. The direct kernels (conv2d_direct_impl.hpp) run the GEMM's register tile with A
// read straight from x, which avoids writing P and, above all, packing it (a transposing copy that
// costs a third of the time for K ~ 300). Measured on the MNIST CNN at batch 32, 1 thread, AVX-512:
// conv 3x3 32->64 forward 0.97 -> 0.58 ms, first layer (C = 1) 0.44 -> 0.18 ms.
//   forward   y = act(P @ W + b)                    (bias and ReLU in the tile's epilogue)
//   backward  g = dy * (y > 0); db = colsum(g); dW = Pᵀ @ g;
//             dx = col2im(g @ Wᵀ), or for stride 1 the forward kernel on g zero-padded by the
//             kernel extent, with the flipped, transposed kernel:
//             dx[ih] = sum_kh g[ih + pt - kh*dh] W[kh].
// Windows that reach into 'same' padding read a zero-padded copy of x (activation-sized scratch).
//
// Parallel level (one per op): forward outputs are independent, split in pixel runs aligned to the
// register tile and sized from the shapes alone. The backward cuts the batch into tiles of whole images (images never share dx),
// groups the tiles into at most kMaxChunks chunks, and threads claim chunks one at a time
// (parallel_units: a thread slowed by another process simply does fewer). A chunk accumulates its
// own partial dW/db in tile order; the partials are summed in chunk order at the end. Tile and chunk boundaries depend on the shapes only, never on the thread count, so every
// result is bitwise identical for any thread count. With fewer chunks than threads (batch 1, 2) the
// chunks run in turn and each sgemm goes parallel.
#include "kernels/conv2d.hpp"
#include "kernels/depthwise2d.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>

#include "common/cpu.hpp"
#include "common/dispatch.hpp"
#include "common/parallel.hpp"
#include "common/parallel_units.hpp"
#include "common/scratch.hpp"
#include "kernels/conv2d_direct.hpp"
#include "kernels/conv2d_winograd.hpp"
#include "kernels/conv2d_vector_impl.hpp"

namespace nncore {

namespace {

// Floats of patch matrix per tile: 512 KB, so P and the packed GEMM blocks stay in the 1-2 MB L2.
constexpr int64_t kPatchBudget = 1 << 17;
// dW partials per call (memory: kMaxChunks * K * F floats); a multiple of common thread counts.
constexpr int64_t kMaxChunks = 16;
constexpr double kMinFlopsPerThread = 1.0e6;

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

struct Tiling {
  int64_t n;       // batch
  int64_t nb;      // most images in a tile
  int64_t tiles;   // tile i holds images [i*N/tiles, (i+1)*N/tiles): sizes differ by at most 1
  int64_t chunks;  // groups of consecutive tiles, each owning one dW partial
  int64_t image_begin(int64_t tile) const { return tile * n / tiles; }
  int64_t tile_begin(int64_t chunk) const { return chunk * tiles / chunks; }
};

// Depends on the shapes only (see the top of the file).
Tiling make_tiling(const Conv2dParams& p) {
  const int64_t per_image = std::max<int64_t>(1, p.oh * p.ow * std::max(p.kh * p.kw * p.c, p.f));
  const int64_t nb_max = std::max<int64_t>(1, kPatchBudget / per_image);
  // A multiple of 4 tiles when the batch allows, so 2 or 4 threads get balanced work.
  const int64_t tiles =
      std::max<int64_t>(1, std::min(p.n, round_up((p.n + nb_max - 1) / nb_max, 4)));
  return {p.n, (p.n + tiles - 1) / tiles, tiles, std::min(tiles, kMaxChunks)};
}

// Output columns [ow0, ow1) whose kernel column kw lands inside the input (0 <= iw < W).
inline void valid_range(int64_t o_count, int64_t stride, int64_t offset, int64_t in, int64_t* o0,
                        int64_t* o1) {
  // i = o * stride + offset; need 0 <= i < in.
  int64_t lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  int64_t hi = in - offset <= 0 ? 0 : (in - offset + stride - 1) / stride;
  *o0 = std::min(lo, o_count);
  *o1 = std::max(*o0, std::min(hi, o_count));
}

// x images [n0, n1) -> pm (rows, K): row (n, oh, ow), column (kh, kw, c); zeros where padded.
void im2col(float* pm, const float* x, int64_t n0, int64_t n1, const Conv2dParams& p) {
  const int64_t C = p.c, K = p.kh * p.kw * C;
  for (int64_t n = n0; n < n1; ++n) {
    const float* xn = x + n * p.h * p.w * C;
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        float* row = pm + ((n - n0) * p.oh * p.ow + oh * p.ow + ow) * K;
        const int64_t iw0 = ow * p.sw - p.pl;
        for (int64_t kh = 0; kh < p.kh; ++kh) {
          float* seg = row + kh * p.kw * C;
          const int64_t ih = oh * p.sh - p.pt + kh * p.dh;
          if (ih < 0 || ih >= p.h) {
            std::memset(seg, 0, sizeof(float) * p.kw * C);
            continue;
          }
          const float* xr = xn + ih * p.w * C;
          // Kernel columns [k0, k1) are inside the row; those outside are padding.
          int64_t k0, k1;
          valid_range(p.kw, p.dw, iw0, p.w, &k0, &k1);
          if (k0 > 0) std::memset(seg, 0, sizeof(float) * k0 * C);
          if (p.dw == 1) {
            if (k1 > k0)
              std::memcpy(seg + k0 * C, xr + (iw0 + k0) * C, sizeof(float) * (k1 - k0) * C);
          } else {
            for (int64_t kw = k0; kw < k1; ++kw)
              std::memcpy(seg + kw * C, xr + (iw0 + kw * p.dw) * C, sizeof(float) * C);
          }
          if (k1 < p.kw) std::memset(seg + k1 * C, 0, sizeof(float) * (p.kw - k1) * C);
        }
      }
    }
  }
}

// dx images [n0, n1) = col2im(dpm): every patch entry added back to the input pixel it came from.
void col2im(float* dx, const float* dpm, int64_t n0, int64_t n1, const Conv2dParams& p) {
  const int64_t C = p.c, K = p.kh * p.kw * C;
  std::memset(dx + n0 * p.h * p.w * C, 0, sizeof(float) * (n1 - n0) * p.h * p.w * C);
  for (int64_t n = n0; n < n1; ++n) {
    float* dxn = dx + n * p.h * p.w * C;
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const float* row = dpm + ((n - n0) * p.oh * p.ow + oh * p.ow + ow) * K;
        const int64_t iw0 = ow * p.sw - p.pl;
        int64_t k0, k1;
        valid_range(p.kw, p.dw, iw0, p.w, &k0, &k1);
        for (int64_t kh = 0; kh < p.kh; ++kh) {
          const int64_t ih = oh * p.sh - p.pt + kh * p.dh;
          if (ih < 0 || ih >= p.h) continue;
          const float* seg = row + kh * p.kw * C;
          float* dr = dxn + ih * p.w * C;
          if (p.dw == 1) {
            float* d = dr + (iw0 + k0) * C;
            const float* s = seg + k0 * C;
            const int64_t len = (k1 - k0) * C;
            for (int64_t i = 0; i < len; ++i) d[i] += s[i];
          } else {
            for (int64_t kw = k0; kw < k1; ++kw) {
              float* d = dr + (iw0 + kw * p.dw) * C;
              const float* s = seg + kw * C;
              for (int64_t c = 0; c < C; ++c) d[c] += s[c];
            }
          }
        }
      }
    }
  }
}

// g (n, OH, OW, F) -> gp (n, top + OH + bottom, left + OW + right, F): g inside a zero border.
void pad_rows(float* gp, const float* g, int64_t n, int64_t oh, int64_t ow, int64_t F, int64_t top,
              int64_t bottom, int64_t left, int64_t right) {
  const int64_t gh = top + oh + bottom, gw = left + ow + right;
  for (int64_t i = 0; i < n; ++i) {
    float* dst = gp + i * gh * gw * F;
    std::memset(dst, 0, sizeof(float) * top * gw * F);
    std::memset(dst + (top + oh) * gw * F, 0, sizeof(float) * bottom * gw * F);
    for (int64_t r = 0; r < oh; ++r) {
      float* row = dst + (top + r) * gw * F;
      std::memset(row, 0, sizeof(float) * left * F);
      std::memcpy(row + left * F, g + (i * oh + r) * ow * F, sizeof(float) * ow * F);
      std::memset(row + (left + ow) * F, 0, sizeof(float) * right * F);
    }
  }
}

// The geometry of x zero-padded to exactly the rows and columns the windows read:
// (OH-1)*sh + (KH-1)*dh + 1 rows starting pt above x (likewise columns), no padding left.
Conv2dParams padded_geometry(const Conv2dParams& p) {
  Conv2dParams q = p;
  q.h = (p.oh - 1) * p.sh + (p.kh - 1) * p.dh + 1;
  q.w = (p.ow - 1) * p.sw + (p.kw - 1) * p.dw + 1;
  q.pt = q.pl = 0;
  return q;
}

// x images [n0, n1) -> xp (N, q.h, q.w, C) of padded_geometry: x placed at (pt, pl), zeros around.
void pad_input(float* xp, const float* x, const Conv2dParams& p, const Conv2dParams& q, int64_t n0,
               int64_t n1) {
  const int64_t C = p.c;
  // Columns of x that land inside the padded row: [0, cols) at offset pl.
  const int64_t cols = std::max<int64_t>(0, std::min(p.w, q.w - p.pl));
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t r = 0; r < q.h; ++r) {
      float* row = xp + ((n * q.h) + r) * q.w * C;
      const int64_t ih = r - p.pt;
      if (ih < 0 || ih >= p.h || cols == 0) {
        std::memset(row, 0, sizeof(float) * q.w * C);
        continue;
      }
      std::memset(row, 0, sizeof(float) * p.pl * C);
      std::memcpy(row + p.pl * C, x + ((n * p.h + ih) * p.w) * C, sizeof(float) * cols * C);
      std::memset(row + (p.pl + cols) * C, 0, sizeof(float) * (q.w - p.pl - cols) * C);
    }
  }
}

// True for a 1x1 convolution that reads every input pixel once: x itself is the patch matrix.
bool is_pointwise(const Conv2dParams& p) {
  return p.kh == 1 && p.kw == 1 && p.sh == 1 && p.sw == 1 && p.pt == 0 && p.pl == 0 &&
         p.oh == p.h && p.ow == p.w;
}

// True when every window lies inside x (no padding is read), as the direct kernels need.
bool windows_inside(const Conv2dParams& p) {
  return p.pt == 0 && p.pl == 0 && (p.oh - 1) * p.sh + (p.kh - 1) * p.dh < p.h &&
         (p.ow - 1) * p.sw + (p.kw - 1) * p.dw < p.w;
}

// Portable table: no direct kernels (im2col + sgemm), the elementwise passes at baseline flags.
const Conv2dKernels kConv2dGeneric = {nullptr,   nullptr, relu_mask, add_column_sums, 1,
                                      "im2col_gemm_generic", "im2col_gemm_generic"};
#if defined(NNCORE_X86)
constexpr PerIsa<Conv2dKernels> kConv2d = {&kConv2dGeneric, &kConv2dAvx2, &kConv2dAvx512};
#else
constexpr PerIsa<Conv2dKernels> kConv2d = {&kConv2dGeneric, nullptr, nullptr};
#endif
NNCORE_KERNEL_FAMILY(conv2d_forward, kConv2d, forward_name);
NNCORE_KERNEL_FAMILY(conv2d_backward, kConv2d, backward_name);

// Work units per call for dynamic scheduling: enough for balance, few enough to be cheap.
constexpr int64_t kUnits = 64;

}  // namespace

void conv2d_forward(float* y, const float* x, const float* w, const float* b,
                    const Conv2dParams& p) {
  const int64_t R = p.oh * p.ow, K = p.kh * p.kw * p.c, F = p.f;
  if (p.n <= 0 || R <= 0 || F <= 0) return;
  const int nt = threads_for(2.0 * p.n * R * K * F, kMinFlopsPerThread, p.num_threads);
  if (conv2d_use_winograd(p)) {
    float* const u = thread_scratch(ScratchSlot::winograd_weights)
                         .floats(conv2d_winograd_weights_floats(p.c, F));
    conv2d_winograd_pack(u, w, p.c, F);
    conv2d_winograd_forward(y, x, u, b, p, nt);
    return;
  }
  if (p.c == 1) {
    // One input channel (a grayscale image's first layer): K = KH*KW is too short for the GEMM
    // tiles; it is a depthwise convolution with depth multiplier F (w (KH,KW,1,F) is its kernel).
    Depthwise2dParams d;
    d.n = p.n, d.h = p.h, d.w = p.w, d.c = 1, d.kh = p.kh, d.kw = p.kw, d.m = F;
    d.oh = p.oh, d.ow = p.ow, d.sh = p.sh, d.sw = p.sw, d.dh = p.dh, d.dw = p.dw;
    d.pt = p.pt, d.pl = p.pl, d.act = p.act, d.num_threads = p.num_threads;
    depthwise2d_forward(y, x, w, b, d);
    return;
  }
  const Conv2dKernels& dk = kConv2d.active();
  if (dk.forward) {
    // Direct kernel on x, or on a zero-padded copy when the windows reach into the padding.
    const bool inside = windows_inside(p);
    const Conv2dParams q = inside ? p : padded_geometry(p);
    const float* src = x;
    if (!inside) {
      float* xp = thread_scratch(ScratchSlot::conv).floats(p.n * q.h * q.w * p.c);
      parallel_for(p.n, nt, 1, [&](int64_t lo, int64_t hi) { pad_input(xp, x, p, q, lo, hi); });
      src = xp;
    }
    // Output pixels are independent: runs aligned to the register tile, sized from the shapes.
    const int64_t total = p.n * R, unit = unit_size(total, dk.mr, kUnits);
    parallel_units((total + unit - 1) / unit, nt, [&](int, int64_t u) {
      dk.forward(y, src, w, b, q, u * unit, std::min(total, (u + 1) * unit), p.pt, p.pt + p.h);
    });
    return;
  }
  const Tiling t = make_tiling(p);
  const bool pointwise = is_pointwise(p);
  const bool outer = nt > 1 && t.tiles >= nt;  // threads over tiles, else sgemm goes parallel
  const int workers = outer ? nt : 1;
  const int64_t tile_floats = round_up(t.nb * R * K, 16);
  float* const buf =
      pointwise ? nullptr : thread_scratch(ScratchSlot::conv).floats(workers * tile_floats);

  GemmParams g;
  g.bias = b;
  g.act = p.act;
  g.num_threads = outer ? 1 : nt;
  auto run_tile = [&](int64_t tile, float* pm) {
    const int64_t n0 = t.image_begin(tile), n1 = t.image_begin(tile + 1);
    const float* a = x + n0 * R * K;  // pointwise: x rows are the patches
    if (!pointwise) {
      im2col(pm, x, n0, n1, p);
      a = pm;
    }
    // y rows of the tile (rows, F) = P (rows, K) @ W (K, F), + b, act
    sgemm(y + n0 * R * F, F, a, K, w, F, (n1 - n0) * R, F, K, g);
  };
  if (!outer) {
    for (int64_t i = 0; i < t.tiles; ++i) run_tile(i, buf);
    return;
  }
  parallel_units_guarded(t.tiles, nt, [&](int tid, int64_t i) {
    run_tile(i, buf + tid * tile_floats);
  });
}

void conv2d_forward_cached(float* y, const float* x, const float* w, const float* packed,
                           Isa packed_isa, const float* b, const Conv2dParams& p) {
  const int64_t R = p.oh * p.ow, K = p.kh * p.kw * p.c, F = p.f;
  if (p.n <= 0 || R <= 0 || F <= 0) return;
  if (packed != nullptr && packed_isa == active_isa() && conv2d_use_winograd_cached(p)) {
    // The call conv2d_forward makes for Winograd, minus the weight transform: the same bits.
    const int nt = threads_for(2.0 * p.n * R * K * F, kMinFlopsPerThread, p.num_threads);
    conv2d_winograd_forward(y, x, packed, b, p, nt);
    return;
  }
  conv2d_forward(y, x, w, b, p);
}

void conv2d_backward(float* dx, float* dw, float* db, const float* dy, const float* x,
                     const float* w, const float* y, const Conv2dParams& p) {
  const int64_t R = p.oh * p.ow, K = p.kh * p.kw * p.c, F = p.f;
  if (p.n <= 0 || R <= 0) {
    std::fill(dw, dw + K * F, 0.0f);
    if (db) std::fill(db, db + F, 0.0f);
    if (dx) std::fill(dx, dx + p.n * p.h * p.w * p.c, 0.0f);
    return;
  }
  const Tiling t = make_tiling(p);
  const bool pointwise = is_pointwise(p);
  const bool relu = p.act == Act::relu;
  // The direct dW kernel reads x in place (no im2col), or a zero-padded copy of it.
  const Conv2dKernels& dk = kConv2d.active();
  const bool direct = dk.dw != nullptr;
  // A 3x3 stride-1 layer's dW may run as Winograd instead (conv2d_winograd_dw, reads x in place).
  const bool wino_dw = conv2d_use_winograd_dw(p);
  const bool pad_x = direct && !wino_dw && !windows_inside(p);
  // When K fits one register tile (the first layer), the dW kernel masks dy and sums db itself in
  // its single pass: no separate gradient pass (needs no dx, which reads the masked g). Only while
  // dy and y stay in cache: streamed from memory inside the FMA loop they ran slower than a plain
  // masking pass (first layer at batch 32: 0.17 -> 0.09 ms; at batch 256: 2.1 -> 3.6 ms).
  const bool fused = direct && !wino_dw && !dx && K <= dk.mr && 2.0 * p.n * R * F * sizeof(float) <= 16.0e6;
  const Conv2dParams px = pad_x ? padded_geometry(p) : p;
  const double flops = (dx ? 4.0 : 2.0) * p.n * R * K * F;
  const int nt = threads_for(flops, kMinFlopsPerThread, p.num_threads);
  const bool outer = nt > 1 && t.chunks >= nt;
  const int workers = outer ? nt : 1;

  // dx as the forward direct kernel on g zero-padded by the dilated kernel extent, with the kernel
  // flipped and transposed: dx[ih] = sum_kh g[ih - kh*dh] W[kh] (stride 1 only).
  // It computes H*W outputs where GEMM + col2im computes OH*OW patch rows (and then scatters them):
  // worth it unless the border is a large part of the image (measured on the MNIST CNN's layers:
  // 13x13 from 11x11 wins, 5x5 from 3x3 loses).
  // With padding pt: dx[ih] = sum_kh g[ih + pt - kh*dh] W[kh], so g is padded by ekh - pt on top
  // and to H + ekh rows in all.
  const int64_t ekh = (p.kh - 1) * p.dh, ekw = (p.kw - 1) * p.dw;
  const int64_t g_top = ekh - p.pt, g_left = ekw - p.pl;
  const int64_t g_bottom = p.h + p.pt - p.oh, g_right = p.w + p.pl - p.ow;
  // For a 3x3 stride-1 kernel the same convolution may run as Winograd (conv2d_winograd.hpp),
  // reading g in place (the padding is implicit: pt = g_top, pl = g_left).
  Conv2dParams qw = p;  // the dx convolution: g (OH, OW, F) -> dx (H, W, C)
  qw.h = p.oh, qw.w = p.ow, qw.c = p.f, qw.f = p.c, qw.oh = p.h, qw.ow = p.w;
  qw.pt = g_top, qw.pl = g_left, qw.act = Act::none;
  const bool wino_dx = dx && g_top >= 0 && g_left >= 0 && conv2d_use_winograd_dx(qw);
  const bool direct_dx = !wino_dx && direct && dx && p.sh == 1 && p.sw == 1 &&
                         2 * p.h * p.w < 3 * R && g_top >= 0 && g_left >= 0 && g_bottom >= 0 &&
                         g_right >= 0;
  Conv2dParams q = p;  // the dx convolution: g padded (GH, GW, F) -> dx (H, W, C)
  q.h = g_top + p.oh + g_bottom, q.w = g_left + p.ow + g_right, q.c = p.f, q.f = p.c;
  q.oh = p.h, q.ow = p.w, q.pt = q.pl = 0;
  q.act = Act::none;

  // Per worker: P tile, dP tile (or padded g), masked dy tile. Then the per-chunk partials of dW
  // and db, then the flipped kernel.
  const int64_t rows_max = t.nb * R;
  const int64_t p_floats = (pointwise || direct || wino_dw) ? 0 : round_up(rows_max * K, 16);
  const int64_t dp_floats = direct_dx ? round_up(t.nb * q.h * q.w * F, 16)
                            : (dx && !pointwise && !wino_dx) ? round_up(rows_max * K, 16) : 0;
  const int64_t g_floats = (relu && !fused) ? round_up(rows_max * F, 16) : 0;
  const int64_t worker_floats = p_floats + dp_floats + g_floats;
  const int64_t parts = t.chunks > 1 ? t.chunks : 0;
  const int64_t dw_part = round_up(K * F, 16), db_part = round_up(F, 16);
  // The dx GEMM reads Wᵀ (F, K): transposed once here, so its B panels pack by plain row copies
  // instead of a strided transpose per tile.
  const bool gemm_dx = dx && !direct_dx && !wino_dx;
  const int64_t wflip_floats = dx ? round_up(K * F, 16) : 0;
  const int64_t xpad_floats = pad_x ? p.n * px.h * px.w * p.c : 0;
  float* const buf = thread_scratch(ScratchSlot::conv)
                         .floats(workers * worker_floats + parts * (dw_part + db_part) +
                                 wflip_floats + xpad_floats + 16);
  float* const dw_parts = buf + workers * worker_floats;
  float* const db_parts = dw_parts + parts * dw_part;
  float* const wflip = db_parts + parts * db_part;  // (KH,KW,F,C), or Wᵀ (F, K) for gemm_dx
  float* const xpad = wflip + wflip_floats;          // x in padded_geometry
  const float* const xsrc = pad_x ? xpad : x;
  if (pad_x)
    parallel_for(p.n, nt, 1, [&](int64_t lo, int64_t hi) { pad_input(xpad, x, p, px, lo, hi); });
  // Split over filters: each thread writes whole rows of the transposed kernel.
  const int wt = threads_for(static_cast<double>(K) * F, 2.0e4, p.num_threads);
  float* wpack = nullptr;  // wino_dx: the flipped kernel, transformed and packed
  if (direct_dx || wino_dx) {
    parallel_for(F, wt, 1, [&](int64_t f0, int64_t f1) {
      for (int64_t kh = 0; kh < p.kh; ++kh)
        for (int64_t kw = 0; kw < p.kw; ++kw) {
          const float* src = w + ((p.kh - 1 - kh) * p.kw + (p.kw - 1 - kw)) * p.c * F;
          float* dst = wflip + (kh * p.kw + kw) * F * p.c;
          for (int64_t f = f0; f < f1; ++f)
            for (int64_t c = 0; c < p.c; ++c) dst[f * p.c + c] = src[c * F + f];
        }
    });
  } else if (gemm_dx) {
    parallel_for(F, wt, 1, [&](int64_t f0, int64_t f1) {
      for (int64_t f = f0; f < f1; ++f)
        for (int64_t k = 0; k < K; ++k) wflip[f * K + k] = w[k * F + f];
    });
  }
  if (wino_dx) {
    wpack = thread_scratch(ScratchSlot::winograd_weights)
                .floats(conv2d_winograd_weights_floats(F, p.c));
    conv2d_winograd_pack(wpack, wflip, F, p.c);
  }

  auto run_chunk = [&](int64_t chunk, float* ws, int gemm_threads) {
    float* const pm = ws;
    float* const dpm = ws + p_floats;
    float* const gm = ws + p_floats + dp_floats;
    float* const dwc = parts ? dw_parts + chunk * dw_part : dw;
    float* const dbc = parts ? db_parts + chunk * db_part : db;
    const int64_t first = t.tile_begin(chunk), last = t.tile_begin(chunk + 1);
    for (int64_t tile = first; tile < last; ++tile) {
      const int64_t n0 = t.image_begin(tile), n1 = t.image_begin(tile + 1), rows = (n1 - n0) * R;
      // g (rows, F): the upstream gradient of this tile, ReLU-masked by the forward output.
      const float* g = dy + n0 * R * F;
      if (fused) {
        dk.dw(dwc, dbc, xsrc, g, relu ? y + n0 * R * F : nullptr, px, n0, n1, tile != first);
        continue;
      }
      if (relu) {
        dk.relu_mask(gm, g, y + n0 * R * F, rows * F);
        g = gm;
      }
      if (db) {
        if (tile == first) std::fill(dbc, dbc + F, 0.0f);
        dk.add_column_sums(dbc, g, rows, F);
      }
      if (wino_dw) {
        Conv2dParams pt = p;
        pt.n = n1 - n0;
        conv2d_winograd_dw(dwc, tile != first, x + n0 * p.h * p.w * p.c, g, pt);
      } else if (direct) {
        dk.dw(dwc, nullptr, xsrc, g, nullptr, px, n0, n1, tile != first);
      } else {
        const float* a = x + n0 * R * K;
        if (!pointwise) {
          im2col(pm, x, n0, n1, p);
          a = pm;
        }
        // dW (K, F) (+)= Pᵀ (K, rows) @ g (rows, F)
        GemmParams gw;
        gw.trans_a = true;
        gw.beta = tile == first ? 0.0f : 1.0f;
        gw.num_threads = gemm_threads;
        sgemm(dwc, F, a, K, g, F, K, F, rows, gw);
      }
      if (wino_dx) {
        Conv2dParams qt = qw;
        qt.n = n1 - n0;
        conv2d_winograd_forward(dx + n0 * p.h * p.w * p.c, g, wpack, nullptr, qt, gemm_threads);
      } else if (direct_dx) {
        Conv2dParams qt = q;
        qt.n = n1 - n0;
        pad_rows(dpm, g, qt.n, p.oh, p.ow, F, g_top, g_bottom, g_left, g_right);
        dk.forward(dx + n0 * p.h * p.w * p.c, dpm, wflip, nullptr, qt, 0, qt.n * p.h * p.w, g_top,
                   g_top + p.oh);
      } else if (dx) {
        // dP (rows, K) = g (rows, F) @ Wᵀ (F, K); pointwise: dP is dx itself
        GemmParams gx;
        gx.num_threads = gemm_threads;
        if (pointwise) {
          sgemm(dx + n0 * R * K, K, g, F, wflip, K, rows, K, F, gx);
        } else {
          sgemm(dpm, K, g, F, wflip, K, rows, K, F, gx);
          col2im(dx, dpm, n0, n1, p);
        }
      }
    }
  };
  if (!outer) {
    for (int64_t c = 0; c < t.chunks; ++c) run_chunk(c, buf, nt);
  } else {
    parallel_units_guarded(t.chunks, nt, [&](int tid, int64_t c) {
      run_chunk(c, buf + tid * worker_floats, 1);
    });
  }
  if (!parts) return;
  // Sum the partials in chunk order; each element is summed by one thread, always in this order.
  const int rt = threads_for(static_cast<double>(K * F) * parts, 1.0e5, p.num_threads);
  parallel_for(K * F, rt, 16, [&](int64_t lo, int64_t hi) {
    std::memcpy(dw + lo, dw_parts + lo, sizeof(float) * (hi - lo));
    for (int64_t c = 1; c < parts; ++c) {
      const float* s = dw_parts + c * dw_part;
      for (int64_t i = lo; i < hi; ++i) dw[i] += s[i];
    }
  });
  if (db) {
    std::memcpy(db, db_parts, sizeof(float) * F);
    for (int64_t c = 1; c < parts; ++c)
      for (int64_t j = 0; j < F; ++j) db[j] += db_parts[c * db_part + j];
  }
}

void conv2d_forward_ref(float* y, const float* x, const float* w, const float* b,
                        const Conv2dParams& p) {
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t oh = 0; oh < p.oh; ++oh)
      for (int64_t ow = 0; ow < p.ow; ++ow)
        for (int64_t f = 0; f < p.f; ++f) {
          float s = b ? b[f] : 0.0f;
          for (int64_t kh = 0; kh < p.kh; ++kh)
            for (int64_t kw = 0; kw < p.kw; ++kw) {
              const int64_t ih = oh * p.sh - p.pt + kh * p.dh, iw = ow * p.sw - p.pl + kw * p.dw;
              if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
              for (int64_t c = 0; c < p.c; ++c)
                s += x[((n * p.h + ih) * p.w + iw) * p.c + c] *
                     w[((kh * p.kw + kw) * p.c + c) * p.f + f];
            }
          if (p.act == Act::relu && s < 0.0f) s = 0.0f;
          y[((n * p.oh + oh) * p.ow + ow) * p.f + f] = s;
        }
}

void conv2d_backward_ref(float* dx, float* dw, float* db, const float* dy, const float* x,
                         const float* w, const float* y, const Conv2dParams& p) {
  if (dx) std::fill(dx, dx + p.n * p.h * p.w * p.c, 0.0f);
  std::fill(dw, dw + p.kh * p.kw * p.c * p.f, 0.0f);
  if (db) std::fill(db, db + p.f, 0.0f);
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t oh = 0; oh < p.oh; ++oh)
      for (int64_t ow = 0; ow < p.ow; ++ow)
        for (int64_t f = 0; f < p.f; ++f) {
          const int64_t o = ((n * p.oh + oh) * p.ow + ow) * p.f + f;
          const float g = (p.act == Act::relu && !(y[o] > 0.0f)) ? 0.0f : dy[o];
          if (db) db[f] += g;
          for (int64_t kh = 0; kh < p.kh; ++kh)
            for (int64_t kw = 0; kw < p.kw; ++kw) {
              const int64_t ih = oh * p.sh - p.pt + kh * p.dh, iw = ow * p.sw - p.pl + kw * p.dw;
              if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
              for (int64_t c = 0; c < p.c; ++c) {
                const int64_t xi = ((n * p.h + ih) * p.w + iw) * p.c + c;
                const int64_t wi = ((kh * p.kw + kw) * p.c + c) * p.f + f;
                dw[wi] += x[xi] * g;
                if (dx) dx[xi] += w[wi] * g;
              }
            }
        }
}

}  // namespace nncore
