// The recurrent cells' elementwise steps compiled for AVX2 (flags from the file name).
#define NNCORE_RNN_CELLS_IMPL
#include "kernels/rnn_cells.hpp"

namespace nncore {
const RnnRowKernels* rnn_row_kernels_avx2() { return &kRnnRowKernels; }
}  // namespace nncore
