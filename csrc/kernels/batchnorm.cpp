// Batch and layer normalization, fused forward and backward (see norm.hpp).
// Parallel level: channels (batch norm statistics, layer norm dgamma/dbeta) or rows (the
// elementwise passes, layer norm rows); sums are double and run over rows in order.
#include <cmath>

#include "common/parallel.hpp"
#include "kernels/norm.hpp"

namespace nncore {

namespace {

constexpr int64_t kChanBlock = 16;  // channels per unit of work: one 64-byte line of a row

int threads_rows(int64_t m, int64_t k) { return threads_for(double(m) * double(k), 32768.0); }

}  // namespace

void batchnorm_forward_train(float* y, float* mean, float* var, float* inv, const float* x,
                             const float* gamma, const float* beta, int64_t m, int64_t c,
                             float eps) {
  const int nt = threads_rows(m, c);
  parallel_for(c, nt, kChanBlock, [&](int64_t c0, int64_t c1) {
    double s[kChanBlock], q[kChanBlock];
    for (int64_t b = c0; b < c1; b += kChanBlock) {
      const int64_t nb = (c1 - b) < kChanBlock ? (c1 - b) : kChanBlock;
      for (int64_t j = 0; j < nb; ++j) s[j] = 0.0, q[j] = 0.0;
      for (int64_t r = 0; r < m; ++r) {
        const float* xr = x + r * c + b;
        for (int64_t j = 0; j < nb; ++j) s[j] += xr[j];
      }
      for (int64_t j = 0; j < nb; ++j) s[j] /= double(m);
      for (int64_t r = 0; r < m; ++r) {  // two passes: no cancellation in E[x^2] - E[x]^2
        const float* xr = x + r * c + b;
        for (int64_t j = 0; j < nb; ++j) {
          const double d = xr[j] - s[j];
          q[j] += d * d;
        }
      }
      for (int64_t j = 0; j < nb; ++j) {
        const double v = q[j] / double(m);
        mean[b + j] = float(s[j]);
        var[b + j] = float(v);
        inv[b + j] = float(1.0 / std::sqrt(v + double(eps)));
      }
    }
  });
  parallel_for(m, nt, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * c;
      float* yr = y + r * c;
      for (int64_t j = 0; j < c; ++j) {
        const float sc = gamma ? inv[j] * gamma[j] : inv[j];
        const float sh = (beta ? beta[j] : 0.0f) - mean[j] * sc;
        yr[j] = xr[j] * sc + sh;
      }
    }
  });
}

void batchnorm_backward_train(float* dx, float* dgamma, float* dbeta, const float* dy,
                              const float* x, const float* mean, const float* inv,
                              const float* gamma, int64_t m, int64_t c) {
  const int nt = threads_rows(m, c);
  parallel_for(c, nt, kChanBlock, [&](int64_t c0, int64_t c1) {
    double sb[kChanBlock], sg[kChanBlock];
    for (int64_t b = c0; b < c1; b += kChanBlock) {
      const int64_t nb = (c1 - b) < kChanBlock ? (c1 - b) : kChanBlock;
      for (int64_t j = 0; j < nb; ++j) sb[j] = 0.0, sg[j] = 0.0;
      for (int64_t r = 0; r < m; ++r) {
        const float* xr = x + r * c + b;
        const float* dr = dy + r * c + b;
        for (int64_t j = 0; j < nb; ++j) {
          sb[j] += dr[j];
          sg[j] += double(dr[j]) * ((double(xr[j]) - mean[b + j]) * inv[b + j]);
        }
      }
      for (int64_t j = 0; j < nb; ++j) dbeta[b + j] = float(sb[j]), dgamma[b + j] = float(sg[j]);
    }
  });
  // dx = gamma * inv / m * (m * dy - dbeta - xhat * dgamma)
  const float fm = float(m);
  parallel_for(m, nt, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * c;
      const float* dr = dy + r * c;
      float* out = dx + r * c;
      for (int64_t j = 0; j < c; ++j) {
        const float k = (gamma ? gamma[j] : 1.0f) * inv[j] / fm;
        const float xh = (xr[j] - mean[j]) * inv[j];
        out[j] = k * (fm * dr[j] - dbeta[j] - xh * dgamma[j]);
      }
    }
  });
}

void layernorm_forward(float* y, float* mean, float* inv, const float* x, const float* gamma,
                       const float* beta, int64_t m, int64_t k, float eps) {
  parallel_for(m, threads_rows(m, k), 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * k;
      double s = 0.0, q = 0.0;
      for (int64_t j = 0; j < k; ++j) s += xr[j];
      const double mu = s / double(k);
      for (int64_t j = 0; j < k; ++j) {
        const double d = xr[j] - mu;
        q += d * d;
      }
      const float iv = float(1.0 / std::sqrt(q / double(k) + double(eps)));
      const float fmu = float(mu);
      mean[r] = fmu, inv[r] = iv;
      float* yr = y + r * k;
      for (int64_t j = 0; j < k; ++j) {
        float v = (xr[j] - fmu) * iv;
        if (gamma) v *= gamma[j];
        if (beta) v += beta[j];
        yr[j] = v;
      }
    }
  });
}

void layernorm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x,
                        const float* mean, const float* inv, const float* gamma, int64_t m,
                        int64_t k) {
  const int nt = threads_rows(m, k);
  // dx per row: g = dy * gamma; dx = inv * (g - mean(g) - xhat * mean(g * xhat))
  parallel_for(m, nt, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * k;
      const float* dr = dy + r * k;
      double sg = 0.0, sgx = 0.0;
      for (int64_t j = 0; j < k; ++j) {
        const double g = double(dr[j]) * (gamma ? gamma[j] : 1.0f);
        sg += g;
        sgx += g * ((double(xr[j]) - mean[r]) * inv[r]);
      }
      const float mg = float(sg / double(k)), mgx = float(sgx / double(k));
      float* out = dx + r * k;
      for (int64_t j = 0; j < k; ++j) {
        const float g = dr[j] * (gamma ? gamma[j] : 1.0f);
        const float xh = (xr[j] - mean[r]) * inv[r];
        out[j] = inv[r] * (g - mg - xh * mgx);
      }
    }
  });
  parallel_for(k, nt, kChanBlock, [&](int64_t c0, int64_t c1) {
    double sb[kChanBlock], sg[kChanBlock];
    for (int64_t b = c0; b < c1; b += kChanBlock) {
      const int64_t nb = (c1 - b) < kChanBlock ? (c1 - b) : kChanBlock;
      for (int64_t j = 0; j < nb; ++j) sb[j] = 0.0, sg[j] = 0.0;
      for (int64_t r = 0; r < m; ++r) {
        const float* xr = x + r * k + b;
        const float* dr = dy + r * k + b;
        const double mu = mean[r], iv = inv[r];
        for (int64_t j = 0; j < nb; ++j) {
          sb[j] += dr[j];
          sg[j] += double(dr[j]) * ((double(xr[j]) - mu) * iv);
        }
      }
      for (int64_t j = 0; j < nb; ++j) dbeta[b + j] = float(sb[j]), dgamma[b + j] = float(sg[j]);
    }
  });
}

void embedding_backward(float* de, const int64_t* idx, const float* dy, int64_t n, int64_t v,
                        int64_t d, bool accumulate) {
  // Columns split across threads; each column block sums the rows in index order.
  parallel_for(d, threads_for(double(n) * double(d), 32768.0), kChanBlock,
               [&](int64_t c0, int64_t c1) {
                 if (!accumulate)
                   for (int64_t r = 0; r < v; ++r)
                     for (int64_t j = c0; j < c1; ++j) de[r * d + j] = 0.0f;
                 for (int64_t i = 0; i < n; ++i) {
                   float* dst = de + idx[i] * d;
                   const float* src = dy + i * d;
                   for (int64_t j = c0; j < c1; ++j) dst[j] += src[j];
                 }
               });
}

}  // namespace nncore
