// The recurrent cells' elementwise steps compiled for AVX2 (flags from the file name).
#define NNCORE_RNN_CELLS_IMPL
#define NNCORE_RNN_CELLS_TABLE kRnnCellsAvx2
#define NNCORE_RNN_CELLS_NAME "avx2"
#include "kernels/rnn_cells.hpp"
