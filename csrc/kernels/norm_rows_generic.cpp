// The normalization and embedding-gradient inner loops compiled for the baseline ISA (the portable fallback) (flags from the file name).
#define NNCORE_NORM_ROWS_IMPL
#define NNCORE_NORM_ROWS_TABLE kNormRowsGeneric
#define NNCORE_NORM_ROWS_NAME "generic"
#include "kernels/norm_rows.hpp"
