// The Conv1D Winograd transforms compiled for AVX-512 (flags from the file name).
#define NNCORE_CONV1D_IMPL
#define NNCORE_CONV1D_TABLE kConv1dAvx512
#define NNCORE_CONV1D_NAME "avx512"
#include "kernels/conv1d_transforms.hpp"
