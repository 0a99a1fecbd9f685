// The recurrent cells' elementwise steps compiled for AVX-512 (flags from the file name).
#define NNCORE_RNN_CELLS_IMPL
#define NNCORE_RNN_CELLS_TABLE kRnnCellsAvx512
#define NNCORE_RNN_CELLS_NAME "avx512"
#include "kernels/rnn_cells.hpp"
