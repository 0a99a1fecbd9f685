// Conv2D as im2col + sgemm over tiles of the batch.
//
// With NHWC and the (KH,KW,C,F) kernel, the patch matrix P of a tile of images has one row per output
// pixel (n, oh, ow) and one column per (kh, kw, c), so the forward is one GEMM P @ W (K = KH*KW*C) whose
// result is the NHWC output itself, bias and ReLU fused in the GEMM epilogue. Backward per tile:
// dYm = dy * (y > 0) (ReLU mask), db += colsum(dYm), dW += Pᵀ @ dYm, dP = dYm @ Wᵀ scattered by col2im.
//
// Parallel level (one per op): the batch is cut into tiles of whole images (images never share dx), the
// tiles are grouped into at most kMaxChunks chunks, and threads take contiguous runs of chunks, each
// with its own patch buffer and single-threaded sgemm calls. A chunk accumulates its own partial dW/db
// in tile order; the partials are summed in chunk order at the end. Tile and chunk boundaries depend on
// the shapes only, never on the thread count, so every result is bitwise identical for any thread count.
// When there are fewer tiles than threads (batch 1, 2), tiles run in turn and each sgemm goes parallel.
#include "kernels/conv2d.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>

#include "common/parallel.hpp"
#include "common/scratch.hpp"

namespace nncore {

namespace {

// Floats of patch matrix per tile: 512 KB, so P and the packed GEMM blocks stay in the 1-2 MB L2.
constexpr int64_t kPatchBudget = 1 << 17;
// dW partials per call (memory: kMaxChunks * K * F floats); a multiple of common thread counts.
constexpr int64_t kMaxChunks = 16;
constexpr double kMinFlopsPerThread = 1.0e6;

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

struct Tiling {
  int64_t nb;      // images per tile
  int64_t tiles;   // ceil(N / nb)
  int64_t chunks;  // groups of consecutive tiles, each owning one dW partial
  int64_t tile_begin(int64_t chunk) const { return chunk * tiles / chunks; }
};

// Depends on the shapes only (see the top of the file).
Tiling make_tiling(const Conv2dParams& p) {
  const int64_t per_image = std::max<int64_t>(1, p.oh * p.ow * std::max(p.kh * p.kw * p.c, p.f));
  const int64_t nb_max = std::max<int64_t>(1, kPatchBudget / per_image);
  // At least 4 equal tiles when the batch allows, so 2 or 4 threads get balanced work.
  int64_t tiles = std::min(p.n, round_up((p.n + nb_max - 1) / nb_max, 4));
  const int64_t nb = (p.n + tiles - 1) / tiles;
  tiles = (p.n + nb - 1) / nb;
  return {nb, tiles, std::min(tiles, kMaxChunks)};
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
            if (k1 > k0) std::memcpy(seg + k0 * C, xr + (iw0 + k0) * C, sizeof(float) * (k1 - k0) * C);
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

// True for a 1x1 convolution that reads every input pixel once: x itself is the patch matrix.
bool is_pointwise(const Conv2dParams& p) {
  return p.kh == 1 && p.kw == 1 && p.sh == 1 && p.sw == 1 && p.pt == 0 && p.pl == 0 &&
         p.oh == p.h && p.ow == p.w;
}

// parallel_run whose body may throw std::bad_alloc (an sgemm packing buffer in a worker thread): the
// exception is caught inside the region and rethrown after it, never escaping OpenMP.
template <class F>
void parallel_run_guarded(int nt, F&& body) {
  std::atomic<bool> failed{false};
  parallel_run(nt, [&](int tid, int nth) {
    try {
      body(tid, nth);
    } catch (...) {
      failed.store(true);
    }
  });
  if (failed.load()) throw std::bad_alloc();
}

}  // namespace

void conv2d_forward(float* y, const float* x, const float* w, const float* b,
                    const Conv2dParams& p) {
  const int64_t R = p.oh * p.ow, K = p.kh * p.kw * p.c, F = p.f;
  if (p.n <= 0 || R <= 0 || F <= 0) return;
  const Tiling t = make_tiling(p);
  const bool pointwise = is_pointwise(p);
  const int nt = threads_for(2.0 * p.n * R * K * F, kMinFlopsPerThread, p.num_threads);
  const bool outer = nt > 1 && t.tiles >= nt;  // threads over tiles, else sgemm goes parallel
  const int workers = outer ? nt : 1;
  const int64_t tile_floats = round_up(t.nb * R * K, 16);
  float* const buf = pointwise ? nullptr : thread_scratch(ScratchSlot::conv).floats(workers * tile_floats);

  GemmParams g;
  g.bias = b;
  g.act = p.act;
  g.num_threads = outer ? 1 : nt;
  auto run_tile = [&](int64_t tile, float* pm) {
    const int64_t n0 = tile * t.nb, n1 = std::min(p.n, n0 + t.nb);
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
  parallel_run_guarded(nt, [&](int tid, int nth) {
    int64_t lo, hi;
    split_range(t.tiles, tid, nth, 1, &lo, &hi);
    for (int64_t i = lo; i < hi; ++i) run_tile(i, buf + tid * tile_floats);
  });
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
  const double flops = (dx ? 4.0 : 2.0) * p.n * R * K * F;
  const int nt = threads_for(flops, kMinFlopsPerThread, p.num_threads);
  const bool outer = nt > 1 && t.chunks >= nt;
  const int workers = outer ? nt : 1;

  // Per worker: P tile, dP tile, masked dy tile. Then the per-chunk partials of dW and db.
  const int64_t rows_max = t.nb * R;
  const int64_t p_floats = pointwise ? 0 : round_up(rows_max * K, 16);
  const int64_t dp_floats = (dx && !pointwise) ? p_floats : 0;
  const int64_t g_floats = relu ? round_up(rows_max * F, 16) : 0;
  const int64_t worker_floats = p_floats + dp_floats + g_floats;
  const int64_t parts = t.chunks > 1 ? t.chunks : 0;
  const int64_t dw_part = round_up(K * F, 16), db_part = round_up(F, 16);
  float* const buf = thread_scratch(ScratchSlot::conv)
                         .floats(workers * worker_floats + parts * (dw_part + db_part) + 16);
  float* const dw_parts = buf + workers * worker_floats;
  float* const db_parts = dw_parts + parts * dw_part;

  auto run_chunk = [&](int64_t chunk, float* ws, int gemm_threads) {
    float* const pm = ws;
    float* const dpm = ws + p_floats;
    float* const gm = ws + p_floats + dp_floats;
    float* const dwc = parts ? dw_parts + chunk * dw_part : dw;
    float* const dbc = parts ? db_parts + chunk * db_part : db;
    const int64_t first = t.tile_begin(chunk), last = t.tile_begin(chunk + 1);
    for (int64_t tile = first; tile < last; ++tile) {
      const int64_t n0 = tile * t.nb, n1 = std::min(p.n, n0 + t.nb), rows = (n1 - n0) * R;
      // g (rows, F): the upstream gradient of this tile, ReLU-masked by the forward output.
      const float* g = dy + n0 * R * F;
      if (relu) {
        const float* yt = y + n0 * R * F;
        for (int64_t i = 0; i < rows * F; ++i) gm[i] = yt[i] > 0.0f ? g[i] : 0.0f;
        g = gm;
      }
      if (db) {
        if (tile == first) std::fill(dbc, dbc + F, 0.0f);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < F; ++j) dbc[j] += g[r * F + j];
      }
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
      if (dx) {
        // dP (rows, K) = g (rows, F) @ Wᵀ (F, K); pointwise: dP is dx itself
        GemmParams gx;
        gx.trans_b = true;
        gx.num_threads = gemm_threads;
        if (pointwise) {
          sgemm(dx + n0 * R * K, K, g, F, w, F, rows, K, F, gx);
        } else {
          sgemm(dpm, K, g, F, w, F, rows, K, F, gx);
          col2im(dx, dpm, n0, n1, p);
        }
      }
    }
  };
  if (!outer) {
    for (int64_t c = 0; c < t.chunks; ++c) run_chunk(c, buf, nt);
  } else {
    parallel_run_guarded(nt, [&](int tid, int nth) {
      int64_t lo, hi;
      split_range(t.chunks, tid, nth, 1, &lo, &hi);
      for (int64_t c = lo; c < hi; ++c) run_chunk(c, buf + tid * worker_floats, 1);
    });
  }
  if (!parts) return;
  // Sum the partials in chunk order; each element is summed by one thread, in the same order always.
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
                s += x[((n * p.h + ih) * p.w + iw) * p.c + c] * w[((kh * p.kw + kw) * p.c + c) * p.f + f];
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
