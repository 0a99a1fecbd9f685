// The normalization and embedding-gradient inner loops compiled for AVX2+FMA (flags from the file name).
#define NNCORE_NORM_ROWS_IMPL
#define NNCORE_NORM_ROWS_TABLE kNormRowsAvx2
#define NNCORE_NORM_ROWS_NAME "avx2"
#include "kernels/norm_rows.hpp"
