// Conv1D forward (Winograd F(m, K)), input gradient (the same forward on dz) and weight gradient
// (one GEMM on the padded batch); the formulas and the parallel level are in conv1d.hpp.
// Where it pays is conv1d_winograd_pays (measured shapes listed there).
#include "kernels/conv1d.hpp"
#include "kernels/conv1d_transforms.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

#include "common/cpu.hpp"
#include "common/dispatch.hpp"
#include "common/parallel.hpp"
#include "common/parallel_units.hpp"
#include "common/scratch.hpp"

namespace nncore {

namespace {

constexpr int kPts = kConv1dPoints;
constexpr double kMinFlopsPerThread = 1.0e6;
// Floats of one block's V and M together: 256 KB, so both stay in a 512 KB L2 with the packed U
// panel streaming through.
constexpr int64_t kBlockBudget = 1 << 16;

// The Toom-Cook matrices of F(m, r), m = kPts - r + 1, on the points 0, 1, -1, 2, -2, 1/2, -1/2, ∞
// (the first kPts - 1 finite ones). With A (n x m) and G (n x r) evaluating a polynomial's
// coefficients at the points (the ∞ row picks the leading coefficient) and V (n x n) the same for
// the degree n-1 product, linear convolution is s = V⁻¹ [(G g) ⊙ (A h)]; correlation, its transpose
// in h, is y = Aᵀ [(G g) ⊙ (V⁻ᵀ d)], so Bᵀ = V⁻ᵀ. V is inverted once in double.

double power(double p, int j) {
  double v = 1.0;
  for (int i = 0; i < j; ++i) v *= p;
  return v;
}

Conv1dTransform make_transform(int r) {
  static const double pts[kPts - 1] = {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5};
  const int n = kPts, m = n - r + 1;
  Conv1dTransform t;
  t.m = m, t.r = r;
  // Gauss-Jordan on [V | I] with partial pivoting.
  double a[kPts][2 * kPts] = {};
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) a[i][j] = i < n - 1 ? power(pts[i], j) : (j == n - 1 ? 1.0 : 0.0);
    a[i][n + i] = 1.0;
  }
  for (int col = 0; col < n; ++col) {
    int piv = col;
    for (int i = col + 1; i < n; ++i)
      if (std::fabs(a[i][col]) > std::fabs(a[piv][col])) piv = i;
    for (int j = 0; j < 2 * n; ++j) std::swap(a[col][j], a[piv][j]);
    const double d = a[col][col];
    for (int j = 0; j < 2 * n; ++j) a[col][j] /= d;
    for (int i = 0; i < n; ++i) {
      if (i == col || a[i][col] == 0.0) continue;
      const double f = a[i][col];
      for (int j = 0; j < 2 * n; ++j) a[i][j] -= f * a[col][j];
    }
  }
  // Entries are small rationals; the rounding residue of the elimination is snapped to zero so the
  // transforms skip it.
  auto snap = [](double v) { return std::fabs(v) < 1e-12 ? 0.0f : static_cast<float>(v); };
  for (int i = 0; i < n; ++i)
    for (int q = 0; q < n; ++q) t.bt[i][q] = snap(a[q][n + i]);  // (V⁻¹)ᵀ
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < r; ++k)
      t.g[i][k] = i < n - 1 ? static_cast<float>(power(pts[i], k)) : (k == r - 1 ? 1.0f : 0.0f);
    for (int o = 0; o < m; ++o)
      t.at[o][i] = i < n - 1 ? static_cast<float>(power(pts[i], o)) : (o == m - 1 ? 1.0f : 0.0f);
  }
  return t;
}

const Conv1dTransform& transform_for(int64_t k) {
  static Conv1dTransform table[kConv1dMaxK + 1];
  static std::once_flag once;
  std::call_once(once, [] {
    for (int r = static_cast<int>(kConv1dMinK); r <= kConv1dMaxK; ++r) table[r] = make_transform(r);
  });
  return table[k];
}

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// out[c] = Σ_q coef[q] * rows[q][c] over the non-zero coefficients, in q order (the weight
// transform; zeros when none).
inline void combine_taps(float* __restrict out, const float* const* rows, const float* coef,
                         int count, int64_t len) {
  bool first = true;
  for (int q = 0; q < count; ++q) {
    const float a = coef[q];
    const float* __restrict s = rows[q];
    if (a == 0.0f) continue;
    if (first) {
      for (int64_t c = 0; c < len; ++c) out[c] = a * s[c];
      first = false;
    } else {
      for (int64_t c = 0; c < len; ++c) out[c] += a * s[c];
    }
  }
  if (first) std::memset(out, 0, sizeof(float) * len);
}

// The transforms per ISA (conv1d_transforms.hpp); the portable table is conv1d_generic.cpp.
#if defined(NNCORE_X86)
constexpr PerIsa<Conv1dKernels> kConv1d = {&kConv1dGeneric, &kConv1dAvx2, &kConv1dAvx512};
#else
constexpr PerIsa<Conv1dKernels> kConv1d = {&kConv1dGeneric, nullptr, nullptr};
#endif
NNCORE_KERNEL_FAMILY(conv1d_winograd, kConv1d, name);

}  // namespace

bool conv1d_winograd_pays(int64_t k, int64_t c, int64_t f) {
  // The GEMMs have K = C and N = F, short ones: measured against the Conv2D kernels (Zen 3, AVX2,
  // 2 threads, batch 32, L 100, 'same'; new / old time, forward and backward): K 3..7 at C = F = 16
  // 1.3-1.9 and 1.4-2.3; K 3, 32 -> 32 0.94, 1.17; K 3, 64 -> 64 0.71, 0.79; K 5, 16 -> 128
  // 0.54, 0.97; K 5, 128 -> 16 1.12, 1.03; K 5, 64 -> 12 1.17, 1.26; K 2, 3, 7 at 128 -> 128
  // 0.52-0.76, 0.51-0.72; K 5, 256 -> 256 0.26, 0.37.
  return k >= kConv1dMinK && k <= kConv1dMaxK && c >= 16 && f >= 32 && c * f >= 2048;
}

void conv1d_winograd_forward(float* y, const float* x, const float* w, const float* b,
                             const Conv1dParams& p) {
  const int64_t C = p.c, F = p.f;
  if (p.n <= 0 || p.ol <= 0 || F <= 0) return;
  const Conv1dTransform& tr = transform_for(p.k);
  const Conv1dKernels& kr = kConv1d.active();
  Conv1dTiles tl;
  tl.m = tr.m;
  tl.per_sample = (p.ol + tl.m - 1) / tl.m;
  tl.total = p.n * tl.per_sample;
  const int nt = threads_for(2.0 * tl.total * kPts * C * F, kMinFlopsPerThread, p.num_threads);

  // U[e] = Σ_k G[e][k] W[k], packed for the micro-kernel once per call.
  const Isa isa = active_isa();
  const int64_t ustride = round_up(sgemm_packed_b_floats(isa, C, F), 16);
  float* const upack = thread_scratch(ScratchSlot::winograd_weights).floats(kPts * ustride);
  float* const utmp = thread_scratch(ScratchSlot::conv).floats(kPts * C * F);
  GemmPackedB pk[kPts];
  parallel_units(kPts, nt, [&](int, int64_t e) {
    float* u = utmp + e * C * F;
    const float* wk[kConv1dMaxK];
    for (int64_t k = 0; k < p.k; ++k) wk[k] = w + k * C * F;
    combine_taps(u, wk, tr.g[e], static_cast<int>(p.k), C * F);
    pk[e] = sgemm_pack_b(upack + e * ustride, isa, u, F, false, C, F);
  });

  // Blocks of tiles (from the shapes only): within the L2 budget, and at least 8 of them when the
  // batch has that many tiles, so 2 or 4 threads get balanced work.
  int64_t tb = std::clamp<int64_t>(kBlockBudget / (kPts * (C + F)), 8, 512);
  tb = std::min(tb, std::max<int64_t>(8, (tl.total + 7) / 8));
  const int64_t units = (tl.total + tb - 1) / tb;
  const int64_t ve = tb * C, me = tb * F, block = round_up(kPts * (ve + me), 16);
  const int workers = static_cast<int>(std::min<int64_t>(nt, units));
  // Per worker: its V and M blocks; then C zeros (the rows outside x).
  float* const ws = thread_scratch(ScratchSlot::winograd).floats(workers * block + C);
  float* const zeros = ws + workers * block;
  std::memset(zeros, 0, sizeof(float) * C);
  GemmParams g;  // beta 0: M is written, never read
  parallel_units_guarded(units, workers, [&](int tid, int64_t u) {
    float* vb = ws + tid * block;
    float* mb = vb + kPts * ve;
    const int64_t t0 = u * tb, count = std::min(tb, tl.total - t0);
    kr.input(vb, ve, x, p, tr, tl, t0, count, zeros);
    // M[e] (count, F) = V[e] (count, C) @ U[e] (C, F)
    for (int e = 0; e < kPts; ++e) sgemm_prepacked(mb + e * me, F, vb + e * ve, C, pk[e], count, g);
    kr.output(y, mb, me, b, p, tr, tl, t0, count);
  });
}

void conv1d_backward(float* dx, float* dw, float* db, const float* dz, const float* x,
                     const float* w, const float* y, const Conv1dParams& p) {
  const int64_t C = p.c, F = p.f, K = p.k;
  const int64_t lp = p.ol + K - 1;  // padded rows per sample: the rows the windows read
  const int64_t rows = p.n * lp;
  if (p.n <= 0 || p.ol <= 0) {
    std::fill(dw, dw + K * C * F, 0.0f);
    if (db) std::fill(db, db + F, 0.0f);
    if (dx) std::fill(dx, dx + p.n * p.l * C, 0.0f);
    return;
  }
  const int nt = threads_for(4.0 * p.n * p.ol * K * C * F, kMinFlopsPerThread, p.num_threads);
  // xp (N, lp, C): sample s's row r is x[s, r - pl] (zero outside x); dzp (N, lp, F): dz masked by
  // y > 0 under relu, its rows [OL, lp) zero.
  float* const xp = thread_scratch(ScratchSlot::conv).floats(rows * C);
  float* const dzp = thread_scratch(ScratchSlot::misc).floats(rows * F);
  parallel_for(p.n, nt, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t s = lo; s < hi; ++s) {
      for (int64_t r = 0; r < lp; ++r) {
        float* xr = xp + (s * lp + r) * C;
        const int64_t pos = r - p.pl;
        if (pos >= 0 && pos < p.l) std::memcpy(xr, x + (s * p.l + pos) * C, sizeof(float) * C);
        else std::memset(xr, 0, sizeof(float) * C);
        float* dr = dzp + (s * lp + r) * F;
        if (r >= p.ol) {
          std::memset(dr, 0, sizeof(float) * F);
          continue;
        }
        const float* src = dz + (s * p.ol + r) * F;
        if (p.act == Act::relu) {
          const float* yr = y + (s * p.ol + r) * F;
          for (int64_t f = 0; f < F; ++f) dr[f] = yr[f] > 0.0f ? src[f] : 0.0f;
        } else {
          std::memcpy(dr, src, sizeof(float) * F);
        }
      }
    }
  });
  // dW (K*C, F) = Pᵀ dzp: P's row t (t < rows - (K-1)) is xp[t : t + K] flattened, i.e. xp itself
  // with row stride C; rows straddling two samples meet the zero rows [OL, lp) of dzp.
  GemmParams g;
  g.trans_a = true;
  g.num_threads = nt;
  sgemm(dw, F, xp, C, dzp, F, K * C, F, rows - (K - 1), g);
  if (db) {
    std::fill(db, db + F, 0.0f);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t f = 0; f < F; ++f) db[f] += dzp[r * F + f];
  }
  if (!dx) return;
  // dx = the forward on dzp (read as lp rows per sample) with W'[k] = W[K-1-k]ᵀ (F, C) and leading
  // pad K-1-pl.
  float* const wt = thread_scratch(ScratchSlot::pool).floats(K * F * C);
  for (int64_t k = 0; k < K; ++k) {
    const float* src = w + (K - 1 - k) * C * F;
    float* dst = wt + k * F * C;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t f = 0; f < F; ++f) dst[f * C + c] = src[c * F + f];
  }
  Conv1dParams q;
  q.n = p.n, q.l = lp, q.c = F, q.k = K, q.f = C, q.ol = p.l, q.pl = K - 1 - p.pl;
  q.act = Act::none, q.num_threads = p.num_threads;
  conv1d_winograd_forward(dx, dzp, wt, nullptr, q);
}

}  // namespace nncore
