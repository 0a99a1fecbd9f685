// The Conv1D Winograd transforms compiled for AVX2+FMA (flags from the file name).
#define NNCORE_CONV1D_IMPL
#define NNCORE_CONV1D_TABLE kConv1dAvx2
#define NNCORE_CONV1D_NAME "avx2"
#include "kernels/conv1d_transforms.hpp"
