// The projective image resampler (affine.hpp). Scalar per pixel: the work per output pixel is the
// coordinate map and up to four taps, and the channel loop (1-5 channels for images) is too short
// for vectors to pay; 1, 3 and 4 channels get fixed-length loops. No ISA variants: one build for
// every x86-64 CPU, so the results are the same bits on all of them (no FMA in the coordinates).
#include "kernels/affine.hpp"

#include <cmath>
#include <vector>

#include "common/parallel.hpp"

namespace nncore {

namespace {

// floor / trunc / round-half-away of a finite double, exact, without a libm call (the baseline
// x86-64 build has no rounding instruction, and these run several times per pixel).
constexpr double kTwo52 = 4503599627370496.0;  // from here on every double is an integer

inline double trunc_exact(double v) {
  if (!(v > -kTwo52 && v < kTwo52)) return v;
  return static_cast<double>(static_cast<int64_t>(v));
}

inline double floor_exact(double v) {
  const double t = trunc_exact(v);
  return t > v ? t - 1.0 : t;
}

inline double round_half_away(double v) {
  const double t = trunc_exact(v);
  const double d = v - t;  // exact
  return d >= 0.5 ? t + 1.0 : (d <= -0.5 ? t - 1.0 : t);
}

// TF's MapCoordinate for modes other than constant, in double; the result is in [0, n - 1].
inline double map_coord(double v, int64_t n, int fill) {
  if (n <= 1) return 0.0;
  const double len = static_cast<double>(n);
  if (v >= 0.0 && v <= len - 1.0) return v;  // inside: every mode leaves it as it is
  if (fill == kFillReflect) {
    const double p = 2.0 * len;
    v = std::fmod(v, p);
    if (v < 0) v += p;  // in [0, 2n): the upper half is the mirror image
    if (v >= len) v = p - v - 1.0;
  } else if (fill == kFillWrap) {
    const double sz = len - 1.0;  // whole periods of n counted in units of n - 1 (TF's rule)
    if (v < 0)
      v += len * (trunc_exact(-v / sz) + 1.0);
    else if (v > len - 1.0)
      v -= len * trunc_exact(v / sz);
  }
  return v < 0.0 ? 0.0 : (v > len - 1.0 ? len - 1.0 : v);
}

// Up to 4 taps of one output pixel: source pixel index (-1: outside) and weight.
struct Taps {
  int64_t idx[4];
  double wt[4];
  int n;
};

inline int64_t tap_index(double ty, double tx, int64_t h, int64_t w) {
  if (!(ty >= 0.0 && ty <= static_cast<double>(h - 1) && tx >= 0.0 &&
        tx <= static_cast<double>(w - 1)))
    return -1;
  return static_cast<int64_t>(ty) * w + static_cast<int64_t>(tx);
}

// always inlined: a call per pixel cost a third of the forward (perf, Zen 3)
inline __attribute__((always_inline)) void taps_of(const double* t, int64_t ox, int64_t oy,
                                                  int64_t h, int64_t w, int fill, int interp,
                                                  Taps* tp) {
  const double xf = static_cast<double>(ox), yf = static_cast<double>(oy);
  double sx = t[0] * xf + t[1] * yf + t[2];
  double sy = t[3] * xf + t[4] * yf + t[5];
  const bool projective = t[6] != 0.0 || t[7] != 0.0;  // else k == 1: no division (exact)
  const double k = projective ? t[6] * xf + t[7] * yf + 1.0 : 1.0;
  if (projective) {
    sx /= k;
    sy /= k;
  }
  if (k == 0.0 || !std::isfinite(sx) || !std::isfinite(sy)) {
    tp->n = 1;  // an infinite coordinate: the fill value (TF returns it for k == 0)
    tp->idx[0] = -1;
    tp->wt[0] = 1.0;
    return;
  }
  if (fill != kFillConstant) {
    sx = map_coord(sx, w, fill);
    sy = map_coord(sy, h, fill);
  }
  if (interp == kInterpNearest) {
    tp->n = 1;
    tp->idx[0] = tap_index(round_half_away(sy), round_half_away(sx), h, w);
    tp->wt[0] = 1.0;
    return;
  }
  const double x0 = floor_exact(sx), y0 = floor_exact(sy);
  const double fx = sx - x0, fy = sy - y0;
  tp->n = 4;
  tp->idx[0] = tap_index(y0, x0, h, w);
  tp->idx[1] = tap_index(y0, x0 + 1.0, h, w);
  tp->idx[2] = tap_index(y0 + 1.0, x0, h, w);
  tp->idx[3] = tap_index(y0 + 1.0, x0 + 1.0, h, w);
  tp->wt[0] = (1.0 - fy) * (1.0 - fx);
  tp->wt[1] = (1.0 - fy) * fx;
  tp->wt[2] = fy * (1.0 - fx);
  tp->wt[3] = fy * fx;
}

constexpr int64_t kMaxStackChannels = 64;

// One output row; CC > 0 is the channel count known at compile time (0: c at run time).
template <class T, int CC>
void forward_row(const T* xi, const double* ti, int64_t oy, int64_t h, int64_t w, int64_t c_rt,
                 int fill, int interp, double fill_value, double* acc, T* yr) {
  const int64_t c = CC > 0 ? CC : c_rt;
  Taps tp;
  for (int64_t ox = 0; ox < w; ++ox) {
    taps_of(ti, ox, oy, h, w, fill, interp, &tp);
    for (int64_t ch = 0; ch < c; ++ch) acc[ch] = 0.0;
    for (int k = 0; k < tp.n; ++k) {
      const double wk = tp.wt[k];
      if (tp.idx[k] < 0) {
        for (int64_t ch = 0; ch < c; ++ch) acc[ch] += wk * fill_value;
      } else {
        const T* src = xi + tp.idx[k] * c;
        for (int64_t ch = 0; ch < c; ++ch) acc[ch] += wk * static_cast<double>(src[ch]);
      }
    }
    T* dst = yr + ox * c;
    for (int64_t ch = 0; ch < c; ++ch) dst[ch] = static_cast<T>(acc[ch]);
  }
}

}  // namespace

template <class T>
void affine_forward(const T* x, const double* t, int64_t b, int64_t h, int64_t w, int64_t c,
                    int fill, int interp, double fill_value, T* y) {
  const int64_t units = b * h;
  const double work = static_cast<double>(units) * static_cast<double>(w) * (24.0 + 4.0 * c);
  const int nt = threads_for(work, 2.0e5);
  parallel_units(units, nt, [&](int, int64_t u) {
    const int64_t img = u / h, oy = u % h;
    const double* ti = t + 8 * img;
    const T* xi = x + img * h * w * c;
    T* yr = y + (img * h + oy) * w * c;
    double stack_acc[kMaxStackChannels];
    std::vector<double> heap_acc;
    double* acc = stack_acc;
    if (c > kMaxStackChannels) {
      heap_acc.resize(static_cast<size_t>(c));
      acc = heap_acc.data();
    }
    switch (c) {  // the usual channel counts get fixed-length loops
      case 1: forward_row<T, 1>(xi, ti, oy, h, w, 1, fill, interp, fill_value, acc, yr); break;
      case 3: forward_row<T, 3>(xi, ti, oy, h, w, 3, fill, interp, fill_value, acc, yr); break;
      case 4: forward_row<T, 4>(xi, ti, oy, h, w, 4, fill, interp, fill_value, acc, yr); break;
      default: forward_row<T, 0>(xi, ti, oy, h, w, c, fill, interp, fill_value, acc, yr);
    }
  });
}

template <class T>
void affine_backward(const T* dy, const double* t, int64_t b, int64_t h, int64_t w, int64_t c,
                     int fill, int interp, T* dx) {
  const double work = static_cast<double>(b) * h * w * (24.0 + 8.0 * c);
  const int nt = threads_for(work, 2.0e5);
  parallel_units(b, nt, [&](int, int64_t img) {
    const double* ti = t + 8 * img;
    const T* dyi = dy + img * h * w * c;
    // sums in double, one image at a time, in output-pixel then tap order; rounded once
    std::vector<double> acc(static_cast<size_t>(h * w * c), 0.0);
    Taps tp;
    for (int64_t oy = 0; oy < h; ++oy)
      for (int64_t ox = 0; ox < w; ++ox) {
        taps_of(ti, ox, oy, h, w, fill, interp, &tp);
        const T* g = dyi + (oy * w + ox) * c;
        for (int k = 0; k < tp.n; ++k) {
          if (tp.idx[k] < 0) continue;
          double* a = acc.data() + tp.idx[k] * c;
          const double wk = tp.wt[k];
          for (int64_t ch = 0; ch < c; ++ch) a[ch] += wk * static_cast<double>(g[ch]);
        }
      }
    T* dxi = dx + img * h * w * c;
    for (int64_t i = 0; i < h * w * c; ++i) dxi[i] = static_cast<T>(acc[static_cast<size_t>(i)]);
  });
}

template void affine_forward<float>(const float*, const double*, int64_t, int64_t, int64_t,
                                    int64_t, int, int, double, float*);
template void affine_forward<double>(const double*, const double*, int64_t, int64_t, int64_t,
                                     int64_t, int, int, double, double*);
template void affine_backward<float>(const float*, const double*, int64_t, int64_t, int64_t,
                                     int64_t, int, int, float*);
template void affine_backward<double>(const double*, const double*, int64_t, int64_t, int64_t,
                                      int64_t, int, int, double*);

}  // namespace nncore
