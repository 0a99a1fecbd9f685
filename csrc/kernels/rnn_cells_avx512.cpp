// The recurrent cells' elementwise steps compiled for AVX512 (flags from the file name).
#define NNCORE_RNN_CELLS_IMPL
#include "kernels/rnn_cells.hpp"

namespace nncore {
const RnnRowKernels* rnn_row_kernels_avx512() { return &kRnnRowKernels; }
}  // namespace nncore
