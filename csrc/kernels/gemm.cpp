// sgemm: Goto/BLIS loops around a per-ISA micro-kernel.
//
//   jc over N in NC blocks         B panel (KC x NC) packed once, shared by all threads (L3)
//     pc over K in KC blocks
//       ic over M in MC blocks     A block (MC x KC) packed per thread (L2)
//         jr over NC in NR steps   B micro-panel (KC x NR) stays in L1
//           ir over MC in MR steps micro-kernel: MR x NR tile of C in registers
//
// Parallel level (one per op): per KC x NC block the threads pack the B panel together, then claim
// MR-aligned runs of rows (or, when M is short, NR-aligned runs of columns) one at a time. K is never
// split, and every tile starts at a multiple of MR/NR whatever the split, so each element of C sees
// the same operations in the same order for any thread count: results are bitwise identical.
#include "kernels/gemm.hpp"

#include <algorithm>
#include <cstring>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "common/cpu.hpp"
#include "common/dispatch.hpp"
#include "common/parallel.hpp"
#include "common/parallel_units.hpp"
#include "common/scratch.hpp"
#include "kernels/gemm_ukr.hpp"

namespace nncore {

// Portable micro-kernel, 4 x 16. The compiler vectorises the j loops for the baseline ISA.
void sgemm_ukr_generic_4x16(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                            float alpha, float beta) {
  float acc[4][16] = {};
  for (int64_t p = 0; p < k; ++p) {
    for (int i = 0; i < 4; ++i) {
      const float ai = a[i];
      for (int j = 0; j < 16; ++j) acc[i][j] += ai * b[j];
    }
    a += 4;
    b += 16;
  }
  for (int i = 0; i < 4; ++i) {
    float* ci = c + i * ldc;
    if (beta == 0.0f) {
      for (int j = 0; j < 16; ++j) ci[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < 16; ++j) ci[j] = beta * ci[j] + alpha * acc[i][j];
    }
  }
}

namespace {

struct GemmConfig {
  sgemm_ukr_fn ukr;
  sgemm_ukr_rowa_fn ukr_rowa;  // optional: reads row-major A in place (see use_rowa below)
  int64_t mr, nr;  // micro-tile
  int64_t mc, kc, nc;  // cache blocks: A block MC x KC in L2, B panel KC x NC in L3
  const char* name;
  // Optional: the same tile for fewer than MR rows (same per-element arithmetic, so results do not
  // depend on where a row falls), used for the bottom edge instead of a padded full tile.
  sgemm_ukr_rows_fn ukr_rows;
  // Optional: one row of A times row-major B without packing (a batch-1 Dense layer).
  sgemv_rowb_fn gemv;
  // Optional: one row of A times prepacked B panels (an RNN step at batch 1).
  sgemv_packed_fn gemv_packed;
};

// Block sizes registered next to the kernel they were tuned for (see bench/bench_gemm.py).
const GemmConfig kGeneric = {sgemm_ukr_generic_4x16, nullptr, 4, 16, 128, 256, 2048,
                               "generic_4x16", nullptr, nullptr, nullptr};
#if defined(NNCORE_X86)
const GemmConfig kAvx2 = {sgemm_ukr_avx2_6x16, nullptr, 6, 16, 168, 256, 4080, "avx2_6x16", nullptr,
                          sgemv_rowb_avx2, sgemv_packed_avx2_16};
// Zen 5, one thread, 2048^3: KC 256/MC 336 gave 205 GFLOP/s, KC 512/MC 168 237 (numpy 244); the
// deeper KC halves the C-tile loads and stores per flop, and the CNN shapes gain too.
const GemmConfig kAvx512 = {sgemm_ukr_avx512_14x32, sgemm_ukr_avx512_14x32_rowa, 14, 32, 168, 512,
                            4096, "avx512_14x32", sgemm_ukr_avx512_14x32_rows,
                            sgemv_rowb_avx512, sgemv_packed_avx512_32};
#endif

#if defined(NNCORE_X86)
constexpr PerIsa<GemmConfig> kGemm = {&kGeneric, &kAvx2, &kAvx512};
#else
constexpr PerIsa<GemmConfig> kGemm = {&kGeneric, nullptr, nullptr};
#endif
NNCORE_KERNEL_FAMILY(gemm, kGemm, name);

const GemmConfig& config_for(Isa isa) { return kGemm.get(isa); }

// Work below this many flops per thread is not worth waking another thread for.
constexpr double kMinFlopsPerThread = 4.0e5;

// Work units per KC x NC block (see sgemm): B packing groups; runs of C rows per thread (a run of
// C columns packs the whole A block again, so one of those per thread).
constexpr int64_t kPackUnits = 8;
constexpr int64_t kUnitsPerThread = 4;

// Up to this N, full MR tiles read row-major A in place instead of packing it (measured on Zen 5:
// 1.1-1.8x faster for N <= 512, slightly slower for N >= 1024).
constexpr int64_t kRowaMaxN = 512;

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Packs rows [i0, i0+mc) x cols [p0, p0+kc) of op(A) into MR-row micro-panels, k-major, zero padded.
void pack_a(float* dst, const float* a, int64_t lda, bool trans, int64_t i0, int64_t mc,
            int64_t p0, int64_t kc, int64_t mr) {
  for (int64_t ip = 0; ip < mc; ip += mr) {
    const int64_t rows = std::min(mr, mc - ip);
    if (trans) {  // op(A)(i, p) = a[p * lda + i]: each k step is a contiguous run of rows
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = a + (p0 + p) * lda + i0 + ip;
        float* d = dst + p * mr;
        for (int64_t i = 0; i < rows; ++i) d[i] = src[i];
        for (int64_t i = rows; i < mr; ++i) d[i] = 0.0f;
      }
    } else {  // op(A)(i, p) = a[i * lda + p]: a transpose; 4 x 4 blocks in registers where we can
      // (element-by-element this was ~12% of an LSTM training step: dX = dZ Wᵀ and every BPTT step).
      const float* src = a + (i0 + ip) * lda + p0;
      int64_t i = 0;
#if defined(__SSE2__)
      const int64_t kc4 = kc & ~int64_t(3);
      for (; i + 4 <= rows; i += 4) {
        const float* s0 = src + i * lda;
        for (int64_t p = 0; p < kc4; p += 4) {
          __m128 r0 = _mm_loadu_ps(s0 + p), r1 = _mm_loadu_ps(s0 + lda + p);
          __m128 r2 = _mm_loadu_ps(s0 + 2 * lda + p), r3 = _mm_loadu_ps(s0 + 3 * lda + p);
          _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
          _mm_storeu_ps(dst + p * mr + i, r0);
          _mm_storeu_ps(dst + (p + 1) * mr + i, r1);
          _mm_storeu_ps(dst + (p + 2) * mr + i, r2);
          _mm_storeu_ps(dst + (p + 3) * mr + i, r3);
        }
        for (int64_t p = kc4; p < kc; ++p)
          for (int64_t q = 0; q < 4; ++q) dst[p * mr + i + q] = s0[q * lda + p];
      }
#endif
      for (int64_t p = 0; p < kc; ++p) {
        float* d = dst + p * mr;
        for (int64_t r = i; r < rows; ++r) d[r] = src[r * lda + p];
        for (int64_t r = rows; r < mr; ++r) d[r] = 0.0f;
      }
    }
    dst += mr * kc;
  }
}

// Packs NR-column micro-panels [first, last) of op(B) rows [p0, p0+kc), cols from j0 (nc wide).
void pack_b(float* dst, const float* b, int64_t ldb, bool trans, int64_t p0, int64_t kc,
            int64_t j0, int64_t nc, int64_t nr, int64_t first, int64_t last) {
  for (int64_t panel = first; panel < last; ++panel) {
    const int64_t jp = panel * nr;
    const int64_t cols = std::min(nr, nc - jp);
    float* d = dst + panel * nr * kc;
    if (trans) {  // op(B)(p, j) = b[j * ldb + p]
      for (int64_t j = 0; j < cols; ++j) {
        const float* src = b + (j0 + jp + j) * ldb + p0;
        for (int64_t p = 0; p < kc; ++p) d[p * nr + j] = src[p];
      }
      for (int64_t j = cols; j < nr; ++j)
        for (int64_t p = 0; p < kc; ++p) d[p * nr + j] = 0.0f;
    } else {  // op(B)(p, j) = b[p * ldb + j]: each k step is a contiguous run of columns
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = b + (p0 + p) * ldb + j0 + jp;
        float* dp = d + p * nr;
        if (cols == nr) {
          std::memcpy(dp, src, sizeof(float) * nr);
        } else {
          for (int64_t j = 0; j < cols; ++j) dp[j] = src[j];
          for (int64_t j = cols; j < nr; ++j) dp[j] = 0.0f;
        }
      }
    }
  }
}

// c (rows x cols) = act(c + bias); bias already offset to the first column.
void epilogue(float* c, int64_t ldc, int64_t rows, int64_t cols, const float* bias, Act act) {
  for (int64_t i = 0; i < rows; ++i) {
    float* ci = c + i * ldc;
    if (bias)
      for (int64_t j = 0; j < cols; ++j) ci[j] += bias[j];
    if (act == Act::relu)
      for (int64_t j = 0; j < cols; ++j) ci[j] = ci[j] < 0.0f ? 0.0f : ci[j];  // NaN stays
  }
}

// c = beta * c (beta == 0: c = 0 without reading it), then the epilogue. For k == 0 or alpha == 0.
void scale_only(float* c, int64_t ldc, int64_t m, int64_t n, const GemmParams& p) {
  for (int64_t i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    if (p.beta == 0.0f) std::fill(ci, ci + n, 0.0f);
    else if (p.beta != 1.0f)
      for (int64_t j = 0; j < n; ++j) ci[j] *= p.beta;
  }
  if (p.bias || p.act != Act::none) epilogue(c, ldc, m, n, p.bias, p.act);
}

// C rows [0, mcur) x cols [j0, j1) of a (KC-deep) block product: packed A block times packed B
// panels (panel j / NR), all cols < ncur. bias is already offset to the block's first column.
// Row tiles below full_rows read A in place from a_rows (row-major, stride lda) with the rowa kernel;
// the rest come packed from a_pack (at their usual offsets).
void macro_kernel(const GemmConfig& cfg, float* c, int64_t ldc, const float* a_pack,
                  const float* a_rows, int64_t lda, int64_t full_rows, const float* b_pack,
                  float* tile, int64_t mcur, int64_t j0, int64_t j1, int64_t ncur, int64_t kcur,
                  float beta, bool last_k, const float* bias, const GemmParams& p) {
  const int64_t mr = cfg.mr, nr = cfg.nr;
  for (int64_t jr = j0; jr < j1; jr += nr) {
    const int64_t ncols = std::min(nr, ncur - jr);
    const float* bp = b_pack + (jr / nr) * nr * kcur;
    for (int64_t ir = 0; ir < mcur; ir += mr) {
      const int64_t nrows = std::min(mr, mcur - ir);
      float* cp = c + ir * ldc + jr;
      const float* ap = a_pack + ir * kcur;
      const bool in_place = ir < full_rows;
      const float* arow = in_place ? a_rows + ir * lda : nullptr;
      if (nrows == mr && ncols == nr) {
        if (in_place) cfg.ukr_rowa(kcur, arow, lda, bp, cp, ldc, p.alpha, beta);
        else cfg.ukr(kcur, ap, bp, cp, ldc, p.alpha, beta);
      } else if (ncols == nr && cfg.ukr_rows) {  // bottom edge (never read in place)
        cfg.ukr_rows(nrows, kcur, ap, bp, cp, ldc, p.alpha, beta);
      } else {  // edge tile: full product into the scratch tile, then merge what fits
        if (in_place) cfg.ukr_rowa(kcur, arow, lda, bp, tile, nr, 1.0f, 0.0f);
        else cfg.ukr(kcur, ap, bp, tile, nr, 1.0f, 0.0f);
        for (int64_t i = 0; i < nrows; ++i) {
          float* ci = cp + i * ldc;
          const float* ti = tile + i * nr;
          if (beta == 0.0f)
            for (int64_t j = 0; j < ncols; ++j) ci[j] = p.alpha * ti[j];
          else
            for (int64_t j = 0; j < ncols; ++j) ci[j] = beta * ci[j] + p.alpha * ti[j];
        }
      }
      if (last_k && (bias || p.act != Act::none))
        epilogue(cp, ldc, nrows, ncols, bias ? bias + jr : nullptr, p.act);
    }
  }
}

}  // namespace

const char* sgemm_kernel_name() { return config_for(active_isa()).name; }

GemmBlocks sgemm_blocks(Isa isa) {
  struct PerIsaBlocks {
    GemmBlocks b[3];
  };
  static const PerIsaBlocks blocks = [] {
    const CacheSizes& cs = cpu_caches();
    PerIsaBlocks all;
    GemmBlocks* out = all.b;
    for (int i = 0; i < 3; ++i) {
      const GemmConfig& cfg = config_for(static_cast<Isa>(i));
      GemmBlocks b{cfg.mr, cfg.nr, cfg.mc, cfg.kc, cfg.nc};
      const int64_t bytes = static_cast<int64_t>(sizeof(float));
      while (b.mc > b.mr && b.mc * b.kc * bytes > cs.l2 / 2)
        b.mc = std::max(b.mr, (b.mc / 2) / b.mr * b.mr);
      while (b.nc > b.nr && b.kc * b.nc * bytes > cs.l3 / 2)
        b.nc = std::max(b.nr, (b.nc / 2) / b.nr * b.nr);
      out[i] = b;
    }
    return all;
  }();
  return blocks.b[static_cast<int>(isa)];
}

void sgemm(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb,
           int64_t m, int64_t n, int64_t k, const GemmParams& p) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || p.alpha == 0.0f) {
    scale_only(c, ldc, m, n, p);
    return;
  }
  const GemmConfig& cfg = config_for(active_isa());
  const GemmBlocks blk = sgemm_blocks(active_isa());
  if (m <= 2 && !p.trans_b && cfg.gemv) {  // a row or two: stream B once per row, no packing
    for (int64_t i = 0; i < m; ++i) {
      const float* ai = p.trans_a ? a + i : a + i * lda;
      cfg.gemv(k, n, ai, p.trans_a ? lda : 1, b, ldb, c + i * ldc, p.alpha, p.beta);
      if (p.bias || p.act != Act::none) epilogue(c + i * ldc, ldc, 1, n, p.bias, p.act);
    }
    return;
  }
  const int64_t mr = cfg.mr, nr = cfg.nr;
  const int nt = threads_for(2.0 * m * n * k, kMinFlopsPerThread, p.num_threads);

  const int64_t kc_max = std::min(cfg.kc, k);
  const int64_t nc_max = std::min(blk.nc, round_up(n, nr));
  const int64_t mc_max = std::min(blk.mc, round_up(m, mr));
  const int64_t b_size = round_up(kc_max * nc_max, 16);
  const int64_t a_size = round_up(mc_max * kc_max + mr * nr, 16);  // A block + one edge tile
  float* const buf = thread_scratch(ScratchSlot::gemm).floats(b_size + nt * a_size);

  // Packing A is amortised over the NR panels of N; when N is short, reading row-major A in place
  // is cheaper. Both paths run the same FMAs in the same order, so the choice does not change bits.
  const bool use_rowa = cfg.ukr_rowa && !p.trans_a && n <= kRowaMaxN;

  // Split rows when there are enough MR tiles for every thread, else columns of the B panel.
  const bool split_m = (m + mr - 1) / mr >= 2 * nt || m >= n;

  // Dynamic units (common/parallel.hpp): per KC x NC block, first the B panels are packed in
  // groups, then rows (or columns) of C are computed in MR (NR) aligned runs; each unit packs its
  // own A block. One thread takes the whole range as one unit (the B panel is then streamed once
  // per MC block, as before units); several take kUnitsPerThread runs each, for balance when one
  // is slowed. Tiles start at multiples of MR / NR whatever the runs, so the split never changes
  // a bit.
  float* const b_pack = buf;
  for (int64_t jc = 0; jc < n; jc += blk.nc) {
    const int64_t ncur = std::min(blk.nc, n - jc);
    const int64_t panels = (ncur + nr - 1) / nr;
    const int64_t pack_units = std::min<int64_t>(panels, kPackUnits);
    const int64_t runs = nt == 1 ? 1 : split_m ? kUnitsPerThread * nt : nt;
    const int64_t run = split_m ? unit_size(m, mr, runs) : unit_size(ncur, nr, runs);
    const int64_t units = ((split_m ? m : ncur) + run - 1) / run;
    for (int64_t pc = 0; pc < k; pc += cfg.kc) {
      const int64_t kcur = std::min(cfg.kc, k - pc);
      const float beta = pc == 0 ? p.beta : 1.0f;
      const bool last_k = pc + kcur == k;
      parallel_units(pack_units, nt, [&](int, int64_t u) {
        int64_t lo, hi;
        split_range(panels, static_cast<int>(u), static_cast<int>(pack_units), 1, &lo, &hi);
        pack_b(b_pack, b, ldb, p.trans_b, pc, kcur, jc, ncur, nr, lo, hi);
      });
      parallel_units(units, nt, [&](int tid, int64_t u) {
        float* const a_pack = buf + b_size + tid * a_size;
        float* const tile = a_pack + mc_max * kc_max;
        int64_t m0 = 0, m1 = m, j0 = 0, j1 = ncur;
        if (split_m) m0 = u * run, m1 = std::min(m, m0 + run);
        else j0 = u * run, j1 = std::min(ncur, j0 + run);
        for (int64_t ic = m0; ic < m1; ic += blk.mc) {
          const int64_t mcur = std::min(blk.mc, m1 - ic);
          const int64_t full_rows = use_rowa ? mcur / mr * mr : 0;  // tiles read in place
          pack_a(a_pack + full_rows * kcur, a, lda, p.trans_a, ic + full_rows, mcur - full_rows, pc,
                 kcur, mr);
          const float* a_rows = use_rowa ? a + ic * lda + pc : nullptr;
          macro_kernel(cfg, c + ic * ldc + jc, ldc, a_pack, a_rows, lda, full_rows,
                       b_pack, tile, mcur, j0, j1, ncur, kcur, beta, last_k,
                       p.bias ? p.bias + jc : nullptr, p);
        }
      });
    }
  }
}

int64_t sgemm_packed_b_floats(Isa isa, int64_t k, int64_t n) {
  return k * round_up(n, config_for(isa).nr) + 16;
}

GemmPackedB sgemm_pack_b(float* dst, Isa isa, const float* b, int64_t ldb, bool trans_b, int64_t k,
                         int64_t n) {
  const GemmConfig& cfg = config_for(isa);
  const int64_t np = round_up(n, cfg.nr);
  // Each KC-deep block holds every NR panel of op(b): block pc starts at pc * np.
  for (int64_t pc = 0; pc < k; pc += cfg.kc) {
    const int64_t kcur = std::min(cfg.kc, k - pc);
    pack_b(dst + pc * np, b, ldb, trans_b, pc, kcur, 0, n, cfg.nr, 0, np / cfg.nr);
  }
  return GemmPackedB{dst, k, n, isa};
}

void sgemm_prepacked(float* c, int64_t ldc, const float* a, int64_t lda, const GemmPackedB& b,
                     int64_t m, const GemmParams& p) {
  const int64_t n = b.n, k = b.k;
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || p.alpha == 0.0f) {
    scale_only(c, ldc, m, n, p);
    return;
  }
  const GemmConfig& cfg = config_for(b.isa);
  const GemmBlocks blk = sgemm_blocks(b.isa);
  const int64_t mr = cfg.mr, np = round_up(n, cfg.nr);
  const int64_t kc_max = std::min(cfg.kc, k);
  const int64_t mc_max = std::min(blk.mc, round_up(m, mr));
  float* const a_pack = thread_scratch(ScratchSlot::gemm).floats(mc_max * kc_max + mr * cfg.nr);
  float* const tile = a_pack + mc_max * kc_max;
  const bool use_rowa = cfg.ukr_rowa && !p.trans_a && n <= kRowaMaxN;
  // A single row (a thread's share of a small batch, or batch 1): its full NR panels go through
  // the one-row kernel, which has the tile kernels' arithmetic but is not bound by FMA latency;
  // a partial last panel still takes the macro-kernel below.
  const bool one_row = m == 1 && cfg.gemv_packed;
  const int64_t gemv_cols = one_row ? n / cfg.nr * cfg.nr : 0;
  for (int64_t pc = 0; pc < k; pc += cfg.kc) {
    const int64_t kcur = std::min(cfg.kc, k - pc);
    const float beta = pc == 0 ? p.beta : 1.0f;
    if (one_row) {
      const bool last_k = pc + kcur == k;
      cfg.gemv_packed(kcur, gemv_cols / cfg.nr, p.trans_a ? a + pc * lda : a + pc,
                      p.trans_a ? lda : 1, b.data + pc * np, c, p.alpha, beta);
      if (last_k && (p.bias || p.act != Act::none)) epilogue(c, ldc, 1, gemv_cols, p.bias, p.act);
      if (gemv_cols < n) {
        pack_a(a_pack, a, lda, p.trans_a, 0, 1, pc, kcur, mr);
        macro_kernel(cfg, c, ldc, a_pack, nullptr, lda, 0, b.data + pc * np, tile, 1, gemv_cols,
                     n, n, kcur, beta, last_k, p.bias, p);
      }
      continue;
    }
    for (int64_t ic = 0; ic < m; ic += blk.mc) {
      const int64_t mcur = std::min(blk.mc, m - ic);
      const int64_t full_rows = use_rowa ? mcur / mr * mr : 0;
      pack_a(a_pack + full_rows * kcur, a, lda, p.trans_a, ic + full_rows, mcur - full_rows, pc,
             kcur, mr);
      const float* a_rows = use_rowa ? a + ic * lda + pc : nullptr;
      macro_kernel(cfg, c + ic * ldc, ldc, a_pack, a_rows, lda, full_rows,
                   b.data + pc * np, tile, mcur, 0, n, n, kcur, beta, pc + kcur == k, p.bias, p);
    }
  }
}

void sgemm_ref(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb,
               int64_t m, int64_t n, int64_t k, const GemmParams& p) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      float s = 0.0f;
      for (int64_t q = 0; q < k; ++q) {
        const float av = p.trans_a ? a[q * lda + i] : a[i * lda + q];
        const float bv = p.trans_b ? b[j * ldb + q] : b[q * ldb + j];
        s += av * bv;
      }
      float v = p.alpha * s;
      if (p.beta != 0.0f) v += p.beta * c[i * ldc + j];
      if (p.bias) v += p.bias[j];
      if (p.act == Act::relu && v < 0.0f) v = 0.0f;
      c[i * ldc + j] = v;
    }
  }
}

}  // namespace nncore
