// The recurrent cells' elementwise steps compiled for the baseline ISA (the portable fallback).
#define NNCORE_RNN_CELLS_IMPL
#include "kernels/rnn_cells.hpp"

namespace nncore {
const RnnRowKernels* rnn_row_kernels_generic() { return &kRnnRowKernels; }
}  // namespace nncore
