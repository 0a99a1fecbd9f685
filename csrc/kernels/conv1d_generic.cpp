// The Conv1D Winograd transforms compiled at the baseline flags (any x86-64 or other CPU).
#define NNCORE_CONV1D_IMPL
#define NNCORE_CONV1D_TABLE kConv1dGeneric
#define NNCORE_CONV1D_NAME "generic"
#include "kernels/conv1d_transforms.hpp"
