// The normalization and embedding-gradient inner loops compiled for AVX-512 (flags from the file name).
#define NNCORE_NORM_ROWS_IMPL
#define NNCORE_NORM_ROWS_TABLE kNormRowsAvx512
#define NNCORE_NORM_ROWS_NAME "avx512"
#include "kernels/norm_rows.hpp"
