// AVX-512 Winograd F(2x2, 3x3) transforms: 16 channels (or filters) per vector, masked tails. The
// same template as the AVX2 file (conv2d_winograd_impl.hpp).
#include <immintrin.h>

// GCC 12 reports the _mm512_undefined_ps inside _mm512_max_ps as maybe-uninitialized: a false
// positive (the masked-off lanes it stands for are never selected).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/conv2d_winograd_impl.hpp"

namespace nncore {
namespace {

struct Avx512 {
  static constexpr int kWidth = 16;
  using vec = __m512;
  using mask = __mmask16;
  static vec zero() { return _mm512_setzero_ps(); }
  static vec set1(float s) { return _mm512_set1_ps(s); }
  static mask lanes(int64_t n) {
    return n >= 16 ? static_cast<mask>(0xFFFF)
                   : (n <= 0 ? static_cast<mask>(0) : static_cast<mask>((1u << n) - 1));
  }
  static vec load(mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(mask m, float* p, vec v) { _mm512_mask_storeu_ps(p, m, v); }
  static vec loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, vec v) { _mm512_storeu_ps(p, v); }
  static vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
  static vec sub(vec a, vec b) { return _mm512_sub_ps(a, b); }
  static vec mul(vec a, vec b) { return _mm512_mul_ps(a, b); }
  static vec relu(vec r) { return _mm512_max_ps(_mm512_setzero_ps(), r); }
};

void input_avx512(float* v, int64_t ve, const float* x, const Conv2dParams& p, int64_t t0,
                  int64_t count, const float* zeros) {
  wino_input<Avx512>(v, ve, x, p, t0, count, zeros);
}
void output_avx512(float* y, const float* m, int64_t me, const float* b, const Conv2dParams& p,
                   int64_t t0, int64_t count) {
  wino_output<Avx512>(y, m, me, b, p, t0, count);
}
void weights_avx512(float* u, const float* w, int64_t c, int64_t f) {
  wino_weights<Avx512>(u, w, c, f);
}

void grad_avx512(float* mg, int64_t me, const float* g, const Conv2dParams& p, int64_t t0,
               int64_t count) {
  wino_grad<Avx512>(mg, me, g, p, t0, count);
}
void dw_back_avx512(float* dw, const float* z, int64_t c, int64_t f, bool accumulate) {
  wino_dw_back<Avx512>(dw, z, c, f, accumulate);
}

}  // namespace

const WinogradKernels kWinogradAvx512 = {input_avx512, output_avx512, weights_avx512,
                                         "winograd_f2x3_avx512", grad_avx512, dw_back_avx512};

}  // namespace nncore
