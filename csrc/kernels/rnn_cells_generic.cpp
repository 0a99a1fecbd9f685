// The recurrent cells' elementwise steps compiled for the baseline ISA (the portable fallback) (flags from the file name).
#define NNCORE_RNN_CELLS_IMPL
#define NNCORE_RNN_CELLS_TABLE kRnnCellsGeneric
#define NNCORE_RNN_CELLS_NAME "generic"
#include "kernels/rnn_cells.hpp"
